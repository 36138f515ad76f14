//! Journal cursors: the position of each `journald` entry, moved only over what CloudWatch
//! acknowledged, and its file in the state directory.
//!
//! Owns [`CursorTracker`] and [`CursorStore`]. A journal reader numbers the entries it reads
//! (sequence numbers stand in for byte offsets, so the shipper's acknowledgements of ranges
//! work unchanged) and registers each number's cursor here before any of them can be
//! acknowledged; the tracker keeps a cursor only until its entry is delivered. A cursor is a
//! position in the whole journal, whatever the entry's units or matches, so an entry changed
//! between runs goes on from where it was; one read from another `directory` is not used. It
//! knows nothing of journalctl or of AWS.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::checkpoint::{AckTracker, CheckpointError};

/// What a journal reader tells the checkpointer about entries it read, before any of them can
/// be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRead {
    /// Which `journald` entry.
    pub entry: usize,
    /// The sequence number of the first entry read.
    pub first: u64,
    /// The cursor of each entry read, in order.
    pub cursors: Vec<Box<str>>,
    /// Sequence ranges `[start, end)` not sent (filtered out, unreadable): delivered as far as
    /// the cursor is concerned.
    pub skipped: Vec<(u64, u64)>,
}

/// Cursors of read entries, and the one everything up to which is delivered.
#[derive(Debug, Default)]
pub struct CursorTracker {
    /// Sequence numbers acknowledged (delivered or deliberately skipped).
    acked: AckTracker,
    /// Cursors of entries read and not yet delivered, by sequence number.
    pending: BTreeMap<u64, Box<str>>,
    /// The cursor of the last entry of the delivered prefix.
    delivered: Option<Box<str>>,
    /// `delivered` moved since it was last taken.
    changed: bool,
}

impl CursorTracker {
    /// Entries were read: their cursors, and what of them is not sent.
    pub fn apply(&mut self, read: JournalRead) {
        for (i, cursor) in read.cursors.into_iter().enumerate() {
            self.pending.insert(read.first + i as u64, cursor);
        }
        for (start, end) in read.skipped {
            self.acked.ack(start, end);
        }
        self.settle();
    }

    /// Entries `[start, end)` are delivered, or skipped on purpose (filtered).
    pub fn ack(&mut self, start: u64, end: u64) {
        if self.acked.ack(start, end).is_some() {
            self.settle();
        }
    }

    /// Takes the cursors of the delivered prefix; the last becomes the delivered cursor.
    fn settle(&mut self) {
        let committed = self.acked.committed();
        let mut last = None;
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= committed {
                break;
            }
            last = Some(entry.remove());
        }
        if let Some(cursor) = last {
            self.delivered = Some(cursor);
            self.changed = true;
        }
    }

    /// The delivered cursor, once after each move.
    pub fn take_changed(&mut self) -> Option<&str> {
        std::mem::take(&mut self.changed)
            .then_some(self.delivered.as_deref())
            .flatten()
    }

    /// Entries read and not yet delivered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Every `journald` entry's tracker, and their files: what the checkpointer keeps for the
/// journal beside its file checkpoints.
#[derive(Debug)]
pub struct JournalCheckpoints {
    trackers: Vec<CursorTracker>,
    directories: Vec<Option<PathBuf>>,
    /// `None` in a dry run: nothing is written.
    store: Option<CursorStore>,
    changed: bool,
}

impl JournalCheckpoints {
    /// One tracker per entry, each reading `directories[i]` (`None`: the system journal).
    pub fn new(store: Option<CursorStore>, directories: Vec<Option<PathBuf>>) -> Self {
        Self {
            trackers: directories
                .iter()
                .map(|_| CursorTracker::default())
                .collect(),
            directories,
            store,
            changed: false,
        }
    }

    /// A reader's registration.
    pub fn apply(&mut self, read: JournalRead) {
        if let Some(tracker) = self.trackers.get_mut(read.entry) {
            tracker.apply(read);
            self.changed |= tracker.changed;
        }
    }

    /// The shipper's acknowledgement of entries `[start, end)` of `entry`.
    pub fn ack(&mut self, entry: usize, start: u64, end: u64) {
        if let Some(tracker) = self.trackers.get_mut(entry) {
            tracker.ack(start, end);
            self.changed |= tracker.changed;
        }
    }

    /// Whether a cursor moved since the last flush.
    pub fn has_changes(&self) -> bool {
        self.changed
    }

    /// Writes every cursor that moved. A failed write is tried again at the next flush.
    pub fn flush(&mut self) -> Vec<CheckpointError> {
        self.changed = false;
        let mut errors = Vec::new();
        for (entry, tracker) in self.trackers.iter_mut().enumerate() {
            let Some(cursor) = tracker.take_changed() else {
                continue;
            };
            let Some(store) = &self.store else {
                continue;
            };
            if let Err(err) = store.write(entry, self.directories[entry].as_deref(), cursor) {
                tracker.changed = true;
                self.changed = true;
                errors.push(err);
            }
        }
        errors
    }
}

/// Most bytes of a cursor file: a cursor is about 120 bytes, a directory at most a path.
const MAX_CURSOR_FILE: u64 = 8192;

/// The cursor files, one per `journald` entry, in one directory of the state directory.
#[derive(Debug, Clone)]
pub struct CursorStore {
    dir: PathBuf,
}

impl CursorStore {
    /// A store in `dir`, created if missing.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        Ok(Self {
            dir: super::checkpoint::open_dir(dir)?,
        })
    }

    fn path(&self, entry: usize) -> PathBuf {
        self.dir.join(format!("journald-{entry}"))
    }

    /// Entry `entry`'s cursor, if one was stored while it read `directory` (`None`: the
    /// system journal).
    ///
    /// # Errors
    /// The file is there but cannot be read or is not a cursor file.
    pub fn load(
        &self,
        entry: usize,
        directory: Option<&Path>,
    ) -> Result<Option<String>, CheckpointError> {
        let path = self.path(entry);
        let file = match crate::regular::open(std::fs::OpenOptions::new().read(true), &path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let mut text = String::new();
        file.take(MAX_CURSOR_FILE)
            .read_to_string(&mut text)
            .map_err(|source| CheckpointError::Io {
                path: path.clone(),
                source,
            })?;
        let malformed = |reason: &str| CheckpointError::Malformed {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        // Padding newlines of an in-place rewrite follow the two lines.
        let mut lines = text.lines();
        let cursor = lines
            .next()
            .filter(|c| is_cursor(c))
            .ok_or_else(|| malformed("the first line is not a journal cursor"))?;
        let stored_directory = lines
            .next()
            .and_then(|l| l.strip_prefix("directory="))
            .ok_or_else(|| malformed("no directory line"))?;
        let wanted = directory.map(|d| d.to_string_lossy()).unwrap_or_default();
        Ok((stored_directory == wanted).then(|| cursor.to_owned()))
    }

    /// Stores entry `entry`'s delivered cursor.
    ///
    /// # Errors
    /// The write failed; the previous cursor is intact.
    pub fn write(
        &self,
        entry: usize,
        directory: Option<&Path>,
        cursor: &str,
    ) -> Result<(), CheckpointError> {
        let path = self.path(entry);
        let text = format!(
            "{cursor}\ndirectory={}\n",
            directory.map(|d| d.to_string_lossy()).unwrap_or_default()
        );
        super::write_small(&path, text.as_bytes())
            .map_err(|source| CheckpointError::Io { path, source })
    }
}

/// A journal cursor as sd-journal writes them: `;`-separated `key=value` parts, printable
/// ASCII (`s=…;i=…;b=…;m=…;t=…;x=…`).
pub fn is_cursor(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 1024
        && text.bytes().all(|b| b.is_ascii_graphic())
        && text.split(';').all(|part| {
            part.split_once('=')
                .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors(names: &[&str]) -> Vec<Box<str>> {
        names.iter().map(|n| Box::from(*n)).collect()
    }

    #[test]
    fn the_cursor_moves_only_over_a_delivered_prefix() {
        let read = |first, names: &[&str], skipped: Vec<(u64, u64)>| JournalRead {
            entry: 0,
            first,
            cursors: cursors(names),
            skipped,
        };
        let mut tracker = CursorTracker::default();
        tracker.apply(read(0, &["s=a;i=1", "s=a;i=2", "s=a;i=3"], vec![]));
        tracker.ack(1, 3);
        assert_eq!(tracker.take_changed(), None, "entry 0 is still in flight");
        tracker.ack(0, 1);
        assert_eq!(tracker.take_changed(), Some("s=a;i=3"));
        assert_eq!(tracker.take_changed(), None, "once per move");
        assert_eq!(tracker.pending(), 0);
        tracker.ack(3, 4);
        assert_eq!(
            tracker.take_changed(),
            None,
            "an acknowledgement before its entry's cursor"
        );
        tracker.apply(read(3, &["s=a;i=4", "s=a;i=5", "s=a;i=6"], vec![(5, 6)]));
        assert_eq!(tracker.take_changed(), Some("s=a;i=4"));
        tracker.ack(4, 5);
        assert_eq!(
            tracker.take_changed(),
            Some("s=a;i=6"),
            "a filtered entry moves it too"
        );
    }

    #[test]
    fn only_delivered_cursors_reach_the_file_and_a_failed_write_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::open(&dir.path().join("journal")).unwrap();
        let mut journal = JournalCheckpoints::new(Some(store.clone()), vec![None, None]);
        journal.apply(JournalRead {
            entry: 1,
            first: 0,
            cursors: cursors(&["s=a;i=1", "s=a;i=2"]),
            skipped: vec![],
        });
        assert!(!journal.has_changes());
        journal.ack(1, 0, 1);
        assert!(journal.has_changes());
        assert!(journal.flush().is_empty());
        assert_eq!(store.load(1, None).unwrap().as_deref(), Some("s=a;i=1"));
        assert_eq!(store.load(0, None).unwrap(), None);
        std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
        journal.ack(1, 1, 2);
        assert_eq!(journal.flush().len(), 1, "the directory is gone");
        assert!(journal.has_changes(), "tried again");
        super::super::dir::create_private(&dir.path().join("journal")).unwrap();
        assert!(journal.flush().is_empty());
        assert_eq!(store.load(1, None).unwrap().as_deref(), Some("s=a;i=2"));
    }

    #[test]
    fn a_cursor_file_round_trips_and_belongs_to_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::open(&dir.path().join("journal")).unwrap();
        let cursor = "s=0b;i=2a;b=11;m=3e8;t=61d;x=9f";
        assert_eq!(store.load(0, None).unwrap(), None, "nothing stored yet");
        store.write(0, None, cursor).unwrap();
        assert_eq!(store.load(0, None).unwrap().as_deref(), Some(cursor));
        store.write(0, None, "s=0b;i=2b").unwrap();
        assert_eq!(
            store.load(0, None).unwrap().as_deref(),
            Some("s=0b;i=2b"),
            "a shorter cursor rewritten in place"
        );
        let other = Path::new("/var/log/other-journal");
        assert_eq!(
            store.load(0, Some(other)).unwrap(),
            None,
            "a cursor of another journal is not used"
        );
        store.write(1, Some(other), cursor).unwrap();
        assert_eq!(store.load(1, Some(other)).unwrap().as_deref(), Some(cursor));
        std::fs::write(dir.path().join("journal/journald-2"), "garbage here\n").unwrap();
        assert!(matches!(
            store.load(2, None),
            Err(CheckpointError::Malformed { .. })
        ));
    }

    #[test]
    fn cursors_are_printable_key_value_parts() {
        assert!(is_cursor(
            "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8314bd7;m=1;t=5;x=a"
        ));
        assert!(!is_cursor(""));
        assert!(!is_cursor("no parts"));
        assert!(!is_cursor("s=a;;i=2"));
        assert!(!is_cursor("s=a\ni=2"));
    }
}
