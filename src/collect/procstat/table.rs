//! The host's process list for `procstat` finders: every pid with its name, its executable's
//! path when an `exe` entry asks, and its command line when a `pattern` entry asks. One walk of `/proc` serves every entry that asks within
//! [`FRESH_FOR`], so five entries over a thousand processes cost one walk per cycle, not five.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc_files::cmdline;
use crate::collect::read_file_into;

/// How long a walk serves later asks: entries with the same interval tick together, within
/// milliseconds of each other, so they share it; a process started since is seen next cycle.
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// One process of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The pid.
    pub pid: u32,
    /// gopsutil's `Cmdline`, when the walk read command lines (`None` if unreadable).
    pub cmdline: Option<String>,
    /// The target of `/proc/<pid>/exe`, when the walk read them (`None` if unreadable: a
    /// kernel thread, or another user's process when cwlite is not root).
    pub exe: Option<String>,
    /// `/proc/<pid>/exe` exists but this user may not read it.
    pub exe_denied: bool,
}

/// What a walk reads for each pid. Names are not read here: only the processes an entry
/// matches need one, and reading every process's `stat` would double the walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Command lines (`pattern`).
    pub cmdlines: bool,
    /// Executable paths (`exe`).
    pub exes: bool,
}

impl Wanted {
    fn union(self, other: Wanted) -> Wanted {
        Wanted {
            cmdlines: self.cmdlines || other.cmdlines,
            exes: self.exes || other.exes,
        }
    }

    fn covers(self, other: Wanted) -> bool {
        (self.cmdlines || !other.cmdlines) && (self.exes || !other.exes)
    }
}

/// A walk of `/proc`.
#[derive(Debug)]
pub struct ProcessList {
    /// The processes, by pid.
    pub processes: Vec<Listed>,
    /// What was read for each.
    pub wanted: Wanted,
    taken: Instant,
}

/// The last walk, shared by every `procstat` collector of a [`crate::collect::Host`].
#[derive(Debug, Default)]
pub struct SharedList {
    last: Mutex<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    list: Option<Arc<ProcessList>>,
    /// Everything any entry has asked for: a walk reads it all, so entries that want exe links
    /// and entries that want command lines share one walk a cycle rather than one each.
    asked: Wanted,
}

impl SharedList {
    /// Makes the next ask walk again, keeping what entries asked for: a new cycle, for benches
    /// that measure one without waiting [`FRESH_FOR`].
    pub fn expire(&self) {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).list = None;
    }

    /// A list at most [`FRESH_FOR`] old with what `wanted` asks; walks `proc` when the last one
    /// is older or lacks it.
    ///
    /// # Errors
    /// `/proc` cannot be listed.
    pub fn get(&self, proc: &Path, wanted: Wanted) -> std::io::Result<Arc<ProcessList>> {
        let mut shared = self.last.lock().unwrap_or_else(|e| e.into_inner());
        shared.asked = shared.asked.union(wanted);
        if let Some(list) = shared.list.as_ref()
            && list.taken.elapsed() < FRESH_FOR
            && list.wanted.covers(wanted)
        {
            return Ok(list.clone());
        }
        let list = Arc::new(walk(proc, shared.asked)?);
        shared.list = Some(list.clone());
        Ok(list)
    }
}

/// Lists the processes under `proc` (threads are not listed: they live under `task/`). A
/// process that exits during the walk is left out.
///
/// # Errors
/// `proc` cannot be listed or opened.
pub fn walk(proc: &Path, wanted: Wanted) -> std::io::Result<ProcessList> {
    let taken = Instant::now();
    let mut processes = Vec::new();
    let mut raw = Vec::new();
    let mut name = String::new();
    // Files are opened relative to `/proc` itself: one path component less to look up for
    // each of thousands of files a cycle.
    let dir = rustix::fs::open(
        proc,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let dir = dir?;
    {
        for entry in std::fs::read_dir(proc)?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = if wanted.cmdlines {
                name.clear();
                let _ = write!(name, "{pid}/cmdline");
                read_at(&dir, &name, &mut raw).ok().map(|()| cmdline(&raw))
            } else {
                None
            };
            let (exe, exe_denied) = if wanted.exes {
                name.clear();
                let _ = write!(name, "{pid}/exe");
                match rustix::fs::readlinkat(&dir, name.as_str(), Vec::new()) {
                    Ok(target) => (Some(target.to_string_lossy().into_owned()), false),
                    Err(err) => (None, err == rustix::io::Errno::ACCESS),
                }
            } else {
                (None, false)
            };
            processes.push(Listed {
                pid,
                cmdline,
                exe,
                exe_denied,
            });
        }
    }
    processes.sort_unstable_by_key(|p| p.pid);
    Ok(ProcessList {
        processes,
        wanted,
        taken,
    })
}

/// Reads the whole file `name` under `dir` into `buf` (cleared first): `openat`, `read`s,
/// `close`.
fn read_at(dir: &impl std::os::fd::AsFd, name: &str, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let file = rustix::fs::openat(
        dir,
        name,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    read_file_into(&mut std::fs::File::from(file), buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_wanting_different_things_share_one_walk_after_the_first_cycle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("1")).unwrap();
        std::fs::write(dir.path().join("1/cmdline"), b"init\0").unwrap();
        let shared = SharedList::default();
        let exes = Wanted {
            exes: true,
            ..Wanted::default()
        };
        let cmdlines = Wanted {
            cmdlines: true,
            ..Wanted::default()
        };
        let first = shared.get(dir.path(), cmdlines).unwrap();
        let second = shared.get(dir.path(), exes).unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "the first cycle learns");
        assert!(second.wanted.covers(cmdlines) && second.wanted.covers(exes));
        let third = shared.get(dir.path(), cmdlines).unwrap();
        assert!(
            shared.get(&dir.path().join("missing"), cmdlines).is_ok(),
            "fresh: not walked"
        );
        shared.expire();
        assert!(shared.get(&dir.path().join("missing"), cmdlines).is_err());
        assert!(Arc::ptr_eq(&second, &third), "one walk serves both");
        assert_eq!(third.processes[0].cmdline.as_deref(), Some("init"));
    }
}
