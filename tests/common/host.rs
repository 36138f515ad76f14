//! A host's `/etc/cwlite` and state directory for `cwlite ctl` tests.

use std::path::{Path, PathBuf};
use std::process::Output;

/// One host's `/etc/cwlite` and state directory, in a temporary directory. Dropping it kills a
/// daemon the ctl left running, so a failed test leaves no process behind.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub etc: PathBuf,
    pub state: PathBuf,
    pub init: &'static str,
    pub path: Option<String>,
}

impl Host {
    pub fn new() -> Self {
        Self::with_credentials("AKIDCTL", "s", "")
    }

    /// A host whose profile `AmazonCloudWatchAgent` holds `key` and `secret`, with `extra` TOML
    /// in its common-config.
    pub fn with_credentials(key: &str, secret: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let credentials =
            super::write_credentials(dir.path(), &[("AmazonCloudWatchAgent", key, secret)]);
        super::write_common_config(&etc, &credentials, "AmazonCloudWatchAgent", extra);
        let state = dir.path().join("state");
        Self {
            dir,
            etc,
            state,
            init: "process",
            path: None,
        }
    }

    pub fn command(&self, program: &Path, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("CWLITE", env!("CARGO_BIN_EXE_cwlite"))
            // What the stock default configuration leaves out; on a real host, the profile's.
            .env("AWS_REGION", "eu-west-1")
            .args(args)
            .arg("--etc")
            .arg(&self.etc)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--init", self.init]);
        if let Some(path) = &self.path {
            command.env("PATH", path);
        }
        command
    }

    /// `cwlite ctl <args>` on this host.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut full = vec!["ctl"];
        full.extend_from_slice(args);
        self.command(Path::new(env!("CARGO_BIN_EXE_cwlite")), &full)
            .output()
            .unwrap()
    }

    /// `cwlite ctl <args>`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `cwlite ctl <args>`, which must fail with one line on stderr; that line.
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(out.status.code(), Some(1), "ctl {args:?} did not fail");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr.trim_end().to_owned()
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["-a", "status"])).unwrap()
    }

    /// The configuration directory's file names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.etc.join("amazon-cloudwatch-agent.d"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Writes a configuration file outside `etc`, as an operator's `file:` source.
    pub fn source(&self, name: &str, json: &serde_json::Value) -> String {
        let path = super::write_json(self.dir.path(), name, json);
        format!("file:{}", path.display())
    }

    pub fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.state.join("ctl.pid")).unwrap();
        text.split_whitespace().next().unwrap().parse().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("cwlite.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.state.join("ctl.pid"))
            && let Some(pid) = text.split_whitespace().next()
        {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .status();
        }
    }
}
