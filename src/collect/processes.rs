//! `processes`: processes by state and the total number of threads, from `/proc/<pid>/stat`,
//! as telegraf's processes input counts them on Linux.
//!
//! One directory walk per cycle with one reused buffer. A process that exits mid-walk is skipped.
//! `wait` exists only on BSD; it is sent as 0 so no configured measurement is ever missing.

use super::{CollectError, Host, Sample, Tags, no_tags, read_path_into};

/// The `processes` plugin.
#[derive(Debug)]
pub struct ProcessesCollector {
    tags: Tags,
    buf: String,
    path: std::path::PathBuf,
}

impl Default for ProcessesCollector {
    fn default() -> Self {
        Self {
            tags: no_tags(),
            buf: String::new(),
            path: std::path::PathBuf::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    running: u64,
    sleeping: u64,
    blocked: u64,
    zombies: u64,
    dead: u64,
    stopped: u64,
    paging: u64,
    idle: u64,
    total: u64,
    threads: u64,
}

impl ProcessesCollector {
    /// Counts every process.
    ///
    /// # Errors
    /// `/proc` cannot be listed.
    pub fn collect(&mut self, host: &Host, out: &mut Vec<Sample>) -> Result<(), CollectError> {
        let proc_dir = host.path("proc");
        let entries = std::fs::read_dir(&proc_dir).map_err(|source| CollectError::Read {
            path: proc_dir.clone(),
            source,
        })?;
        let mut counts = Counts::default();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            self.path.clear();
            self.path.push(&proc_dir);
            self.path.push(pid);
            self.path.push("stat");
            if read_path_into(&self.path, &mut self.buf).is_err() {
                continue;
            }
            // The command name may hold spaces and parentheses; the fields start after the last ')'.
            let Some(rest) = self.buf.rfind(')').map(|i| &self.buf[i + 1..]) else {
                continue;
            };
            let mut fields = rest.split_ascii_whitespace();
            let Some(state) = fields.next().and_then(|s| s.chars().next()) else {
                continue;
            };
            match state {
                'R' => counts.running += 1,
                'S' => counts.sleeping += 1,
                'D' => counts.blocked += 1,
                'Z' => counts.zombies += 1,
                'X' | 'x' => counts.dead += 1,
                'T' | 't' => counts.stopped += 1,
                'W' => counts.paging += 1,
                'I' => counts.idle += 1,
                _ => {}
            }
            counts.total += 1;
            counts.threads += fields
                .nth(16)
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
        }
        let mut push = |field: &'static str, value: u64| {
            out.push(Sample {
                field,
                value: value as f64,
                tags: self.tags.clone(),
            })
        };
        push("running", counts.running);
        push("sleeping", counts.sleeping);
        push("blocked", counts.blocked);
        push("zombies", counts.zombies);
        push("dead", counts.dead);
        push("stopped", counts.stopped);
        push("paging", counts.paging);
        push("idle", counts.idle);
        push("wait", 0);
        push("total", counts.total);
        push("total_threads", counts.threads);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, value};
    use super::*;

    fn stat(pid: u32, name: &str, state: char, threads: u32) -> String {
        format!(
            "{pid} ({name}) {state} 1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 {threads} 0 123 1000 200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
        )
    }

    #[test]
    fn processes_are_counted_by_state_with_threads() {
        let fixture = Fixture::new();
        fixture.write("proc/1/stat", &stat(1, "systemd", 'S', 1));
        fixture.write("proc/20/stat", &stat(20, "my (weird) app", 'R', 8));
        fixture.write("proc/21/stat", &stat(21, "kworker/0:1", 'I', 1));
        fixture.write("proc/22/stat", &stat(22, "defunct", 'Z', 1));
        fixture.write("proc/23/stat", &stat(23, "dd", 'D', 2));
        fixture.write("proc/self/stat", &stat(99, "not a pid dir", 'R', 50));
        let mut out = Vec::new();
        ProcessesCollector::default()
            .collect(&fixture.host(), &mut out)
            .unwrap();
        assert_eq!(value(&out, "total", None), Some(5.0));
        assert_eq!(value(&out, "running", None), Some(1.0));
        assert_eq!(value(&out, "sleeping", None), Some(1.0));
        assert_eq!(value(&out, "idle", None), Some(1.0));
        assert_eq!(value(&out, "zombies", None), Some(1.0));
        assert_eq!(value(&out, "blocked", None), Some(1.0));
        assert_eq!(value(&out, "total_threads", None), Some(13.0));
        assert_eq!(value(&out, "wait", None), Some(0.0));
        assert_eq!(out.len(), 11);
    }
}
