//! Which files a `collect_list` entry means right now.
//!
//! Owns glob expansion with the stock agent's semantics (`plugins/inputs/logfile/globpath`):
//! `*`, `?`, `[…]`, `{a,b}` and `**`, each component matched by `globset` (the crate that also
//! checks `file_path` at validation), hidden files included; `**` between slashes is at least
//! one directory, as gobwas/glob reads it; a component with `{`, `}` or `!` is a pattern even
//! without `*`, but the walk starts below the last component without `*`, `?` or `[`, braces or
//! not, as the stock agent's does. Then the stock exclusions (directories,
//! compressed archives, base names matching `blacklist`) and the stock choice of files: only
//! the newest match by modification time, unless `publish_multi_logs`. It also names the
//! directories whose events should wake the tailer, so discovery runs on change and on a slow
//! periodic rescan instead of every second.
//!
//! The directories it walks may belong to other users, who can plant links there. So the walk
//! itself decides what a link may do, as the stock agent's `filepath.Walk` and logrotate do:
//! - `**` never descends into a linked directory (no loop, no escape);
//! - a linked directory at a `*` level is followed only if its real path stays below the
//!   pattern's literal root;
//! - a linked file is a match only if root or the owner of its directory made the link
//!   (logrotate's `su` rule); each one refused is logged once;
//! - anything but a regular file (a FIFO, a socket, a device) is never a match.
//!
//! The walk checks a stop flag as it goes, so shutdown never waits for it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tracing::warn;

use crate::config::file_glob::{META, compile};
use crate::config::go_regex::GoRegex;

/// Extensions the stock agent never tails: rotated, compressed copies.
pub const COMPRESSED_EXTENSIONS: [&str; 6] = ["tar", "zst", "gz", "zip", "bz2", "rar"];

/// Deepest directory `**` descends to below the pattern's root.
const MAX_DEPTH: usize = 64;

/// Links refused and logged once each; at most this many are remembered.
const REFUSED_LINKS_REMEMBERED: usize = 1_000;

static REFUSED_LINKS: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

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
        self.discover_until(&AtomicBool::new(false))
    }

    /// [`Pattern::discover`], giving up (with what it found so far) once `stop` is set.
    pub fn discover_until(&self, stop: &AtomicBool) -> Vec<Found> {
        let (root, _) = self.watch_root();
        let rest = self.components_below(&root);
        let mut walk = Walk {
            pattern: self,
            real_root: std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone()),
            stop,
            seen: HashSet::new(),
            found: Vec::new(),
        };
        if rest.is_empty() {
            walk.consider(Path::new(&self.file_path));
        } else {
            walk.walk(&root, &rest, 0);
        }
        let mut found = walk.found;
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

    /// The pattern's components below its literal root (none for a plain path).
    fn components_below(&self, root: &Path) -> Vec<String> {
        let pattern = Path::new(&self.file_path);
        if !self.file_path.contains(META) {
            return Vec::new();
        }
        let skip = root
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .count();
        pattern
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .skip(skip)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    }

    /// Whether `path` is one of the files this pattern could select (ignoring which is newest).
    pub fn matches(&self, path: &Path) -> bool {
        compile(&self.file_path).is_ok_and(|glob| glob.is_match(path)) && self.accepts(path)
    }

    pub(crate) fn accepts(&self, path: &Path) -> bool {
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

/// One discovery: the walk of a pattern's components below its root.
struct Walk<'a> {
    pattern: &'a Pattern,
    /// The root's real path, which linked directories must stay below.
    real_root: PathBuf,
    stop: &'a AtomicBool,
    /// Paths already found (`**/a/**` reaches some twice).
    seen: HashSet<PathBuf>,
    found: Vec<Found>,
}

impl Walk<'_> {
    /// Matches `rest` below `dir`, which is `depth` directories below the root.
    fn walk(&mut self, dir: &Path, rest: &[String], depth: usize) {
        if self.stop.load(Ordering::Relaxed) || depth > MAX_DEPTH {
            return;
        }
        let (first, after) = (&rest[0], &rest[1..]);
        if first == "**" {
            // Last, it is every file below, at any depth; between slashes, one directory or
            // more (gobwas/glob: `/var/log/**/x.log` is not `/var/log/x.log`). Real
            // directories only, never a link.
            if after.is_empty() {
                self.walk(dir, &["*".to_owned()], depth);
            }
            for (path, kind) in self.entries(dir) {
                if kind.is_dir() {
                    if !after.is_empty() {
                        self.walk(&path, after, depth + 1);
                    }
                    self.walk(&path, rest, depth + 1);
                }
            }
            return;
        }
        let literal = !first.contains(META);
        let children: Vec<(PathBuf, std::fs::FileType)> = if literal {
            let path = dir.join(first);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) => vec![(path, meta.file_type())],
                Err(_) => return,
            }
        } else {
            let Ok(glob) = compile(first) else {
                return;
            };
            self.entries(dir)
                .into_iter()
                .filter(|(path, _)| path.file_name().is_some_and(|n| glob.is_match(n)))
                .collect()
        };
        for (path, kind) in children {
            if after.is_empty() {
                self.consider(&path);
            } else if kind.is_dir() || (kind.is_symlink() && self.stays_below_root(&path)) {
                self.walk(&path, after, depth + 1);
            }
        }
    }

    /// The entries of `dir` with their own type (a link is a link), or none if unreadable.
    fn entries(&self, dir: &Path) -> Vec<(PathBuf, std::fs::FileType)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut listed = Vec::new();
        for entry in entries.flatten() {
            if listed.len() % 256 == 0 && self.stop.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(kind) = entry.file_type() {
                listed.push((entry.path(), kind));
            }
        }
        listed
    }

    /// Whether a linked directory's real path is below the root's.
    fn stays_below_root(&self, path: &Path) -> bool {
        std::fs::canonicalize(path).is_ok_and(|real| real.starts_with(&self.real_root))
    }

    /// Adds `path` if it is a regular file (or an allowed link to one) the pattern accepts.
    fn consider(&mut self, path: &Path) {
        if !self.pattern.accepts(path) || self.seen.contains(path) {
            return;
        }
        let Ok(own) = std::fs::symlink_metadata(path) else {
            return;
        };
        if own.file_type().is_symlink()
            && let Err(reason) = link_allowed(path, &own)
        {
            refused_once(path, &reason);
            return;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_file() {
            self.seen.insert(path.to_owned());
            self.found.push(Found {
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path: path.to_owned(),
            });
        }
    }
}

/// Whether the link at `path` (whose own metadata is `link`) may be followed: only if root or
/// the owner of the directory it is in made it, so that a user who may write a log directory
/// cannot make cwlite read a file of someone else's.
pub fn link_allowed(path: &Path, link: &std::fs::Metadata) -> Result<(), String> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let dir_owner = std::fs::metadata(dir).map_err(|e| e.to_string())?.uid();
    if link.uid() == 0 || link.uid() == dir_owner {
        Ok(())
    } else {
        Err(format!(
            "it is a symbolic link owned by uid {}, neither root nor the owner of its directory (uid {dir_owner})",
            link.uid()
        ))
    }
}

/// Logs a refused link the first time it is seen.
fn refused_once(path: &Path, reason: &str) {
    let mut refused = REFUSED_LINKS.lock().unwrap_or_else(|e| e.into_inner());
    let refused = refused.get_or_insert_with(HashSet::new);
    if refused.len() < REFUSED_LINKS_REMEMBERED && refused.insert(path.to_owned()) {
        warn!(file = %crate::telemetry::shown(path), "not tailed: {reason}");
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

    /// Issue 19: the stock agent matches `**` with gobwas/glob, where `<dir>/**/*.log` needs a
    /// directory between (`plugins/inputs/logfile/globpath/globpath.go`); cwlite took none too,
    /// and so also tailed `<dir>/top.log`. A trailing `**` is every file below.
    #[test]
    fn double_star_between_slashes_is_one_directory_or_more() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/b/c/deep.log"), 5);
        touch(&dir.path().join("a/mid.log"), 4);
        touch(&dir.path().join("top.log"), 6);
        touch(&dir.path().join("a/other.txt"), 1);
        assert_eq!(
            names(&pattern(dir.path(), "**/*.log", true).discover()),
            ["mid.log", "deep.log"]
        );
        assert_eq!(
            names(&pattern(dir.path(), "**", true).discover()),
            ["other.txt", "mid.log", "deep.log", "top.log"]
        );
    }

    /// Issue 19: `{a,b}` passed validation (globset) and matched nothing in discovery (the
    /// glob crate reads braces literally). The stock agent matches them in any component after
    /// its walk's root, which ends at the first component with `*`, `?` or `[`; a brace before
    /// that is part of the root, and matches nothing there either.
    #[test]
    fn braces_are_alternatives_after_the_literal_root() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("nginx/access.log"), 5);
        touch(&dir.path().join("apache2/error.log"), 6);
        touch(&dir.path().join("app.log"), 7);
        touch(&dir.path().join("app.txt"), 8);
        touch(&dir.path().join("app.out"), 9);
        assert_eq!(
            names(&pattern(dir.path(), "*/{access,error}.log", true).discover()),
            ["access.log", "error.log"]
        );
        assert_eq!(
            names(&pattern(dir.path(), "app.{log,txt}", true).discover()),
            ["app.log", "app.txt"]
        );
        let p = pattern(dir.path(), "{nginx,apache2}/*.log", true);
        assert!(
            p.discover().is_empty(),
            "the stock root is the literal {{nginx,apache2}}"
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

    /// H2 and M1: `**` never goes through a linked directory, so a link to a directory outside
    /// the tree is not read (nor, with auto_removal, deleted from), and a loop of links ends at
    /// once instead of walking 2^40 paths.
    #[test]
    fn double_star_never_follows_a_linked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        touch(&outside.path().join("audit.log"), 5);
        let tree = dir.path().join("app");
        touch(&tree.join("real/app.log"), 5);
        std::os::unix::fs::symlink(outside.path(), tree.join("s")).unwrap();
        std::os::unix::fs::symlink(".", tree.join("a")).unwrap();
        std::os::unix::fs::symlink(".", tree.join("b")).unwrap();
        let started = std::time::Instant::now();
        let found = pattern(&tree, "**/*.log", true).discover();
        assert_eq!(names(&found), ["app.log"]);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// At a `*` level a linked directory is followed (the stock agent does) while its real
    /// path stays below the pattern's root.
    #[test]
    fn a_linked_directory_at_a_star_level_is_followed_only_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        touch(&outside.path().join("logs/app.log"), 5);
        touch(&dir.path().join("release-5/logs/app.log"), 5);
        std::os::unix::fs::symlink(dir.path().join("release-5"), dir.path().join("current"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let found = pattern(dir.path(), "*/logs/app.log", true).discover();
        let mut paths: Vec<_> = found.iter().map(|f| f.path.clone()).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                dir.path().join("current/logs/app.log"),
                dir.path().join("release-5/logs/app.log")
            ]
        );
    }

    /// M2 and M3: a FIFO is never a match, and a linked file only when root or the owner of
    /// its directory made the link.
    #[test]
    fn fifos_and_links_made_by_other_users_are_not_matches() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("real.log"), 5);
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo.log"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let link = dir.path().join("evil.log");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let own = pattern(dir.path(), "*.log", true);
        let is_root = rustix::process::geteuid().is_root();
        if is_root {
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            assert_eq!(names(&own.discover()), ["real.log"]);
            // The directory's owner may link, as logrotate's `su` rule allows.
            std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        }
        let mut allowed = names(&own.discover());
        allowed.sort();
        assert_eq!(allowed, ["evil.log", "real.log"]);
    }

    #[test]
    fn discovery_gives_up_once_stopped() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/b/app.log"), 5);
        let stop = AtomicBool::new(true);
        assert!(
            pattern(dir.path(), "**/*.log", true)
                .discover_until(&stop)
                .is_empty()
        );
    }
}
