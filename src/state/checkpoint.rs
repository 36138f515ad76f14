//! Log checkpoints: how far each file has been delivered, advanced only by acknowledgements.
//!
//! Owns three things:
//! - [`AckTracker`]: several batches of one file may be in flight at once and may be
//!   acknowledged in any order; the checkpoint moves only to the end of the longest prefix of the
//!   file whose every byte CloudWatch acknowledged (or the tailer deliberately skipped).
//! - The file format, compatible with the stock agent's state files: line 1 the offset, line 2
//!   the path, line 3 the acknowledged range `0-<offset>`; cwlite adds a 4th line with the file's
//!   identity (device, inode, head fingerprint), which the stock agent ignores. So switching
//!   between the two agents in either direction re-sends nothing.
//! - [`CheckpointStore`]: one file per source path, written atomically, read at start, and an
//!   import of the stock agent's state folder on first start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::write_atomically;

/// Subdirectory of a store holding the checkpoints of rotated-away files not fully delivered.
pub const ROTATED_DIR: &str = "rotated";

/// Creates `dir` as a private directory of the state directory if missing.
///
/// # Errors
/// It cannot be created.
pub(super) fn open_dir(dir: &Path) -> Result<PathBuf, CheckpointError> {
    super::dir::create_private(dir).map_err(|source| CheckpointError::Io {
        path: dir.to_owned(),
        source,
    })?;
    Ok(dir.to_owned())
}

/// The stock agent's state folder.
pub const STOCK_STATE_DIR: &str = "/opt/aws/amazon-cloudwatch-agent/logs/state";

/// Tracks acknowledged byte ranges of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckTracker {
    committed: u64,
    /// Acknowledged ranges beyond `committed`, by start; never overlapping `committed`.
    ahead: BTreeMap<u64, u64>,
}

impl AckTracker {
    /// A tracker whose first `committed` bytes are already delivered (the loaded checkpoint).
    pub fn new(committed: u64) -> Self {
        Self {
            committed,
            ahead: BTreeMap::new(),
        }
    }

    /// Records that `[start, end)` is delivered (or skipped on purpose). Returns the new
    /// checkpoint when it moved.
    pub fn ack(&mut self, start: u64, end: u64) -> Option<u64> {
        if end <= self.committed || end <= start {
            return None;
        }
        let slot = self.ahead.entry(start.max(self.committed)).or_insert(end);
        *slot = (*slot).max(end);
        let before = self.committed;
        while let Some((&start, &end)) = self.ahead.first_key_value() {
            if start > self.committed {
                break;
            }
            self.ahead.pop_first();
            self.committed = self.committed.max(end);
        }
        (self.committed > before).then_some(self.committed)
    }

    /// The offset everything before which is delivered.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Bytes acknowledged but not yet contiguous with the checkpoint.
    pub fn ahead_ranges(&self) -> usize {
        self.ahead.len()
    }
}

/// What identifies a file beyond its path: rotation and inode reuse change these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileIdentity {
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
    /// A CRC-32 of the file's first `fingerprint_len` bytes.
    pub fingerprint: u64,
    /// How many head bytes the fingerprint covers (0 for an empty file).
    pub fingerprint_len: u32,
}

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheckpoint {
    /// The source path (as configured or matched).
    pub path: PathBuf,
    /// Every byte before this offset was delivered.
    pub offset: u64,
    /// The file the offset belongs to; absent in stock agent files.
    pub identity: Option<FileIdentity>,
}

/// Why a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file's content is not a checkpoint (torn, or not ours).
    #[error("{path}: not a checkpoint file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What tailers and the shipper tell the checkpointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointMessage {
    /// A file is being read from `offset`; `file` keys its later acknowledgements.
    Register {
        /// The tailer's key for this file.
        file: u64,
        /// Its path.
        path: PathBuf,
        /// Its identity.
        identity: FileIdentity,
        /// Where reading starts.
        offset: u64,
        /// An older file of `path` (renamed away before its tail was delivered): it never
        /// takes the path's own checkpoint, only a rotated one.
        rotated: bool,
    },
    /// `file`'s identity changed (its fingerprint now covers more of its head).
    Identity {
        /// The tailer's key.
        file: u64,
        /// The new identity.
        identity: FileIdentity,
    },
    /// Nothing of `file` beyond `end` will be handed on (it was rotated away or deleted and its
    /// writer is done, or it was truncated): once `end` is delivered its checkpoint is done.
    Finished {
        /// The tailer's key.
        file: u64,
        /// Just past the last byte handed on.
        end: u64,
    },
    /// `[start, end)` of `file` is delivered or deliberately skipped.
    Ack {
        /// The tailer's key.
        file: u64,
        /// First byte.
        start: u64,
        /// Just past the last byte.
        end: u64,
    },
}

struct Tracked {
    path: PathBuf,
    identity: FileIdentity,
    tracker: AckTracker,
    dirty: bool,
    /// Set by [`CheckpointMessage::Finished`].
    finished_at: Option<u64>,
}

impl Tracked {
    fn checkpoint(&self) -> FileCheckpoint {
        FileCheckpoint {
            path: self.path.clone(),
            offset: self.tracker.committed(),
            identity: Some(self.identity),
        }
    }

    fn done(&self) -> bool {
        self.finished_at
            .is_some_and(|end| self.tracker.committed() >= end)
    }
}

/// Turns acknowledgements into checkpoint files, at most every few hundred milliseconds.
///
/// Only the newest file registered for a path writes that path's checkpoint, so a rotated file
/// whose last batches are still in flight cannot overwrite the checkpoint of its successor.
/// Older files of the path keep a rotated checkpoint of their own (by identity) until everything
/// they handed on is delivered, so a crash or restart in between loses none of their tail.
pub struct Checkpointer {
    store: Option<CheckpointStore>,
    files: std::collections::HashMap<u64, Tracked>,
    newest: std::collections::HashMap<PathBuf, u64>,
    /// Finished files that became fully delivered since [`Checkpointer::take_delivered`].
    delivered: Vec<u64>,
    /// A message arrived since the last flush that wrote everything.
    changed: bool,
    /// The files in status order (path bytes, the newest of a path first) with whether each
    /// is a rotated one; `None` after files came or went. Sorting 10,000 paths and hashing
    /// each to find the newest was most of what [`Checkpointer::positions`] cost, every few
    /// seconds, for an order that changes only when files do.
    order: Option<Vec<(u64, bool)>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// A checkpointer writing into `store` (`None` in a dry run: nothing is written).
    pub fn new(store: Option<CheckpointStore>) -> Self {
        Self {
            store,
            files: std::collections::HashMap::new(),
            newest: std::collections::HashMap::new(),
            delivered: Vec::new(),
            changed: false,
            order: None,
        }
    }

    /// Whether a flush has anything to write (the daemon's timer sleeps otherwise: an idle
    /// agent wakes for nothing).
    pub fn has_changes(&self) -> bool {
        self.changed
    }

    /// Applies one message.
    pub fn apply(&mut self, message: CheckpointMessage) {
        self.changed = true;
        match message {
            CheckpointMessage::Register {
                file,
                path,
                identity,
                offset,
                rotated,
            } => {
                self.order = None;
                if !rotated
                    && let Some(previous) = self.newest.insert(path.clone(), file)
                    && let Some(previous) = self.files.get_mut(&previous)
                {
                    // Superseded: from now on its state goes to a rotated checkpoint.
                    previous.dirty = true;
                }
                self.files.insert(
                    file,
                    Tracked {
                        path,
                        identity,
                        tracker: AckTracker::new(offset),
                        dirty: true,
                        finished_at: None,
                    },
                );
            }
            CheckpointMessage::Finished { file, end } => {
                if let Some(tracked) = self.files.get_mut(&file) {
                    tracked.finished_at = Some(end);
                    tracked.dirty = true;
                }
            }
            CheckpointMessage::Identity { file, identity } => {
                if let Some(tracked) = self.files.get_mut(&file) {
                    tracked.identity = identity;
                    tracked.dirty = true;
                }
            }
            CheckpointMessage::Ack { file, start, end } => {
                if let Some(tracked) = self.files.get_mut(&file)
                    && tracked.tracker.ack(start, end).is_some()
                {
                    tracked.dirty = true;
                }
            }
        }
    }

    /// The keys of finished files whose every byte was delivered since the last call.
    pub fn take_delivered(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.delivered)
    }

    /// Where delivery stands for every file tracked (for status), in the order of
    /// [`FilePosition::order_key`](crate::telemetry::FilePosition::order_key).
    pub fn positions(&mut self) -> Vec<crate::telemetry::FilePosition> {
        use crate::telemetry::FilePosition;
        let order = self.order.get_or_insert_with(|| {
            let mut order: Vec<((&[u8], bool), u64)> = self
                .files
                .iter()
                .map(|(file, tracked)| {
                    let rotated = self.newest.get(&tracked.path) != Some(file);
                    (FilePosition::order_key_of(&tracked.path, rotated), *file)
                })
                .collect();
            order.sort_unstable();
            order
                .into_iter()
                .map(|((_, rotated), file)| (file, rotated))
                .collect()
        });
        order
            .iter()
            .filter_map(|&(file, rotated)| {
                let tracked = self.files.get(&file)?;
                Some(FilePosition {
                    path: tracked.path.clone(),
                    delivered: tracked.tracker.committed(),
                    lag_bytes: 0,
                    rotated,
                    inode: Some((tracked.identity.device, tracked.identity.inode)),
                })
            })
            .collect()
    }

    /// The committed offset of a file key (for tests and status).
    pub fn committed(&self, file: u64) -> Option<u64> {
        self.files.get(&file).map(|t| t.tracker.committed())
    }

    /// Writes every changed checkpoint; returns the errors (the daemon logs them and goes on:
    /// an old checkpoint only means some data is sent again after a restart).
    pub fn flush(&mut self) -> Vec<CheckpointError> {
        let mut errors = Vec::new();
        let Some(store) = &self.store else {
            self.changed = false;
            return errors;
        };
        let mut done = Vec::new();
        // Rotated checkpoints first: if the process dies between the two writes, the older
        // file's position is already safe when its path's checkpoint moves to the new file.
        let mut order: Vec<(bool, u64)> = self
            .files
            .iter()
            .filter(|(_, tracked)| tracked.dirty)
            .map(|(file, tracked)| (self.newest.get(&tracked.path) == Some(file), *file))
            .collect();
        order.sort_unstable();
        for (newest, file) in order {
            let Some(tracked) = self.files.get_mut(&file) else {
                continue;
            };
            let checkpoint = tracked.checkpoint();
            let written = if tracked.done() {
                done.push(file);
                if newest {
                    // Deleted and fully delivered: a file that appears at the path later is new.
                    store.remove(&checkpoint.path);
                    Ok(())
                } else {
                    store.remove_rotated(&checkpoint)
                }
            } else if newest {
                store.write(&checkpoint)
            } else {
                store.write_rotated(&checkpoint)
            };
            match written {
                Ok(()) => tracked.dirty = false,
                Err(err) => errors.push(err),
            }
        }
        for file in done {
            // (`positions` skips keys that are gone; this drops them from the order.)
            self.order = None;
            self.delivered.push(file);
            if let Some(tracked) = self.files.remove(&file)
                && self.newest.get(&tracked.path) == Some(&file)
            {
                self.newest.remove(&tracked.path);
            }
        }
        // A failed write is tried again at the next tick.
        self.changed = !errors.is_empty();
        errors
    }
}

/// The state file name the stock agent uses for a source path: `/`, space and `:` become `_`.
/// Several paths share one name (`a b`, `a_b`, `a/b`), so cwlite reads stock files by their
/// content and names its own with [`state_file_name`].
pub fn stock_state_file_name(path: &Path) -> String {
    path.to_string_lossy()
        .chars()
        .map(|c| if matches!(c, '/' | ' ' | ':') { '_' } else { c })
        .collect()
}

/// Longest own state file name before it is shortened: a file system allows 255 bytes, and a
/// rotated checkpoint adds `.<device>-<inode>`.
const STATE_NAME_MAX_BYTES: usize = 200;

/// The name of cwlite's own state file for a source path: `/` becomes `_` as in the stock
/// agent (so the usual names are the stock ones), and `_`, space, `:`, `%` and control bytes
/// become `%XX`, so no two paths share a name. A name longer than [`STATE_NAME_MAX_BYTES`]
/// keeps its start and ends in a SHA-256 of the whole path.
pub fn state_file_name(path: &Path) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut name = Vec::with_capacity(path.as_os_str().len());
    for &byte in path.as_os_str().as_bytes() {
        match byte {
            b'/' => name.push(b'_'),
            b'_' | b' ' | b':' | b'%' | 0..0x20 | 0x7f => {
                name.extend_from_slice(format!("%{byte:02X}").as_bytes());
            }
            _ => name.push(byte),
        }
    }
    if name.len() > STATE_NAME_MAX_BYTES {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(path.as_os_str().as_bytes());
        name.truncate(STATE_NAME_MAX_BYTES - 33);
        name.push(b'~');
        for byte in &digest[..16] {
            name.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
    }
    std::ffi::OsString::from_vec(name)
}

impl FileCheckpoint {
    /// The text of its state file: the stock agent's lines (offset, path, ranges), then the
    /// identity. A path the path line cannot hold (a newline in a file name, bytes that are not
    /// UTF-8) is written there with `?` for those bytes, and exactly, escaped, as the identity
    /// line's `path=` field: the raw name split the file into other lines, and its checkpoint
    /// then named another file.
    pub fn encode(&self) -> String {
        use std::os::unix::ffi::OsStrExt;
        let bytes = self.path.as_os_str().as_bytes();
        let exact = std::str::from_utf8(bytes)
            .ok()
            .filter(|p| !p.contains(['\n', '\r']));
        let shown = match exact {
            Some(path) => path.to_owned(),
            None => String::from_utf8_lossy(bytes).replace(['\n', '\r', '\u{FFFD}'], "?"),
        };
        let mut text = format!("{}\n{}\n0-{}\n", self.offset, shown, self.offset);
        let mut fields = Vec::new();
        if let Some(id) = self.identity {
            fields.push(format!(
                "dev={} ino={} fp={:016x} fplen={}",
                id.device, id.inode, id.fingerprint, id.fingerprint_len
            ));
        }
        if exact.is_none() {
            fields.push(format!("path={}", escape_path(bytes)));
        }
        if !fields.is_empty() {
            text.push_str(&fields.join(" "));
            text.push('\n');
        }
        text
    }

    /// Reads a state file's text (stock two- and three-line files included).
    ///
    /// # Errors
    /// A reason when the text is not a checkpoint.
    pub fn decode(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        let offset_line = lines.next().ok_or("empty")?;
        let offset: u64 = offset_line
            .trim()
            .parse()
            .map_err(|_| "line 1 is not an offset".to_owned())?;
        let path = lines
            .next()
            .filter(|p| !p.is_empty())
            .ok_or("no path line")?;
        // Line 3 holds stock ranges; single-range files say 0-<offset>, which line 1 already says.
        let _ranges = lines.next();
        let last = lines.next();
        let identity = last.and_then(parse_identity);
        let exact = last.and_then(|line| {
            line.split_ascii_whitespace()
                .find_map(|field| field.strip_prefix("path="))
        });
        let path = match exact {
            Some(escaped) => unescape_path(escaped).ok_or("its path= field is not escaped")?,
            None => PathBuf::from(path),
        };
        Ok(Self {
            path,
            offset,
            identity,
        })
    }
}

/// A path as one whitespace-free ASCII word: `%`, space, control and non-ASCII bytes as `%XX`.
fn escape_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The path [`escape_path`] wrote; `None` for a malformed escape.
fn unescape_path(text: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

fn parse_identity(line: &str) -> Option<FileIdentity> {
    let mut device = None;
    let mut inode = None;
    let mut fingerprint = None;
    let mut fingerprint_len = None;
    for field in line.split_ascii_whitespace() {
        match field.split_once('=')? {
            ("dev", v) => device = v.parse().ok(),
            ("ino", v) => inode = v.parse().ok(),
            ("fp", v) => fingerprint = u64::from_str_radix(v, 16).ok(),
            ("fplen", v) => fingerprint_len = v.parse().ok(),
            _ => {}
        }
    }
    Some(FileIdentity {
        device: device?,
        inode: inode?,
        fingerprint: fingerprint?,
        fingerprint_len: fingerprint_len?,
    })
}

/// Checkpoint files in one directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// A store in `dir`, created if missing.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        Ok(Self {
            dir: open_dir(dir)?,
        })
    }

    /// Every readable checkpoint, plus an error for each file that is not one (those are moved
    /// aside as `*.corrupt` so they are neither trusted nor overwritten unseen).
    pub fn load_all(&self) -> (Vec<FileCheckpoint>, Vec<CheckpointError>) {
        let (found, errors) = read_dir_checkpoints(&self.dir, true);
        (
            rename_to_own_names(&self.dir, found, |c| state_file_name(&c.path)),
            errors,
        )
    }

    /// Writes one checkpoint: in place when its file exists and it fits one sector (the
    /// common case, a path's checkpoint moving on), otherwise atomically.
    ///
    /// # Errors
    /// The write failed; the previous checkpoint is intact.
    pub fn write(&self, checkpoint: &FileCheckpoint) -> Result<(), CheckpointError> {
        let path = self.dir.join(state_file_name(&checkpoint.path));
        let text = checkpoint.encode();
        super::write_small(&path, text.as_bytes())
            .map_err(|source| CheckpointError::Io { path, source })
    }

    /// Removes a file's checkpoint (the file is gone for good).
    pub fn remove(&self, source: &Path) {
        let _ = std::fs::remove_file(self.dir.join(state_file_name(source)));
    }

    /// Where the rotated checkpoint of an older file of `checkpoint.path` lives: its own file
    /// per identity, in a subdirectory the stock agent's format knows nothing of.
    fn rotated_path(&self, checkpoint: &FileCheckpoint) -> PathBuf {
        self.dir
            .join(ROTATED_DIR)
            .join(rotated_file_name(checkpoint))
    }

    /// Writes the checkpoint of an older (rotated-away) file of a path, atomically.
    ///
    /// # Errors
    /// The write failed; the previous checkpoint is intact.
    pub fn write_rotated(&self, checkpoint: &FileCheckpoint) -> Result<(), CheckpointError> {
        let dir = self.dir.join(ROTATED_DIR);
        super::dir::create_private(&dir).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = self.rotated_path(checkpoint);
        write_atomically(&path, checkpoint.encode().as_bytes())
            .map_err(|source| CheckpointError::Io { path, source })
    }

    /// Removes an older file's checkpoint once its whole content is delivered.
    ///
    /// # Errors
    /// The removal failed for another reason than the file being gone already.
    pub fn remove_rotated(&self, checkpoint: &FileCheckpoint) -> Result<(), CheckpointError> {
        let path = self.rotated_path(checkpoint);
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointError::Io { path, source })
            }
            _ => Ok(()),
        }
    }

    /// The checkpoints of older files whose tail may not be delivered yet.
    pub fn load_rotated(&self) -> (Vec<FileCheckpoint>, Vec<CheckpointError>) {
        let dir = self.dir.join(ROTATED_DIR);
        if !dir.is_dir() {
            return (Vec::new(), Vec::new());
        }
        let (found, errors) = read_dir_checkpoints(&dir, true);
        let found = rename_to_own_names(&dir, found, rotated_file_name);
        (
            found.into_iter().filter(|c| c.identity.is_some()).collect(),
            errors,
        )
    }

    /// On first start (an empty store), copies the stock agent's offsets so that switching
    /// agents re-sends nothing. Returns how many were imported. It leaves a malformed file of
    /// its own store where it is, for [`CheckpointStore::load_all`] to report and move aside.
    pub fn import_stock(&self, stock_dir: &Path) -> (usize, Vec<CheckpointError>) {
        let (mine, malformed) = read_dir_checkpoints(&self.dir, false);
        if !mine.is_empty() || !malformed.is_empty() || !stock_dir.is_dir() {
            return (0, Vec::new());
        }
        let (stock, errors) = read_dir_checkpoints(stock_dir, false);
        let mut imported = 0;
        let mut errors = errors;
        for (_, checkpoint) in stock {
            match self.write(&checkpoint) {
                Ok(()) => imported += 1,
                Err(err) => errors.push(err),
            }
        }
        (imported, errors)
    }
}

/// Moves checkpoints that an earlier version wrote under the stock agent's name to their
/// own name, so that the next write replaces them. One already under its own name is newer
/// than one under the old name, which is then removed.
fn rename_to_own_names(
    dir: &Path,
    found: Vec<(PathBuf, FileCheckpoint)>,
    own_name: impl Fn(&FileCheckpoint) -> std::ffi::OsString,
) -> Vec<FileCheckpoint> {
    let names: std::collections::HashSet<PathBuf> =
        found.iter().map(|(file, _)| file.clone()).collect();
    let mut kept = Vec::with_capacity(found.len());
    for (file, checkpoint) in found {
        let own = dir.join(own_name(&checkpoint));
        if file != own {
            if names.contains(&own) {
                let _ = std::fs::remove_file(&file);
                continue;
            }
            // Failing that, it is read again at the next start; the next write goes to
            // its own name, which then wins.
            let _ = std::fs::rename(&file, &own);
        }
        kept.push(checkpoint);
    }
    kept
}

/// The name of a rotated file's checkpoint: its path's own name, then its device and inode.
fn rotated_file_name(checkpoint: &FileCheckpoint) -> std::ffi::OsString {
    let id = checkpoint.identity.unwrap_or_default();
    let mut name = state_file_name(&checkpoint.path);
    name.push(format!(".{}-{}", id.device, id.inode));
    name
}

/// Largest state file read: a checkpoint is a few lines, a path at most 4,096 bytes.
const STATE_FILE_MAX_BYTES: u64 = 8192;

/// The text of one state file, opened without following a link or waiting on a FIFO, and only
/// if it is a regular file of a checkpoint's size. The reason never quotes the content.
fn read_state_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = crate::regular::open(std::fs::OpenOptions::new().read(true), path)
        .map_err(|e| e.to_string())?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if metadata.len() > STATE_FILE_MAX_BYTES {
        return Err(format!(
            "{} bytes, larger than a checkpoint can be",
            metadata.len()
        ));
    }
    let mut text = String::new();
    file.take(STATE_FILE_MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|_| "not text".to_owned())?;
    Ok(text)
}

/// Every checkpoint in `dir`, with the file it was read from.
fn read_dir_checkpoints(
    dir: &Path,
    quarantine: bool,
) -> (Vec<(PathBuf, FileCheckpoint)>, Vec<CheckpointError>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            return (
                found,
                vec![CheckpointError::Io {
                    path: dir.to_owned(),
                    source,
                }],
            );
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if quarantine && super::is_temporary(&name) {
            // An interrupted write of our own: the checkpoint it replaced is still there.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        // `file_type` does not follow links: a link is no checkpoint, here or in the stock
        // agent's folder (whoever made it could point it at any file root can read).
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !regular || name.starts_with('.') || name.ends_with(".corrupt") {
            continue;
        }
        let decoded = read_state_file(&path).and_then(|text| FileCheckpoint::decode(&text));
        match decoded {
            Ok(checkpoint) => found.push((path, checkpoint)),
            Err(reason) => {
                if quarantine {
                    let _ = std::fs::rename(&path, path.with_file_name(format!("{name}.corrupt")));
                }
                errors.push(CheckpointError::Malformed { path, reason });
            }
        }
    }
    found.sort_by(|(_, a), (_, b)| a.path.cmp(&b.path));
    (found, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_in_order_move_the_checkpoint() {
        let mut tracker = AckTracker::new(0);
        assert_eq!(tracker.ack(0, 100), Some(100));
        assert_eq!(tracker.ack(100, 250), Some(250));
        assert_eq!(tracker.committed(), 250);
    }

    #[test]
    fn out_of_order_acknowledgements_wait_for_the_gap() {
        let mut tracker = AckTracker::new(0);
        assert_eq!(
            tracker.ack(200, 300),
            None,
            "bytes 0..200 are still in flight"
        );
        assert_eq!(tracker.ack(100, 200), None);
        assert_eq!(tracker.committed(), 0);
        assert_eq!(
            tracker.ack(0, 100),
            Some(300),
            "the gap closes and everything after it counts"
        );
        assert_eq!(tracker.ahead_ranges(), 0);
    }

    #[test]
    fn stale_overlapping_and_empty_acknowledgements_change_nothing() {
        let mut tracker = AckTracker::new(500);
        assert_eq!(tracker.ack(0, 100), None, "before the loaded checkpoint");
        assert_eq!(tracker.ack(600, 600), None, "empty range");
        assert_eq!(
            tracker.ack(450, 550),
            Some(550),
            "overlapping the checkpoint counts from it"
        );
        assert_eq!(tracker.ack(560, 570), None);
        assert_eq!(
            tracker.ack(560, 580),
            None,
            "a longer duplicate keeps the longer end"
        );
        assert_eq!(tracker.ack(550, 560), Some(580));
    }

    #[test]
    fn many_interleaved_batches_commit_exactly_once_each_prefix_is_complete() {
        let mut tracker = AckTracker::new(0);
        let ranges: Vec<(u64, u64)> = (0..100).map(|i| (i * 10, i * 10 + 10)).collect();
        // Acknowledge odd batches first, then even ones from the end: the checkpoint must not
        // move past a gap at any time.
        let mut order: Vec<usize> = (0..100).filter(|i| i % 2 == 1).collect();
        order.extend((0..100).filter(|i| i % 2 == 0).rev());
        let mut done = [false; 100];
        for i in order {
            let (start, end) = ranges[i];
            tracker.ack(start, end);
            done[i] = true;
            let prefix = done.iter().take_while(|d| **d).count() as u64 * 10;
            assert_eq!(tracker.committed(), prefix);
        }
        assert_eq!(tracker.committed(), 1000);
    }

    /// A file name with a newline split the path line: the checkpoint read back named the file
    /// before the newline (which then started at the other file's offset), and the real file
    /// was sent again from 0. Bytes that are not UTF-8 were written as U+FFFD, with the same
    /// result. Both now come back exactly, with or without an identity.
    #[test]
    fn a_path_with_a_newline_or_bytes_that_are_not_utf8_comes_back_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let identity = Some(FileIdentity {
            device: 1,
            inode: 2,
            fingerprint: 3,
            fingerprint_len: 4,
        });
        let paths: [&[u8]; 4] = [
            b"/var/log/app/x\n/var/log/app/other.log",
            b"/var/log/app/caf\xe9.log",
            b"/var/log/app/100%41 done\r.log",
            b"/var/log/app/plain.log",
        ];
        for raw in paths {
            for identity in [identity, None] {
                let checkpoint = FileCheckpoint {
                    path: PathBuf::from(std::ffi::OsStr::from_bytes(raw)),
                    offset: 77,
                    identity,
                };
                let text = checkpoint.encode();
                // The stock agent's three lines stay where it reads them.
                let lines: Vec<&str> = text.lines().collect();
                assert!(lines.len() <= 4 && lines[2] == "0-77", "{text:?}");
                assert_eq!(
                    FileCheckpoint::decode(&text).unwrap(),
                    checkpoint,
                    "{text:?}"
                );
            }
        }
        assert!(FileCheckpoint::decode("5\n/x\n0-5\npath=%4\n").is_err());
    }

    #[test]
    fn the_file_format_is_the_stock_one_plus_an_identity_line() {
        let checkpoint = FileCheckpoint {
            path: PathBuf::from("/var/log/syslog"),
            offset: 12345,
            identity: Some(FileIdentity {
                device: 2049,
                inode: 131_075,
                fingerprint: 0xdead_beef,
                fingerprint_len: 1024,
            }),
        };
        let text = checkpoint.encode();
        assert_eq!(
            text,
            "12345\n/var/log/syslog\n0-12345\ndev=2049 ino=131075 fp=00000000deadbeef fplen=1024\n"
        );
        assert_eq!(FileCheckpoint::decode(&text).unwrap(), checkpoint);
        assert_eq!(
            stock_state_file_name(Path::new("/var/log/my app:1.log")),
            "_var_log_my_app_1.log"
        );
    }

    /// L5: the stock names map `a b`, `a_b`, `a:b` and `a/b` to one file, so one of two such
    /// files was read again from 0 after a restart. Own names keep the stock name where it is
    /// unambiguous.
    #[test]
    fn own_state_file_names_never_collide_and_are_the_stock_ones_when_unambiguous() {
        let paths = [
            "/var/log/a b",
            "/var/log/a_b",
            "/var/log/a/b",
            "/var/log/a:b",
            "/var/log/a%5Fb",
            "/var/log/a\nb",
        ];
        let names: std::collections::HashSet<_> = paths
            .iter()
            .map(|p| state_file_name(Path::new(p)))
            .collect();
        assert_eq!(names.len(), paths.len(), "{names:?}");
        assert_eq!(
            state_file_name(Path::new("/var/log/syslog")),
            *stock_state_file_name(Path::new("/var/log/syslog"))
        );
        assert_eq!(state_file_name(Path::new("/var/log/a_b")), "_var_log_a%5Fb");
        // Long paths that share their start get short names of their own.
        let long = format!("/var/log/{}", "d/".repeat(150));
        let (one, two) = (format!("{long}one.log"), format!("{long}two.log"));
        let (one, two) = (
            state_file_name(Path::new(&one)),
            state_file_name(Path::new(&two)),
        );
        assert_ne!(one, two);
        assert!(one.len() <= STATE_NAME_MAX_BYTES, "{}", one.len());
    }

    #[test]
    fn paths_that_shared_a_stock_name_keep_a_checkpoint_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        for (path, offset) in [
            ("/var/log/a b", 10),
            ("/var/log/a_b", 20),
            ("/var/log/a/b", 30),
        ] {
            store
                .write(&FileCheckpoint {
                    path: PathBuf::from(path),
                    offset,
                    identity: None,
                })
                .unwrap();
        }
        let offsets: Vec<_> = store.load_all().0.iter().map(|c| c.offset).collect();
        assert_eq!(offsets, [30, 10, 20]);
    }

    /// A store an earlier version wrote under the stock names moves to the own names; where
    /// both exist, the own name is the newer one.
    #[test]
    fn checkpoints_under_the_old_names_move_to_the_own_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("_var_log_my_app.log"),
            "100\n/var/log/my_app.log\n0-100\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("_var_log_x_y"), "5\n/var/log/x_y\n0-5\n").unwrap();
        std::fs::write(
            dir.path().join("_var_log_x%5Fy"),
            "50\n/var/log/x_y\n0-50\n",
        )
        .unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let loaded: Vec<_> = store
            .load_all()
            .0
            .iter()
            .map(|c| (c.path.clone(), c.offset))
            .collect();
        assert_eq!(
            loaded,
            [
                (PathBuf::from("/var/log/my_app.log"), 100),
                (PathBuf::from("/var/log/x_y"), 50)
            ]
        );
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["_var_log_my%5Fapp.log", "_var_log_x%5Fy"]);
    }

    /// L4: the stock agent's folder may hold a link to any file root can read, or a file whose
    /// first line is someone's secret; neither is followed nor quoted.
    #[test]
    fn the_stock_import_follows_no_link_and_quotes_no_content() {
        let stock = tempfile::tempdir().unwrap();
        let secret = stock.path().join("..secret");
        std::fs::write(&secret, "42\n/var/log/secret\n").unwrap();
        std::os::unix::fs::symlink(&secret, stock.path().join("_var_log_linked")).unwrap();
        std::fs::write(stock.path().join("_var_log_bad"), "password=hunter2\n/x\n").unwrap();
        let mine = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(mine.path()).unwrap();
        let (imported, errors) = store.import_stock(stock.path());
        assert_eq!(imported, 0);
        assert_eq!(errors.len(), 1, "{errors:?}");
        let shown = errors[0].to_string();
        assert!(
            shown.contains("_var_log_bad") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn stock_files_of_two_and_three_lines_are_read() {
        let old = FileCheckpoint::decode("777\n/var/log/messages\n").unwrap();
        assert_eq!((old.offset, old.identity), (777, None));
        let ranged = FileCheckpoint::decode("900\n/var/log/messages\n0-900\n").unwrap();
        assert_eq!(ranged.offset, 900);
        assert!(FileCheckpoint::decode("").is_err());
        assert!(FileCheckpoint::decode("12x\n/var/log\n").is_err());
    }

    #[test]
    fn the_store_round_trips_and_quarantines_torn_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let checkpoint = FileCheckpoint {
            path: PathBuf::from("/var/log/syslog"),
            offset: 42,
            identity: None,
        };
        store.write(&checkpoint).unwrap();
        std::fs::write(dir.path().join("_var_log_torn"), "4").unwrap();
        let (loaded, errors) = store.load_all();
        assert_eq!(loaded, [checkpoint]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("not a checkpoint file"),
            "{}",
            errors[0]
        );
        assert!(dir.path().join("_var_log_torn.corrupt").exists());
    }

    #[test]
    fn a_checkpoint_rewritten_shorter_in_place_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let long = FileCheckpoint {
            path: PathBuf::from("/var/log/syslog"),
            offset: 123_456_789,
            identity: Some(FileIdentity {
                device: 2049,
                inode: 1_234_567,
                fingerprint: 0xfeed,
                fingerprint_len: 1024,
            }),
        };
        store.write(&long).unwrap();
        // Truncated and read again from the start: a shorter offset and no identity yet.
        let short = FileCheckpoint {
            offset: 7,
            identity: None,
            ..long.clone()
        };
        store.write(&short).unwrap();
        let file = dir.path().join(state_file_name(&short.path));
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            long.encode().len() as u64,
            "rewritten in place, padded"
        );
        let (loaded, errors) = store.load_all();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(loaded, [short]);
    }

    #[test]
    fn positions_follow_files_that_come_and_go_in_path_order_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpointer = Checkpointer::new(Some(CheckpointStore::open(dir.path()).unwrap()));
        let register = |checkpointer: &mut Checkpointer, file, path: &str| {
            checkpointer.apply(CheckpointMessage::Register {
                file,
                path: PathBuf::from(path),
                identity: FileIdentity {
                    device: 1,
                    inode: file,
                    fingerprint: 0,
                    fingerprint_len: 0,
                },
                offset: 0,
                rotated: false,
            });
        };
        let seen = |checkpointer: &mut Checkpointer| -> Vec<(String, bool, u64)> {
            checkpointer
                .positions()
                .into_iter()
                .map(|p| (p.path.display().to_string(), p.rotated, p.delivered))
                .collect()
        };
        register(&mut checkpointer, 1, "/var/log/b.log");
        register(&mut checkpointer, 2, "/var/log/a.log");
        assert_eq!(
            seen(&mut checkpointer),
            [
                ("/var/log/a.log".into(), false, 0),
                ("/var/log/b.log".into(), false, 0)
            ]
        );
        checkpointer.apply(CheckpointMessage::Ack {
            file: 1,
            start: 0,
            end: 40,
        });
        // b.log rotated: its new file is the newest, the old one is listed after it.
        register(&mut checkpointer, 3, "/var/log/b.log");
        assert_eq!(
            seen(&mut checkpointer),
            [
                ("/var/log/a.log".into(), false, 0),
                ("/var/log/b.log".into(), false, 0),
                ("/var/log/b.log".into(), true, 40)
            ]
        );
        // The old file finished and delivered: it is gone from the list.
        checkpointer.apply(CheckpointMessage::Finished { file: 1, end: 40 });
        checkpointer.flush();
        assert_eq!(
            seen(&mut checkpointer),
            [
                ("/var/log/a.log".into(), false, 0),
                ("/var/log/b.log".into(), false, 0)
            ]
        );
        // Offsets move while no file comes or goes: the kept order shows the new ones.
        checkpointer.apply(CheckpointMessage::Ack {
            file: 3,
            start: 0,
            end: 25,
        });
        assert_eq!(
            seen(&mut checkpointer),
            [
                ("/var/log/a.log".into(), false, 0),
                ("/var/log/b.log".into(), false, 25)
            ]
        );
    }

    #[test]
    fn the_checkpointer_writes_only_the_newest_file_of_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpointer = Checkpointer::new(Some(CheckpointStore::open(dir.path()).unwrap()));
        let path = PathBuf::from("/var/log/app.log");
        let id = |inode| FileIdentity {
            device: 1,
            inode,
            fingerprint: 7,
            fingerprint_len: 10,
        };
        checkpointer.apply(CheckpointMessage::Register {
            file: 1,
            path: path.clone(),
            identity: id(10),
            offset: 0,
            rotated: false,
        });
        checkpointer.apply(CheckpointMessage::Ack {
            file: 1,
            start: 0,
            end: 100,
        });
        checkpointer.flush();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.load_all().0[0].offset, 100);
        // Rotated: the new file starts at 0; a late ack of the old one must not win.
        checkpointer.apply(CheckpointMessage::Register {
            file: 2,
            path: path.clone(),
            identity: id(11),
            offset: 0,
            rotated: false,
        });
        checkpointer.apply(CheckpointMessage::Ack {
            file: 2,
            start: 0,
            end: 5,
        });
        checkpointer.apply(CheckpointMessage::Ack {
            file: 1,
            start: 100,
            end: 200,
        });
        checkpointer.flush();
        let loaded = store.load_all().0;
        assert_eq!(
            (loaded[0].offset, loaded[0].identity.unwrap().inode),
            (5, 11)
        );
        // The old file keeps its own checkpoint until all it handed on is delivered.
        let rotated = store.load_rotated().0;
        assert_eq!(
            (rotated[0].offset, rotated[0].identity.unwrap().inode),
            (200, 10)
        );
        checkpointer.apply(CheckpointMessage::Finished { file: 1, end: 300 });
        checkpointer.flush();
        assert_eq!(store.load_rotated().0[0].offset, 200, "100 bytes in flight");
        checkpointer.apply(CheckpointMessage::Ack {
            file: 1,
            start: 200,
            end: 300,
        });
        checkpointer.flush();
        assert!(store.load_rotated().0.is_empty(), "delivered: done");
        assert_eq!(checkpointer.committed(1), None, "and forgotten");
        // The newest file deleted and fully delivered: its checkpoint goes too.
        checkpointer.apply(CheckpointMessage::Finished { file: 2, end: 5 });
        checkpointer.flush();
        assert!(store.load_all().0.is_empty());
    }

    #[test]
    fn nothing_to_flush_until_a_message_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpointer = Checkpointer::new(Some(CheckpointStore::open(dir.path()).unwrap()));
        assert!(!checkpointer.has_changes(), "idle: the timer may sleep");
        checkpointer.apply(CheckpointMessage::Register {
            file: 1,
            path: "/var/log/a".into(),
            identity: FileIdentity {
                device: 1,
                inode: 2,
                fingerprint: 3,
                fingerprint_len: 4,
            },
            offset: 0,
            rotated: false,
        });
        assert!(checkpointer.has_changes());
        assert!(checkpointer.flush().is_empty());
        assert!(!checkpointer.has_changes(), "all written");
    }

    #[test]
    fn a_resumed_rotated_file_never_takes_the_path_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let mut checkpointer = Checkpointer::new(Some(store.clone()));
        let path = PathBuf::from("/var/log/app.log");
        let id = |inode| FileIdentity {
            device: 1,
            inode,
            fingerprint: 7,
            fingerprint_len: 10,
        };
        checkpointer.apply(CheckpointMessage::Register {
            file: 1,
            path: path.clone(),
            identity: id(20),
            offset: 0,
            rotated: false,
        });
        checkpointer.apply(CheckpointMessage::Register {
            file: 2,
            path: path.clone(),
            identity: id(19),
            offset: 40,
            rotated: true,
        });
        checkpointer.flush();
        assert_eq!(store.load_all().0[0].identity.unwrap().inode, 20);
        assert_eq!(
            (
                store.load_rotated().0[0].offset,
                store.load_rotated().0[0].identity.unwrap().inode
            ),
            (40, 19)
        );
    }

    /// The daemon imports first, then loads: a torn file must still be reported by the load
    /// (the import used to move it aside unseen, and the file was read again from its start
    /// without a word).
    #[test]
    fn a_torn_file_is_reported_by_the_load_after_the_import() {
        let stock = stock_state_dir();
        let mine = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(mine.path()).unwrap();
        std::fs::write(mine.path().join("_var_log_app"), "24").unwrap();
        assert_eq!(
            store.import_stock(stock.path()).0,
            0,
            "a store with a file of its own is not a first start"
        );
        assert!(mine.path().join("_var_log_app").exists());
        let (loaded, errors) = store.load_all();
        assert!(loaded.is_empty());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .contains("_var_log_app: not a checkpoint file"),
            "{}",
            errors[0]
        );
        assert!(mine.path().join("_var_log_app.corrupt").exists());
    }

    /// A stock agent's state directory with syslog delivered to offset 5000.
    fn stock_state_dir() -> tempfile::TempDir {
        let stock = tempfile::tempdir().unwrap();
        std::fs::write(
            stock.path().join("_var_log_syslog"),
            "5000\n/var/log/syslog\n0-5000\n",
        )
        .unwrap();
        stock
    }

    #[test]
    fn the_stock_state_is_imported_once_on_first_start() {
        let stock = stock_state_dir();
        let mine = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(mine.path()).unwrap();
        assert_eq!(store.import_stock(stock.path()).0, 1);
        let (loaded, _) = store.load_all();
        assert_eq!(
            (loaded[0].path.as_path(), loaded[0].offset),
            (Path::new("/var/log/syslog"), 5000)
        );
        std::fs::write(
            stock.path().join("_var_log_syslog"),
            "9999\n/var/log/syslog\n",
        )
        .unwrap();
        assert_eq!(
            store.import_stock(stock.path()).0,
            0,
            "never again once cwlite has its own state"
        );
        assert_eq!(store.load_all().0[0].offset, 5000);
    }
}
