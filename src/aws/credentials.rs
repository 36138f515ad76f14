//! Credentials from one profile of one shared credentials file, re-read when the file changes.
//!
//! Owns [`ProfileFileCredentials`], the provider used whenever `common-config.toml` names a
//! profile. It reads only the named file (and the `config` beside it), so stray
//! `AWS_ACCESS_KEY_ID` variables cannot override the operator's choice, and it checks the file's
//! identity and modification time on every signing so a rotated key is used on the next request
//! without a restart. It never logs or formats a secret.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};

use crate::config::profile_files::{self, ProfileError, SharedFiles};

const PROVIDER_NAME: &str = "cwlite-shared-credentials-file";

/// What identifies a version of the files: if none of this changed, neither did the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        })
    }
}

type Stamps = (Option<FileStamp>, Option<FileStamp>);

/// Reads a profile's static keys, caching them until the credentials or config file changes.
#[derive(Clone)]
pub struct ProfileFileCredentials {
    files: SharedFiles,
    profile: String,
    cache: Arc<Mutex<Option<(Stamps, Credentials)>>>,
}

impl std::fmt::Debug for ProfileFileCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileFileCredentials")
            .field("file", &self.files.credentials)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be loaded; the message never contains a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsFileError {
    /// The file or profile is missing or unreadable.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The profile lacks a key.
    #[error("profile \"{profile}\" in {file} has no {missing}")]
    MissingKey {
        /// The profile.
        profile: String,
        /// The credentials file.
        file: String,
        /// The missing property.
        missing: &'static str,
    },
}

impl ProfileFileCredentials {
    /// A provider for `profile` in `credentials_file` (and `config` beside it).
    pub fn new(credentials_file: &Path, profile: &str) -> Self {
        Self {
            files: SharedFiles::beside(credentials_file),
            profile: profile.to_owned(),
            cache: Arc::default(),
        }
    }

    /// The current keys, re-reading the files only if they changed since the last call.
    ///
    /// # Errors
    /// A missing or unreadable file, a missing profile, or a profile without both keys.
    pub fn load(&self) -> Result<Credentials, CredentialsFileError> {
        let stamps = (
            FileStamp::of(&self.files.credentials),
            FileStamp::of(&self.files.config),
        );
        // A poisoned lock only means another thread panicked mid-read; the cache is still a
        // plain value, so recover it rather than fail every later request.
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((cached_stamps, credentials)) = cache.as_ref()
            && *cached_stamps == stamps
            && stamps.0.is_some()
        {
            return Ok(credentials.clone());
        }
        let properties = profile_files::read_profile(&self.files, &self.profile)?;
        let missing = |key: &'static str| CredentialsFileError::MissingKey {
            profile: self.profile.clone(),
            file: self.files.credentials.display().to_string(),
            missing: key,
        };
        let access_key = properties
            .get("aws_access_key_id")
            .ok_or_else(|| missing("aws_access_key_id"))?;
        let secret_key = properties
            .get("aws_secret_access_key")
            .ok_or_else(|| missing("aws_secret_access_key"))?;
        let session_token = properties.get("aws_session_token").map(str::to_owned);
        let credentials =
            Credentials::new(access_key, secret_key, session_token, None, PROVIDER_NAME);
        *cache = Some((stamps, credentials.clone()));
        Ok(credentials)
    }

    /// The credentials file this provider reads.
    pub fn file(&self) -> &Path {
        &self.files.credentials
    }
}

impl ProvideCredentials for ProfileFileCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.load().map_err(|err| match err {
            CredentialsFileError::Profile(ProfileError::NoProfile { .. })
            | CredentialsFileError::Profile(ProfileError::Unreadable { .. }) => {
                CredentialsError::not_loaded(err.to_string())
            }
            other => CredentialsError::invalid_configuration(other.to_string()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        // Write to a new file and rename, as operators and config tools do, so the inode changes.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn keys_come_from_the_named_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        write(
            &file,
            "[default]\naws_access_key_id = WRONG\naws_secret_access_key = w\n[AmazonCloudWatchAgent]\naws_access_key_id = AKIDRIGHT\naws_secret_access_key = r\n",
        );
        let provider = ProfileFileCredentials::new(&file, "AmazonCloudWatchAgent");
        let credentials = provider.load().unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDRIGHT");
        assert_eq!(credentials.secret_access_key(), "r");
    }

    #[test]
    fn a_rotated_file_is_picked_up_without_a_new_provider() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        write(
            &file,
            "[p]\naws_access_key_id = AKIDOLD\naws_secret_access_key = old\n",
        );
        let provider = ProfileFileCredentials::new(&file, "p");
        assert_eq!(provider.load().unwrap().access_key_id(), "AKIDOLD");
        write(
            &file,
            "[p]\naws_access_key_id = AKIDNEW\naws_secret_access_key = new\n",
        );
        assert_eq!(provider.load().unwrap().access_key_id(), "AKIDNEW");
    }

    #[test]
    fn a_profile_without_a_secret_is_an_error_that_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        write(&file, "[p]\naws_access_key_id = AKIDVISIBLE\n");
        let err = ProfileFileCredentials::new(&file, "p").load().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("has no aws_secret_access_key"), "{text}");
        assert!(!text.contains("AKIDVISIBLE"));
    }

    #[test]
    fn the_debug_form_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        write(
            &file,
            "[p]\naws_access_key_id = AKID\naws_secret_access_key = topsecret\n",
        );
        let provider = ProfileFileCredentials::new(&file, "p");
        provider.load().unwrap();
        assert!(!format!("{provider:?}").contains("topsecret"));
    }
}
