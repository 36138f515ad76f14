//! State under the state directory (`--state-dir`, default `/var/lib/cwlite`): the only module
//! that writes there.
//!
//! Owns durable, crash-safe storage: `spool` keeps queued metric batches across outages and
//! restarts. Every write goes through a temporary file, `fsync` and `rename`, so a crash leaves
//! either the old or the new file, never a torn one. It stores opaque bytes; it knows nothing of
//! metrics, logs or CloudWatch.

pub mod checkpoint;
pub mod spool;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file beside it, `fsync`, `rename`, then an
/// `fsync` of the directory so the rename itself survives a power cut.
///
/// # Errors
/// Any I/O error; the target is then untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, tmp) = temporary_beside(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Replaces `path` with `bytes` through a temporary file and `rename`, so a reader never sees
/// a torn file, but without `fsync`: for a file rewritten every few seconds whose loss at a
/// power cut costs nothing (the status file). Two `fsync`s every 5 s kept an idle disk and
/// the daemon waking for nothing.
///
/// # Errors
/// Any I/O error; the target is then untouched.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (_, tmp) = temporary_beside(path);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The directory of `path`, and the temporary file beside it that a write goes through.
fn temporary_beside(path: &Path) -> (&Path, std::path::PathBuf) {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    (dir, dir.join(format!(".{name}.tmp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        write_atomically(&path, b"first version, longer").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["checkpoint"]);
    }

    #[test]
    fn a_replaced_file_is_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        replace_file(&path, b"first version, longer").unwrap();
        replace_file(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["status.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("file");
        assert!(write_atomically(&path, b"x").is_err());
        assert!(!path.exists());
    }
}
