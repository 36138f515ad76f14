//! One tailed file's state machine: open, read, and notice rotation, truncation and deletion.
//!
//! Owns the open descriptor, its [`LineReader`] and the file's identity (device, inode and a
//! CRC-32 of its first bytes; never the path alone). At each end of file it looks at the path
//! again and decides:
//! - **renamed away and recreated** (rename rotation): this file is detached and its descriptor
//!   read on while its writer may still append; the caller opens the new file from offset 0;
//! - **shrunk** (copytruncate, `> file`): read again from 0;
//! - **same size or larger but a different head** (truncated and rewritten past the old size
//!   between two looks, or an inode reused by a new file): read again from 0;
//! - **deleted**: detached likewise, and read until its writer is done.
//!
//! To keep descriptors bounded when a glob matches thousands of files, an idle file can be
//! closed: it then remembers its identity, offset and modification time, costs one `stat` per
//! look, and is reopened when it changed. A file renamed away while closed is found again by its
//! identity among its siblings ([`locate`]), so its tail is not lost either.
//!
//! Lines written between a copytruncate's copy and its truncate cannot be seen by anyone; that
//! window is inherent to copytruncate. It knows nothing of events or CloudWatch.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::line_reader::{Framing, Line, LineReader};
use crate::state::checkpoint::FileIdentity;

/// Head bytes covered by the fingerprint: long enough to differ between files that start with
/// a timestamp, short enough to read at every end of file.
pub const FINGERPRINT_BYTES: u32 = 1024;

/// The identity of the open file `file` (reading its head without moving its offset).
///
/// # Errors
/// `fstat` or the head read failed.
pub fn identify(file: &File) -> io::Result<FileIdentity> {
    let meta = file.metadata()?;
    let len = FINGERPRINT_BYTES.min(u32::try_from(meta.len()).unwrap_or(FINGERPRINT_BYTES));
    let (fingerprint, fingerprint_len) = head_crc(file, len)?;
    Ok(FileIdentity {
        device: meta.dev(),
        inode: meta.ino(),
        fingerprint,
        fingerprint_len,
    })
}

fn head_crc(file: &File, len: u32) -> io::Result<(u64, u32)> {
    // On the stack: this runs at every end of file of every busy file (a heap buffer was a
    // malloc, a zeroing and a free each time). cwlite never fingerprints more than
    // `FINGERPRINT_BYTES`; a longer length can only come from an edited checkpoint, and is
    // read as that many (so it does not match) rather than allocated.
    let mut head = [0u8; FINGERPRINT_BYTES as usize];
    let head = &mut head[..(len as usize).min(FINGERPRINT_BYTES as usize)];
    let mut read = 0;
    while read < head.len() {
        let n = file.read_at(&mut head[read..], read as u64)?;
        if n == 0 {
            break;
        }
        read += n;
    }
    Ok((u64::from(crc32fast::hash(&head[..read])), read as u32))
}

/// Opens a log file for reading as a hostile directory requires: without waiting on a FIFO
/// swapped in after the `stat` (`O_NONBLOCK`), following a link only if root or the owner of
/// its directory made it (see `discovery::link_allowed`), and only if what opened is a
/// regular file (`fstat` of the descriptor, not of the path).
///
/// # Errors
/// The file cannot be opened, or is a refused link or not a regular file.
pub fn open_log(path: &Path) -> io::Result<File> {
    use crate::regular::{Refused, refused};
    let open = |path: &Path| crate::regular::open(std::fs::OpenOptions::new().read(true), path);
    match open(path) {
        Err(err) if refused(&err) == Some(Refused::Link) => {
            let link = std::fs::symlink_metadata(path)?;
            super::discovery::link_allowed(path, &link).map_err(io::Error::other)?;
            // The link's target, resolved now: a link swapped in after the check is refused
            // by O_NOFOLLOW rather than followed.
            open(&std::fs::canonicalize(path)?)
        }
        other => other,
    }
}

/// Where the file `identity` names is now: at `path`, or under another name in the same
/// directory (a renamed rotation such as `app.log.1` keeps the inode). `None` when it is gone.
pub fn locate(path: &Path, identity: FileIdentity) -> Option<PathBuf> {
    use std::os::unix::fs::DirEntryExt;
    let is_it = |candidate: &Path| {
        std::fs::metadata(candidate).is_ok_and(|meta| {
            meta.is_file() && meta.dev() == identity.device && meta.ino() == identity.inode
        }) && open_log(candidate)
            .and_then(|file| head_crc(&file, identity.fingerprint_len))
            .is_ok_and(|(crc, _)| crc == identity.fingerprint)
    };
    if is_it(path) {
        return Some(path.to_owned());
    }
    std::fs::read_dir(path.parent()?)
        .ok()?
        .flatten()
        // The directory entry's inode number costs no `stat`: only a likely match is opened.
        .filter(|entry| entry.ino() == identity.inode)
        .map(|entry| entry.path())
        .find(|candidate| is_it(candidate))
}

/// What a poll found besides lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing special: more lines may come later.
    None,
    /// The path now names a new file. This one stays open (detached) so whatever its writer
    /// still appends is read; the caller opens the new file.
    Rotated,
    /// The file was truncated (or rewritten); reading goes on from its start.
    Truncated,
    /// The path is gone. The file stays open (detached) until its writer is done with it.
    Deleted,
}

/// A file being tailed.
#[derive(Debug)]
pub struct TailedFile {
    path: PathBuf,
    /// `None` while closed to save a descriptor (see [`TailedFile::close`]), or when a detached
    /// file could not be found again.
    file: Option<File>,
    /// The modification time when it was closed: a change reopens it.
    closed_mtime: Option<SystemTime>,
    /// Where reading stood when the last truncation was noticed.
    truncated_at: u64,
    identity: FileIdentity,
    reader: LineReader,
    /// Bytes read from the descriptor so far (the next read's offset).
    read_offset: u64,
    chunk_bytes: usize,
    max_line_bytes: usize,
    framing: Framing,
    /// The path no longer names this file (renamed away or deleted). Its descriptor is still read:
    /// a writer may keep appending to it until it reopens its log (logrotate's postrotate HUP).
    detached: bool,
}

impl TailedFile {
    /// Opens `path` and positions it at `offset` (a checkpoint), or at 0 when the checkpoint
    /// belongs to another file (`expected` identity differs) or lies past the end.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(
        path: &Path,
        offset: u64,
        expected: Option<FileIdentity>,
        chunk_bytes: usize,
        max_line_bytes: usize,
    ) -> io::Result<Self> {
        Self::open_framed(
            path,
            offset,
            expected,
            chunk_bytes,
            max_line_bytes,
            Framing::Bytes,
        )
    }

    /// [`TailedFile::open`] for a file whose lines end as `framing` says (UTF-16 files).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open_framed(
        path: &Path,
        offset: u64,
        expected: Option<FileIdentity>,
        chunk_bytes: usize,
        max_line_bytes: usize,
        framing: Framing,
    ) -> io::Result<Self> {
        let mut file = open_log(path)?;
        let identity = identify(&file)?;
        let len = file.metadata()?.len();
        let same_file = match expected {
            // Stock checkpoints carry no identity: trust the path, as the stock agent does.
            None => true,
            Some(expected) => {
                expected.device == identity.device
                    && expected.inode == identity.inode
                    && head_crc(&file, expected.fingerprint_len)?.0 == expected.fingerprint
            }
        };
        let start = if same_file && offset <= len {
            offset
        } else {
            0
        };
        file.seek(SeekFrom::Start(start))?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
            closed_mtime: None,
            truncated_at: 0,
            identity,
            reader: LineReader::new(start, chunk_bytes, max_line_bytes).with_framing(framing),
            read_offset: start,
            chunk_bytes,
            max_line_bytes,
            framing,
            detached: false,
        })
    }

    /// Opens the older file `identity` names, found at `path` (see [`locate`]), at `offset`,
    /// already detached: it is read to its end and until its writer is done. `None` when the
    /// file there is not that one after all, or is shorter than `offset`.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open_rotated(
        path: &Path,
        offset: u64,
        identity: FileIdentity,
        chunk_bytes: usize,
        max_line_bytes: usize,
        framing: Framing,
    ) -> io::Result<Option<Self>> {
        let mut file = Self::open_framed(
            path,
            offset,
            Some(identity),
            chunk_bytes,
            max_line_bytes,
            framing,
        )?;
        let same = file.identity.device == identity.device && file.identity.inode == identity.inode;
        if !same || file.offset() != offset {
            return Ok(None);
        }
        file.detached = true;
        Ok(Some(file))
    }

    /// The file's identity (for its checkpoint).
    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    /// The path being tailed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset of the first byte not yet handed on as a line.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// Reads up to `budget` bytes and hands on every complete line; at the end of the file,
    /// checks the path for rotation, truncation or deletion.
    ///
    /// # Errors
    /// A read failed; the state is unchanged and the call can be repeated.
    pub fn poll(&mut self, budget: usize, out: &mut Vec<Line>) -> io::Result<Change> {
        let mut moved = Change::None;
        if self.file.is_none() {
            if self.detached {
                return Ok(Change::None);
            }
            match self.reopen()? {
                Some(Change::None) => {}
                Some(change) => moved = change,
                None => return Ok(Change::None),
            }
        }
        // Before reading on from the old offset: a file truncated and rewritten past its old size
        // since the last look would otherwise hand on lines from the middle of its new content.
        if !self.detached && self.rewritten()? {
            out.extend(self.reader.take_partial());
            self.truncated_at = self.reader.offset();
            self.restart()?;
            return Ok(Change::Truncated);
        }
        let Some(file) = &self.file else {
            return Ok(moved);
        };
        // One `fstat` says how much there is to read: no read at the end of the file, and no
        // buffer prepared beyond what is there.
        let len = file.metadata()?.len();
        let mut read_now = 0;
        loop {
            while let Some(line) = self.reader.next_line() {
                out.push(line);
            }
            if read_now >= budget {
                return Ok(Change::None);
            }
            let available = usize::try_from(len.saturating_sub(self.read_offset))
                .unwrap_or(usize::MAX)
                .min(budget - read_now);
            let n = self
                .reader
                .fill_from(&mut file.take((budget - read_now) as u64), available)?;
            if n == 0 {
                break;
            }
            read_now += n;
            self.read_offset += n as u64;
        }
        self.reader.release_idle();
        if moved != Change::None {
            return Ok(moved);
        }
        self.at_end()
    }

    /// Looks at a closed file's path: `None` when nothing changed (it stays closed), `Some(None)`
    /// when it grew or changed in place (reopened), and `Some(Rotated | Deleted)` when the path
    /// no longer names it: it is then detached and reopened wherever it went, if anywhere.
    fn reopen(&mut self) -> io::Result<Option<Change>> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(meta),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        if let Some(meta) = &meta
            && meta.dev() == self.identity.device
            && meta.ino() == self.identity.inode
        {
            if meta.len() == self.read_offset && meta.modified().ok() == self.closed_mtime {
                return Ok(None);
            }
            let mut file = open_log(&self.path)?;
            // The path may have been rotated between the `stat` and the `open`: only the same
            // file goes on at the old offset.
            let opened = file.metadata()?;
            if (opened.dev(), opened.ino()) == (self.identity.device, self.identity.inode) {
                file.seek(SeekFrom::Start(self.read_offset))?;
                self.file = Some(file);
                self.closed_mtime = None;
                return Ok(Some(Change::None));
            }
        }
        self.detached = true;
        if let Some(found) = locate(&self.path, self.identity) {
            let mut file = open_log(&found)?;
            if file.metadata()?.len() >= self.read_offset {
                file.seek(SeekFrom::Start(self.read_offset))?;
                self.file = Some(file);
            }
        }
        Ok(Some(if meta.is_some() {
            Change::Rotated
        } else {
            Change::Deleted
        }))
    }

    /// Closes the descriptor of a file that is read to its end and not detached, to keep the
    /// number of open files bounded; the next [`TailedFile::poll`] reopens it if it changed.
    /// Returns whether it was closed.
    pub fn close(&mut self) -> bool {
        // A partial line stays in the reader: the file is reopened where reading stopped
        // (`read_offset`, past the partial), so the line completes as if it had stayed open.
        // Keeping such files open let 256 files with partial lines hold every descriptor.
        if self.detached {
            return false;
        }
        let Some(file) = self.file.take() else {
            return false;
        };
        self.closed_mtime = file.metadata().and_then(|m| m.modified()).ok();
        true
    }

    /// Whether the descriptor is closed (see [`TailedFile::close`]).
    pub fn is_closed(&self) -> bool {
        self.file.is_none()
    }

    /// Where reading stood when the last [`Change::Truncated`] was reported: everything before
    /// it belonged to the old content.
    pub fn truncated_at(&self) -> u64 {
        self.truncated_at
    }

    /// Whether the open file shrank below what was read or its head is no longer the same.
    fn rewritten(&self) -> io::Result<bool> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let len = file.metadata()?.len();
        Ok(len < self.read_offset
            || head_crc(file, self.identity.fingerprint_len)?.0 != self.identity.fingerprint)
    }

    fn at_end(&mut self) -> io::Result<Change> {
        if self.detached {
            return Ok(Change::None);
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.detached = true;
                return Ok(Change::Deleted);
            }
            Err(err) => return Err(err),
        };
        if meta.dev() != self.identity.device || meta.ino() != self.identity.inode {
            // The path names a new file now. This one keeps being read through its descriptor
            // (its writer may not have reopened yet); the caller opens the new one.
            self.detached = true;
            return Ok(Change::Rotated);
        }
        // A truncation is caught by the check at the start of the next poll, before any read.
        if let Some(file) = &self.file
            && self.identity.fingerprint_len < FINGERPRINT_BYTES
            && file.metadata()?.len() > u64::from(self.identity.fingerprint_len)
        {
            // The file grew past the bytes its fingerprint covers: cover more while it is ours.
            self.identity = identify(file)?;
        }
        Ok(Change::None)
    }

    /// Whether the path no longer names this file (see [`Change::Rotated`] and [`Change::Deleted`]).
    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// Reads the rewritten file from its start.
    fn restart(&mut self) -> io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(0))?;
        self.identity = identify(file)?;
        self.read_offset = 0;
        self.reader =
            LineReader::new(0, self.chunk_bytes, self.max_line_bytes).with_framing(self.framing);
        Ok(())
    }

    /// Bytes of a final line still waiting for its newline.
    pub fn pending_bytes(&self) -> usize {
        self.reader.pending_bytes()
    }

    /// Memory the held-back final line keeps alive (see `LineReader::held_bytes`).
    pub fn held_bytes(&self) -> usize {
        self.reader.held_bytes()
    }

    /// The held-back final line without newline, if any (idle timeout, rotation, deletion,
    /// or too much held back over all files).
    pub fn take_partial(&mut self) -> Option<Line> {
        self.reader.take_partial()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn drain(file: &mut TailedFile) -> (Vec<String>, Change) {
        let mut lines = Vec::new();
        let change = file.poll(usize::MAX, &mut lines).unwrap();
        (
            lines
                .iter()
                .map(|l| String::from_utf8(l.bytes.to_vec()).unwrap())
                .collect(),
            change,
        )
    }

    fn open(path: &Path) -> TailedFile {
        TailedFile::open(path, 0, None, 64, 1 << 20).unwrap()
    }

    #[test]
    fn a_fingerprint_covers_at_most_its_bytes_whatever_a_checkpoint_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let text: String = (0..300).map(|i| format!("{i:>6}\n")).collect();
        append(&path, &text);
        let file = File::open(&path).unwrap();
        let head = |n: usize| u64::from(crc32fast::hash(&text.as_bytes()[..n]));
        assert_eq!(head_crc(&file, 10).unwrap(), (head(10), 10));
        let whole = (head(FINGERPRINT_BYTES as usize), FINGERPRINT_BYTES);
        assert_eq!(head_crc(&file, FINGERPRINT_BYTES).unwrap(), whole);
        // An edited checkpoint's length is not allocated.
        assert_eq!(head_crc(&file, u32::MAX).unwrap(), whole);
        assert_eq!(identify(&file).unwrap().fingerprint_len, FINGERPRINT_BYTES);
    }

    #[test]
    fn appended_lines_are_read_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "one\ntwo\n");
        let mut file = open(&path);
        assert_eq!(
            drain(&mut file),
            (vec!["one".into(), "two".into()], Change::None)
        );
        append(&path, "three\n");
        assert_eq!(drain(&mut file), (vec!["three".into()], Change::None));
        assert_eq!(file.offset(), 14);
    }

    #[test]
    fn rename_rotation_keeps_reading_the_old_file_while_its_writer_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "old 1\n");
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut file = open(&path);
        assert_eq!(drain(&mut file).0, ["old 1"]);
        writer.write_all(b"old 2\n").unwrap();
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, "new 1\n");
        assert_eq!(drain(&mut file), (vec!["old 2".into()], Change::Rotated));
        assert!(file.is_detached());
        // The writer has not reopened yet: its lines still go to the old file and are read.
        writer.write_all(b"old 3\nno newline").unwrap();
        assert_eq!(drain(&mut file), (vec!["old 3".into()], Change::None));
        assert_eq!(&file.take_partial().unwrap().bytes[..], b"no newline");
        let mut new = open(&path);
        assert_eq!(drain(&mut new).0, ["new 1"]);
    }

    #[test]
    fn copytruncate_is_detected_and_reading_restarts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(
            &path,
            "2026-11-25 first line of some length\n2026-11-25 second\n",
        );
        let mut file = open(&path);
        drain(&mut file);
        std::fs::copy(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        append(&path, "after\n");
        assert_eq!(drain(&mut file).1, Change::Truncated);
        assert_eq!(drain(&mut file), (vec!["after".into()], Change::None));
    }

    #[test]
    fn a_truncate_that_regrew_past_the_old_size_is_caught_by_the_head_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "2026-11-25T10:00:00 short\n");
        let mut file = open(&path);
        drain(&mut file);
        // Truncated and rewritten with more than before, between two looks.
        std::fs::write(
            &path,
            "2026-11-25T11:00:00 a new and much longer first line\nsecond\n",
        )
        .unwrap();
        assert_eq!(
            drain(&mut file),
            (vec![], Change::Truncated),
            "no line from the middle of the new content"
        );
        let (lines, _) = drain(&mut file);
        assert_eq!(
            lines,
            [
                "2026-11-25T11:00:00 a new and much longer first line",
                "second"
            ],
            "nothing skipped"
        );
    }

    #[test]
    fn deletion_is_reported_after_the_rest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "a\n");
        let mut file = open(&path);
        drain(&mut file);
        append(&path, "b\n");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(drain(&mut file), (vec!["b".into()], Change::Deleted));
        assert!(file.is_detached());
    }

    #[test]
    fn a_checkpoint_resumes_only_in_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "first\nsecond\n");
        let identity = identify(&File::open(&path).unwrap()).unwrap();
        let mut resumed = TailedFile::open(&path, 6, Some(identity), 64, 1 << 20).unwrap();
        assert_eq!(drain(&mut resumed).0, ["second"]);
        // Same path, another file (rotated while cwlite was down): start over.
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, "fresh\nfile\n");
        let mut other = TailedFile::open(&path, 6, Some(identity), 64, 1 << 20).unwrap();
        assert_eq!(drain(&mut other).0, ["fresh", "file"]);
        // A checkpoint past the end (the file was truncated while down): start over.
        let mut past = TailedFile::open(&path, 10_000, None, 64, 1 << 20).unwrap();
        assert_eq!(drain(&mut past).0, ["fresh", "file"]);
    }

    #[test]
    fn a_read_budget_keeps_one_busy_file_from_starving_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, &"0123456789\n".repeat(100));
        let mut file = open(&path);
        let mut lines = Vec::new();
        assert_eq!(file.poll(110, &mut lines).unwrap(), Change::None);
        assert_eq!(lines.len(), 10);
    }

    #[test]
    fn a_closed_file_costs_no_descriptor_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "one\n");
        let mut file = open(&path);
        assert_eq!(drain(&mut file).0, ["one"]);
        assert!(file.close());
        assert!(file.is_closed());
        assert_eq!(drain(&mut file), (vec![], Change::None));
        assert!(file.is_closed(), "unchanged: still closed");
        append(&path, "two\n");
        assert_eq!(drain(&mut file), (vec!["two".into()], Change::None));
        assert!(!file.is_closed(), "reopened where it stopped");
    }

    #[test]
    fn a_file_with_a_partial_line_is_closed_and_the_line_completes_when_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "no newline ");
        let mut file = open(&path);
        drain(&mut file);
        assert!(
            file.close(),
            "the partial line waits in its buffer, not the file"
        );
        append(&path, "yet\n");
        assert_eq!(
            drain(&mut file),
            (vec!["no newline yet".into()], Change::None)
        );
        assert_eq!(file.offset(), 15);
    }

    #[test]
    fn a_detached_file_is_not_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "one\n");
        let mut file = open(&path);
        drain(&mut file);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(drain(&mut file).1, Change::Deleted);
        assert!(
            !file.close(),
            "detached files are read through their descriptor"
        );
    }

    #[test]
    fn a_file_renamed_away_while_closed_is_found_again_and_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "2026-11-27 one\n");
        let mut file = open(&path);
        drain(&mut file);
        assert!(file.close());
        // Its writer appends, then it is rotated away, all while the descriptor is closed.
        append(&path, "2026-11-27 two\n");
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, "2026-11-27 new\n");
        assert_eq!(
            drain(&mut file),
            (vec!["2026-11-27 two".into()], Change::Rotated)
        );
        assert!(file.is_detached());
    }

    #[test]
    fn locate_finds_a_file_by_identity_among_its_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "2026-11-27 the old file\n");
        let identity = identify(&File::open(&path).unwrap()).unwrap();
        assert_eq!(locate(&path, identity), Some(path.clone()));
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        append(&path, "2026-11-27 the new file\n");
        assert_eq!(locate(&path, identity), Some(dir.path().join("app.log.1")));
        let mut rotated = TailedFile::open_rotated(
            &dir.path().join("app.log.1"),
            11,
            identity,
            64,
            1 << 20,
            Framing::Bytes,
        )
        .unwrap()
        .unwrap();
        assert!(rotated.is_detached());
        assert_eq!(drain(&mut rotated).0, ["the old file"]);
        std::fs::remove_file(dir.path().join("app.log.1")).unwrap();
        assert_eq!(locate(&path, identity), None, "gone");
    }

    /// M2: a FIFO swapped in where a log file was is refused at once instead of blocking the
    /// tailer's only thread in `open` for good; a device or directory likewise.
    #[test]
    fn a_fifo_or_anything_but_a_regular_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("app.log");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = TailedFile::open(&fifo, 0, None, 64, 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "it is not a regular file");
        assert!(open_log(dir.path()).is_err());
        assert!(open_log(Path::new("/dev/null")).is_err());
    }

    /// M3 at every open, not only in discovery: a link is followed only if root or the owner
    /// of its directory made it.
    #[test]
    fn a_link_made_by_another_user_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root only\n").unwrap();
        let link = dir.path().join("app.log");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let mut content = String::new();
        open_log(&link)
            .unwrap()
            .read_to_string(&mut content)
            .unwrap();
        assert_eq!(content, "root only\n", "a link of the directory's owner");
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            let err = open_log(&link).unwrap_err();
            assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        }
    }
}
