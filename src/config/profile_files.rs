//! Reading AWS shared credentials and config files (`[profile]` sections) with the SDK's parser.
//!
//! Owns the one way cwlite reads those files: explicitly named paths, a named profile, no
//! environment variable that could redirect either. Used for the region at start and by
//! `aws::credentials` for the keys at signing time. It returns raw properties; it never logs them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aws_config::profile::ProfileSet;
use aws_runtime::env_config::file::{
    EnvConfigFileKind as ProfileFileKind, EnvConfigFiles as ProfileFiles,
};
use aws_types::os_shim_internal::{Env, Fs};

/// The credentials file and, when it exists, the `config` file beside it, as the stock agent
/// reads them (`[<file>, <dir of file>/config]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFiles {
    /// The shared credentials file.
    pub credentials: PathBuf,
    /// `config` in the same directory.
    pub config: PathBuf,
}

impl SharedFiles {
    /// The pair for a credentials file.
    pub fn beside(credentials: &Path) -> Self {
        let config = credentials
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("config");
        Self {
            credentials: credentials.to_owned(),
            config,
        }
    }
}

/// Why a profile could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The credentials file is missing or unreadable.
    #[error("cannot read shared credentials file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The files do not parse.
    #[error("cannot parse {files}: {reason}")]
    Parse {
        /// The files read.
        files: String,
        /// The parser's message.
        reason: String,
    },
    /// The profile is in neither file.
    #[error("profile \"{profile}\" not found in {files}")]
    NoProfile {
        /// The profile asked for.
        profile: String,
        /// The files read.
        files: String,
    },
}

/// The properties of one profile.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileProperties {
    properties: Vec<(String, String)>,
}

impl std::fmt::Debug for ProfileProperties {
    // Values may be secret keys; only names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.properties.iter().map(|(k, _)| k))
            .finish()
    }
}

impl ProfileProperties {
    /// A property's value, if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Reads `profile` from `files`. A missing `config` file is fine; a missing credentials file is not.
///
/// # Errors
/// See [`ProfileError`].
pub fn read_profile(files: &SharedFiles, profile: &str) -> Result<ProfileProperties, ProfileError> {
    if let Err(err) = std::fs::metadata(&files.credentials) {
        return Err(ProfileError::Unreadable {
            path: files.credentials.clone(),
            reason: err.to_string(),
        });
    }
    let mut builder =
        ProfileFiles::builder().with_file(ProfileFileKind::Credentials, &files.credentials);
    let mut names = files.credentials.display().to_string();
    if files.config.is_file() {
        builder = builder.with_file(ProfileFileKind::Config, &files.config);
        names = format!("{names} and {}", files.config.display());
    }
    let set = load_now(&builder.build(), profile).map_err(|reason| ProfileError::Parse {
        files: names.clone(),
        reason,
    })?;
    let found = set
        .get_profile(profile)
        .ok_or_else(|| ProfileError::NoProfile {
            profile: profile.to_owned(),
            files: names,
        })?;
    let mut properties = Vec::new();
    for key in [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "region",
    ] {
        if let Some(value) = found.get(key) {
            properties.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(ProfileProperties { properties })
}

/// Reads the SDK's default files (`~/.aws/credentials`, `~/.aws/config`, or the paths in
/// `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`) for `profile`; `None` when absent.
pub fn read_default_profile(
    env: &super::expand::Environment,
    profile: &str,
) -> Option<ProfileProperties> {
    let home = env.home();
    let credentials = env
        .var("AWS_SHARED_CREDENTIALS_FILE")
        .map_or_else(|| home.join(".aws/credentials"), PathBuf::from);
    let config = env
        .var("AWS_CONFIG_FILE")
        .map_or_else(|| home.join(".aws/config"), PathBuf::from);
    let mut builder = ProfileFiles::builder();
    let mut any = false;
    for (kind, path) in [
        (ProfileFileKind::Credentials, credentials),
        (ProfileFileKind::Config, config),
    ] {
        if path.is_file() {
            builder = builder.with_file(kind, path);
            any = true;
        }
    }
    if !any {
        return None;
    }
    let set = load_now(&builder.build(), profile).ok()?;
    let found = set.get_profile(profile)?;
    let properties = found
        .get("region")
        .map(|r| vec![("region".to_owned(), r.to_owned())])
        .unwrap_or_default();
    Some(ProfileProperties { properties })
}

fn load_now(files: &ProfileFiles, profile: &str) -> Result<ProfileSet, String> {
    // No environment: `AWS_PROFILE` and friends must not redirect an explicitly named file.
    let env = Env::from_slice(&[]);
    let fs = Fs::real();
    let future = aws_config::profile::load(&fs, &env, files, Some(profile.to_owned().into()));
    poll_to_completion(future).map_err(|err| err.to_string())
}

/// The SDK's profile loader is `async` only to allow fake file systems; with `Fs::real()` it does
/// blocking reads and never waits, so it is driven here without a runtime. This keeps
/// configuration loading synchronous and usable from inside or outside Tokio.
fn poll_to_completion<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(credentials: &str, config: Option<&str>) -> (tempfile::TempDir, SharedFiles) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credentials"), credentials).unwrap();
        if let Some(config) = config {
            std::fs::write(dir.path().join("config"), config).unwrap();
        }
        let files = SharedFiles::beside(&dir.path().join("credentials"));
        (dir, files)
    }

    #[test]
    fn a_profile_is_read_from_the_credentials_file_and_the_config_beside_it() {
        let (_dir, files) = files(
            "[AmazonCloudWatchAgent]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s3cr3t\n",
            Some("[profile AmazonCloudWatchAgent]\nregion = ap-northeast-1\n"),
        );
        let profile = read_profile(&files, "AmazonCloudWatchAgent").unwrap();
        assert_eq!(profile.get("aws_access_key_id"), Some("AKIDEXAMPLE"));
        assert_eq!(profile.get("region"), Some("ap-northeast-1"));
        assert!(!format!("{profile:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_missing_profile_names_the_files() {
        let (_dir, files) = files("[other]\naws_access_key_id = A\n", None);
        let err = read_profile(&files, "AmazonCloudWatchAgent").unwrap_err();
        assert!(matches!(err, ProfileError::NoProfile { .. }));
        let text = err.to_string();
        assert!(
            text.contains("\"AmazonCloudWatchAgent\"") && text.contains("credentials"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = read_profile(
            &SharedFiles::beside(Path::new("/nonexistent/credentials")),
            "x",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read shared credentials file /nonexistent/credentials")
        );
    }
}
