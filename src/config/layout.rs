//! Where the configuration lives when `cwlite ctl` manages it: the stock agent's arrangement,
//! under one directory (`/etc/cwlite` by default).
//!
//! | stock agent (`/opt/aws/amazon-cloudwatch-agent/etc/`) | cwlite (`<etc>/`) |
//! |---|---|
//! | `amazon-cloudwatch-agent.json` (the single legacy file) | `cwlite.json` |
//! | `amazon-cloudwatch-agent.d/` (what the ctl fetches) | `amazon-cloudwatch-agent.d/` |
//! | `common-config.toml` | `common-config.toml` |
//! | `env-config.json` (`set-log-level`) | `env-config.json` |
//! | `restart` (an upgrade's "it ran" marker) | `restart` |
//!
//! This module only names the files and says which exist; `ctl` writes them, `load` reads them.

use std::path::{Path, PathBuf};

/// The directory `cwlite run --etc` and `cwlite ctl` use unless told otherwise.
pub const DEFAULT_ETC: &str = "/etc/cwlite";

/// The single configuration file, merged with the directory's files (the stock legacy file).
pub const SINGLE_FILE: &str = "cwlite.json";

/// The directory of fetched configurations, named as the stock agent names it.
pub const CONFIG_DIR: &str = "amazon-cloudwatch-agent.d";

/// The stock `common-config.toml`.
pub const COMMON_CONFIG: &str = "common-config.toml";

/// The stock file where `set-log-level` leaves the level for the running daemon.
pub const ENV_CONFIG: &str = "env-config.json";

/// The stock marker by which an upgrade remembers that the daemon ran (`ctl -a prep-restart`
/// writes it, `ctl -a cond-restart` starts the daemon again and removes it).
pub const RESTART_MARKER: &str = "restart";

/// The files of one configuration directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    etc: PathBuf,
}

impl Layout {
    /// The layout under `etc`.
    pub fn new(etc: impl Into<PathBuf>) -> Self {
        Self { etc: etc.into() }
    }

    /// The directory itself.
    pub fn etc(&self) -> &Path {
        &self.etc
    }

    /// `<etc>/cwlite.json`.
    pub fn single_file(&self) -> PathBuf {
        self.etc.join(SINGLE_FILE)
    }

    /// `<etc>/amazon-cloudwatch-agent.d`.
    pub fn dir(&self) -> PathBuf {
        self.etc.join(CONFIG_DIR)
    }

    /// `<etc>/common-config.toml`.
    pub fn common_config(&self) -> PathBuf {
        self.etc.join(COMMON_CONFIG)
    }

    /// `<etc>/env-config.json`.
    pub fn env_config(&self) -> PathBuf {
        self.etc.join(ENV_CONFIG)
    }

    /// `<etc>/restart`.
    pub fn restart_marker(&self) -> PathBuf {
        self.etc.join(RESTART_MARKER)
    }

    /// The common-config, if the file is there (it is optional, as for the stock agent).
    pub fn common_config_if_present(&self) -> Option<PathBuf> {
        let path = self.common_config();
        path.exists().then_some(path)
    }

    /// The configuration files in effect, in merge order: the single file if present, then the
    /// directory's files sorted by name (the same choice as `--config <dir>`).
    pub fn config_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let single = self.single_file();
        if single.is_file() {
            files.push(single);
        }
        files.extend(self.dir_files());
        files
    }

    /// The directory's configuration files (no `.tmp`), sorted by name.
    pub fn dir_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.dir()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file() && super::source::is_config_file_name(path))
            .collect();
        files.sort();
        files
    }

    /// Whether any configuration is in place (the stock `configstatus`).
    pub fn is_configured(&self) -> bool {
        !self.config_files().is_empty()
    }
}

impl Default for Layout {
    fn default() -> Self {
        Self::new(DEFAULT_ETC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_single_file_comes_before_the_directory_and_staged_files_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(!layout.is_configured());
        std::fs::create_dir(layout.dir()).unwrap();
        std::fs::write(layout.dir().join("ssm_b"), "{}").unwrap();
        std::fs::write(layout.dir().join("file_a.json"), "{}").unwrap();
        std::fs::write(layout.dir().join("ssm_c.tmp"), "{}").unwrap();
        std::fs::write(layout.single_file(), "{}").unwrap();
        let names: Vec<String> = layout
            .config_files()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "cwlite.json",
                "amazon-cloudwatch-agent.d/file_a.json",
                "amazon-cloudwatch-agent.d/ssm_b"
            ]
        );
        assert!(layout.is_configured());
        assert_eq!(layout.common_config_if_present(), None);
    }
}
