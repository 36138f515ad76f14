//! The host's process list for `procstat` finders: every pid with its name, its executable's
//! path when an `exe` entry asks, and its command line when a `pattern` entry asks. One walk of `/proc` serves every entry that asks within
//! [`FRESH_FOR`], so five entries over a thousand processes cost one walk per cycle, not five.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc_files::cmdline;

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
    last: Mutex<Option<Arc<ProcessList>>>,
}

impl SharedList {
    /// A list at most [`FRESH_FOR`] old with what `wanted` asks; walks `proc` when the last one
    /// is older or lacks it.
    pub fn get(&self, proc: &Path, wanted: Wanted) -> Arc<ProcessList> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = last.as_ref()
            && list.taken.elapsed() < FRESH_FOR
            && list.wanted.covers(wanted)
        {
            return list.clone();
        }
        let list = Arc::new(walk(proc, wanted));
        *last = Some(list.clone());
        list
    }
}

/// Lists the processes under `proc` (threads are not listed: they live under `task/`). A
/// process that exits during the walk is left out.
pub fn walk(proc: &Path, wanted: Wanted) -> ProcessList {
    let taken = Instant::now();
    let mut processes = Vec::new();
    let mut path = proc.to_path_buf();
    if let Ok(entries) = std::fs::read_dir(proc) {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            path.push(pid.to_string());
            let cmdline = if wanted.cmdlines {
                path.push("cmdline");
                let raw = std::fs::read(&path).ok();
                path.pop();
                raw.map(|raw| cmdline(&raw))
            } else {
                None
            };
            let (exe, exe_denied) = if wanted.exes {
                path.push("exe");
                let target = std::fs::read_link(&path);
                path.pop();
                match target {
                    Ok(target) => (Some(target.to_string_lossy().into_owned()), false),
                    Err(err) => (None, err.kind() == std::io::ErrorKind::PermissionDenied),
                }
            } else {
                (None, false)
            };
            path.pop();
            processes.push(Listed {
                pid,
                cmdline,
                exe,
                exe_denied,
            });
        }
    }
    processes.sort_unstable_by_key(|p| p.pid);
    ProcessList {
        processes,
        wanted,
        taken,
    }
}
