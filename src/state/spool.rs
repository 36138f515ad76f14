//! A bounded, durable FIFO of opaque payloads (metric batches waiting for CloudWatch).
//!
//! Each payload is one file, `<sequence>.batch`, written atomically; the spool survives restarts
//! and is read back in order at start. It is bounded in bytes: when a new payload would exceed
//! the budget, the oldest are dropped and reported, so an outage longer than the budget loses the
//! oldest data, never the newest. When the directory cannot be written (full, read-only), payloads
//! are kept in memory instead (same budget) and the error is reported, so shipping goes on.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::write_atomically;

const SUFFIX: &str = ".batch";

/// Why the spool could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool directory cannot be created or listed.
    #[error("cannot open spool directory {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A payload could not be written to disk (it is kept in memory).
    #[error("cannot write spool file {path} (kept in memory instead): {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A spooled payload could not be read back.
    #[error("cannot read spool file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

#[derive(Debug)]
enum Stored {
    File(PathBuf),
    Memory(Vec<u8>),
}

#[derive(Debug)]
struct Entry {
    sequence: u64,
    bytes: u64,
    stored: Stored,
}

/// What a push did besides storing the payload.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Sequences of the oldest payloads dropped to stay within the budget.
    pub dropped: Vec<u64>,
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    dir: Option<PathBuf>,
    max_bytes: u64,
    entries: VecDeque<Entry>,
    total_bytes: u64,
    next_sequence: u64,
}

impl Spool {
    /// Opens (creating if needed) a spool in `dir`, loading what an earlier run left.
    ///
    /// # Errors
    /// The directory cannot be created or listed.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let open_error = |source| SpoolError::Open {
            path: dir.to_owned(),
            source,
        };
        super::dir::create_private(dir).map_err(open_error)?;
        let mut found: Vec<(u64, PathBuf, u64)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(open_error)?.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if super::is_temporary(name) {
                // An interrupted write: its payload was never acknowledged as spooled.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(sequence) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            found.push((sequence, path, bytes));
        }
        found.sort();
        let next_sequence = found.last().map_or(0, |(s, _, _)| s + 1);
        let total_bytes = found.iter().map(|(_, _, b)| b).sum();
        let entries = found
            .into_iter()
            .map(|(sequence, path, bytes)| Entry {
                sequence,
                bytes,
                stored: Stored::File(path),
            })
            .collect();
        Ok(Self {
            dir: Some(dir.to_owned()),
            max_bytes,
            entries,
            total_bytes,
            next_sequence,
        })
    }

    /// A spool that only lives in memory (dry runs).
    pub fn in_memory(max_bytes: u64) -> Self {
        Self {
            dir: None,
            max_bytes,
            entries: VecDeque::new(),
            total_bytes: 0,
            next_sequence: 0,
        }
    }

    /// Appends a payload, dropping the oldest if the budget requires. Returns its sequence.
    ///
    /// # Errors
    /// The file could not be written; the payload is then kept in memory and the error is only
    /// for reporting.
    pub fn push(&mut self, payload: Vec<u8>) -> (u64, PushOutcome, Option<SpoolError>) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let bytes = payload.len() as u64;
        let mut outcome = PushOutcome::default();
        while !self.entries.is_empty() && self.total_bytes + bytes > self.max_bytes {
            if let Some(oldest) = self.entries.pop_front() {
                self.total_bytes -= oldest.bytes;
                if let Stored::File(path) = &oldest.stored {
                    let _ = std::fs::remove_file(path);
                }
                outcome.dropped.push(oldest.sequence);
            }
        }
        let (stored, error) = match &self.dir {
            None => (Stored::Memory(payload), None),
            Some(dir) => {
                let path = dir.join(format!("{sequence:020}{SUFFIX}"));
                match write_atomically(&path, &payload) {
                    Ok(()) => (Stored::File(path), None),
                    Err(source) => (
                        Stored::Memory(payload),
                        Some(SpoolError::Write { path, source }),
                    ),
                }
            }
        };
        self.total_bytes += bytes;
        self.entries.push_back(Entry {
            sequence,
            bytes,
            stored,
        });
        (sequence, outcome, error)
    }

    /// The oldest payload's sequence.
    pub fn front(&self) -> Option<u64> {
        self.entries.front().map(|e| e.sequence)
    }

    /// Every waiting sequence, oldest first.
    pub fn sequences(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().map(|e| e.sequence)
    }

    /// Reads a payload.
    ///
    /// # Errors
    /// Its file cannot be read (it is then best removed; see [`Spool::remove`]).
    pub fn read(&self, sequence: u64) -> Result<Vec<u8>, SpoolError> {
        let Some(entry) = self.entries.iter().find(|e| e.sequence == sequence) else {
            return Ok(Vec::new());
        };
        match &entry.stored {
            Stored::Memory(bytes) => Ok(bytes.clone()),
            Stored::File(path) => std::fs::read(path).map_err(|source| SpoolError::Read {
                path: path.clone(),
                source,
            }),
        }
    }

    /// Forgets a payload (delivered, or refused for good).
    pub fn remove(&mut self, sequence: u64) {
        if let Some(index) = self.entries.iter().position(|e| e.sequence == sequence)
            && let Some(entry) = self.entries.remove(index)
        {
            self.total_bytes -= entry.bytes;
            if let Stored::File(path) = entry.stored {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Payloads waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_come_back_in_order_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        for payload in [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()] {
            assert!(spool.push(payload).2.is_none());
        }
        let first = spool.front().unwrap();
        spool.remove(first);
        drop(spool);
        let reopened = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(reopened.len(), 2);
        assert_eq!(reopened.bytes(), 8);
        assert_eq!(reopened.read(reopened.front().unwrap()).unwrap(), b"two");
        let mut reopened = reopened;
        let (sequence, _, _) = reopened.push(b"four".to_vec());
        assert_eq!(sequence, 3, "sequences continue after the highest found");
    }

    #[test]
    fn the_oldest_are_dropped_to_stay_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 10).unwrap();
        spool.push(b"aaaa".to_vec());
        spool.push(b"bbbb".to_vec());
        let (_, outcome, _) = spool.push(b"cccc".to_vec());
        assert_eq!(outcome.dropped, [0]);
        assert_eq!(spool.len(), 2);
        assert!(spool.bytes() <= 10);
        assert_eq!(spool.read(spool.front().unwrap()).unwrap(), b"bbbb");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "the dropped file is deleted"
        );
    }

    #[test]
    fn leftover_temporary_files_are_cleaned_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".00000000000000000007.batch.tmp"), b"torn").unwrap();
        std::fs::write(dir.path().join("00000000000000000003.batch"), b"whole").unwrap();
        let spool = Spool::open(dir.path(), 100).unwrap();
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.read(3).unwrap(), b"whole");
        assert!(!dir.path().join(".00000000000000000007.batch.tmp").exists());
    }

    #[test]
    fn an_unwritable_directory_keeps_payloads_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 100).unwrap();
        // Remove the directory under the spool: writes now fail, as on a full or read-only disk.
        std::fs::remove_dir_all(dir.path()).unwrap();
        let (sequence, _, error) = spool.push(b"kept".to_vec());
        assert!(matches!(error, Some(SpoolError::Write { .. })));
        assert_eq!(spool.read(sequence).unwrap(), b"kept");
    }
}
