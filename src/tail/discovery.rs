//! Which files a `collect_list` entry means right now.
//!
//! Owns glob expansion (`*`, `?`, `[…]` and `**`, via the `glob` crate, hidden files included as
//! in the stock agent), the stock exclusions (directories, compressed archives, base names
//! matching `blacklist`) and the stock choice of files: only the newest match by modification
//! time, unless `publish_multi_logs`. It also names the directories whose events should wake the
//! tailer, so discovery runs on change and on a slow periodic rescan instead of every second.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::go_regex::GoRegex;

/// Extensions the stock agent never tails: rotated, compressed copies.
pub const COMPRESSED_EXTENSIONS: [&str; 6] = ["tar", "zst", "gz", "zip", "bz2", "rar"];

/// Glob semantics: `*` stays within a directory, hidden files match as in the stock agent.
const MATCH_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// What to look for.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The configured `file_path`.
    pub file_path: String,
    /// Tail every match, not only the newest.
    pub publish_multi_logs: bool,
    /// Skip base names matching this.
    pub blacklist: Option<GoRegex>,
}

/// A file discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path.
    pub path: PathBuf,
    /// Its modification time.
    pub modified: SystemTime,
}

impl Pattern {
    /// The files the pattern selects now, newest first.
    pub fn discover(&self) -> Vec<Found> {
        let mut found: Vec<Found> = match glob::glob_with(&self.file_path, MATCH_OPTIONS) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|path| self.accepts(path))
                .filter_map(|path| {
                    let meta = std::fs::metadata(&path).ok()?;
                    meta.is_file().then(|| Found {
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        path,
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        found.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.path.cmp(&b.path))
        });
        if !self.publish_multi_logs {
            found.truncate(1);
        }
        found
    }

    /// Whether `path` is one of the files this pattern could select (ignoring which is newest).
    pub fn matches(&self, path: &Path) -> bool {
        glob::Pattern::new(&self.file_path)
            .is_ok_and(|glob| glob.matches_path_with(path, MATCH_OPTIONS))
            && self.accepts(path)
    }

    fn accepts(&self, path: &Path) -> bool {
        if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| COMPRESSED_EXTENSIONS.contains(&e))
        {
            return false;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        !self.blacklist.as_ref().is_some_and(|b| b.is_match(&name))
    }

    /// The directory to watch for this pattern and whether to watch below it: the longest
    /// leading part of the path without glob characters.
    pub fn watch_root(&self) -> (PathBuf, bool) {
        let mut root = PathBuf::new();
        let mut recursive = false;
        let components: Vec<&str> = self.file_path.split('/').collect();
        for (i, part) in components.iter().enumerate() {
            let is_last = i + 1 == components.len();
            if part.contains(['*', '?', '[']) {
                recursive = components[i..].contains(&"**") || components.len() - i > 1;
                break;
            }
            if is_last {
                break;
            }
            if part.is_empty() && i == 0 {
                root.push("/");
            } else {
                root.push(part);
            }
        }
        if root.as_os_str().is_empty() {
            root.push(".");
        }
        (root, recursive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn touch(path: &Path, age_secs: u64) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x\n").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn pattern(dir: &Path, glob: &str, multi: bool) -> Pattern {
        Pattern {
            file_path: format!("{}/{glob}", dir.display()),
            publish_multi_logs: multi,
            blacklist: None,
        }
    }

    fn names(found: &[Found]) -> Vec<String> {
        found
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn only_the_newest_match_unless_publish_multi_logs() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("app-1.log"), 300);
        touch(&dir.path().join("app-2.log"), 10);
        touch(&dir.path().join("app-3.log"), 100);
        assert_eq!(
            names(&pattern(dir.path(), "app-*.log", false).discover()),
            ["app-2.log"]
        );
        assert_eq!(
            names(&pattern(dir.path(), "app-*.log", true).discover()),
            ["app-2.log", "app-3.log", "app-1.log"]
        );
    }

    #[test]
    fn compressed_files_directories_and_blacklisted_names_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("syslog"), 50);
        touch(&dir.path().join("syslog.2.gz"), 1);
        touch(&dir.path().join("syslog.debug"), 40);
        std::fs::create_dir(dir.path().join("syslog.d")).unwrap();
        let mut p = pattern(dir.path(), "syslog*", true);
        p.blacklist = Some(GoRegex::new(r"\.debug$").unwrap());
        assert_eq!(names(&p.discover()), ["syslog"]);
    }

    #[test]
    fn double_star_matches_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/b/c/deep.log"), 5);
        touch(&dir.path().join("top.log"), 6);
        touch(&dir.path().join("a/other.txt"), 1);
        assert_eq!(
            names(&pattern(dir.path(), "**/*.log", true).discover()),
            ["deep.log", "top.log"]
        );
    }

    #[test]
    fn a_plain_path_is_itself() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("syslog"), 5);
        assert_eq!(
            names(&pattern(dir.path(), "syslog", false).discover()),
            ["syslog"]
        );
        assert!(pattern(dir.path(), "missing", false).discover().is_empty());
    }

    #[test]
    fn matches_agrees_with_discovery_and_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let p = pattern(dir.path(), "**/app*.log*", true);
        assert!(p.matches(&dir.path().join("x/app.log.1")));
        assert!(!p.matches(&dir.path().join("x/app.log.2.gz")), "compressed");
        assert!(!p.matches(&dir.path().join("x/other.log")));
        let single = pattern(dir.path(), "*.log", false);
        assert!(
            !single.matches(&dir.path().join("x/a.log")),
            "* stays in one directory"
        );
    }

    #[test]
    fn the_watch_root_is_the_literal_prefix() {
        let p = |path: &str| {
            Pattern {
                file_path: path.into(),
                publish_multi_logs: false,
                blacklist: None,
            }
            .watch_root()
        };
        assert_eq!(p("/var/log/syslog"), (PathBuf::from("/var/log"), false));
        assert_eq!(
            p("/var/log/app/*.log"),
            (PathBuf::from("/var/log/app"), false)
        );
        assert_eq!(p("/var/log/**/*.log"), (PathBuf::from("/var/log"), true));
        assert_eq!(p("/srv/*/logs/app.log"), (PathBuf::from("/srv"), true));
    }
}
