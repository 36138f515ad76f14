//! State under the state directory (`--state-dir`, default `/var/lib/cwlite`): the only module
//! that writes there.
//!
//! Owns durable, crash-safe storage: `spool` keeps queued metric batches across outages and
//! restarts. Every write goes through a temporary file, `fsync` and `rename`, so a crash leaves
//! either the old or the new file, never a torn one; the one exception is a small checkpoint
//! that already exists, rewritten in place within one disk sector ([`rewrite_in_place`]), which
//! cannot tear either. It stores opaque bytes; it knows nothing of metrics, logs or CloudWatch.
//!
//! Nothing here follows a symbolic link or trusts a name another user could have planted: the
//! state directory is refused unless it belongs to the user cwlite runs as and no one else can
//! write it ([`dir::secure`]), files are opened `O_NOFOLLOW`, temporary names are unpredictable
//! and created `O_EXCL`, and everything is created 0700 or 0600 whatever the umask.

pub mod checkpoint;
pub mod cursor;
pub mod dir;
pub mod spool;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Mode of every file cwlite creates in its state directory.
const FILE_MODE: u32 = 0o600;

/// Writes `bytes` to `path` atomically: a temporary file beside it, `fsync`, `rename`, then an
/// `fsync` of the directory so the rename itself survives a power cut.
///
/// # Errors
/// Any I/O error; the target is then untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, tmp) = temporary_beside(path);
    let result = (|| {
        let mut file = create_new(&tmp)?;
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

/// Largest file [`rewrite_in_place`] rewrites: one disk sector, which the disk writes whole.
pub const IN_PLACE_MAX_BYTES: usize = 512;

/// Rewrites an existing file of at most [`IN_PLACE_MAX_BYTES`] in place: one `pwrite` at
/// offset 0 of `bytes` padded with newlines to the file's length (so no old byte is left after
/// the new content), then `fdatasync`. Returns `Ok(false)`, having written nothing, when the
/// file does not exist or it or `bytes` is larger: the caller then writes atomically.
///
/// Why not a temporary file and `rename`: each of those allocates an inode and frees one,
/// plus two `fsync`s; for checkpoints of a few actively written files that was a third of the
/// daemon's CPU. Why it is as safe for a file this small: a process that dies cannot leave one
/// `write` half done in the page cache, and a power cut cannot tear a write that lies within the
/// file's first sector. The padding must be harmless to the reader (checkpoints end in lines;
/// blank lines after them are ignored, by the stock agent too).
///
/// # Errors
/// Any I/O error other than the file not existing.
pub fn rewrite_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if bytes.len() > IN_PLACE_MAX_BYTES {
        return Ok(false);
    }
    // A link or a FIFO where a checkpoint was is not written through (nor waited on); the
    // atomic write then replaces the name itself.
    let file = match crate::regular::open(std::fs::OpenOptions::new().write(true), path) {
        Ok(file) => file,
        Err(err)
            if crate::regular::refused(&err).is_some()
                || matches!(
                    err.raw_os_error(),
                    Some(libc::ENOENT | libc::ENXIO | libc::EACCES | libc::EISDIR)
                ) =>
        {
            return Ok(false);
        }
        Err(err) => return Err(err),
    };
    let old_len = file.metadata()?.len() as usize;
    if old_len > IN_PLACE_MAX_BYTES {
        return Ok(false);
    }
    let mut padded = [b'\n'; IN_PLACE_MAX_BYTES];
    padded[..bytes.len()].copy_from_slice(bytes);
    file.write_all_at(&padded[..bytes.len().max(old_len)], 0)?;
    file.sync_data()?;
    Ok(true)
}

/// Writes a small state file: in place when it exists and fits one sector (the common case, a
/// position moving on), otherwise through a temporary file and a rename.
///
/// # Errors
/// The write failed; the previous content is intact.
pub fn write_small(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match rewrite_in_place(path, bytes) {
        Ok(true) => Ok(()),
        Ok(false) => write_atomically(path, bytes),
        Err(err) => Err(err),
    }
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
    let result = create_new(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The directory of `path`, and a temporary file beside it for one write: a random name, so
/// that no one can plant a link there in advance (it is created `O_EXCL` besides).
fn temporary_beside(path: &Path) -> (&Path, PathBuf) {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let name: String = name.chars().take(100).collect();
    (
        dir,
        dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..))),
    )
}

/// Whether a directory entry is a temporary file an interrupted write left.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Creates `path`, which must not exist (not even as a dangling link), mode 0600.
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_max_bytes_is_one_sector() {
        assert_eq!(IN_PLACE_MAX_BYTES, 512);
    }

    #[test]
    fn an_in_place_rewrite_pads_a_shorter_content_and_keeps_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        assert!(
            !rewrite_in_place(&path, b"1\n").unwrap(),
            "missing: not created"
        );
        assert!(!path.exists());
        std::fs::write(&path, b"123456\n/var/log/a\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert!(rewrite_in_place(&path, b"7\n/var/log/a\n").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"7\n/var/log/a\n\n\n\n\n\n");
        assert!(rewrite_in_place(&path, b"12345678\n/var/log/a\n").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"12345678\n/var/log/a\n");
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        // Past one sector, the caller writes atomically.
        assert!(!rewrite_in_place(&path, &[b'x'; IN_PLACE_MAX_BYTES + 1]).unwrap());
        std::fs::write(&path, [b'x'; IN_PLACE_MAX_BYTES + 1]).unwrap();
        assert!(!rewrite_in_place(&path, b"1\n").unwrap());
    }

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

    /// A link planted where a checkpoint or the status file is written (by whoever could write
    /// the directory) is replaced as a name; the file it points at is never written.
    #[test]
    fn a_link_planted_at_a_state_file_is_replaced_not_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"root's file\n").unwrap();
        for (name, write) in [
            (
                "checkpoint",
                write_atomically as fn(&Path, &[u8]) -> std::io::Result<()>,
            ),
            ("status.json", replace_file),
            ("small", |path: &Path, bytes: &[u8]| {
                rewrite_in_place(path, bytes).map(|written| assert!(!written))
            }),
        ] {
            let path = dir.path().join(name);
            std::os::unix::fs::symlink(&victim, &path).unwrap();
            write(&path, b"planted\n").unwrap();
            assert_eq!(std::fs::read(&victim).unwrap(), b"root's file\n", "{name}");
            if name != "small" {
                assert!(!path.is_symlink(), "{name}");
                assert_eq!(std::fs::read(&path).unwrap(), b"planted\n");
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{name}: whatever the umask");
            }
        }
    }

    #[test]
    fn temporary_names_are_unpredictable_and_recognised() {
        let path = Path::new("/state/logs/_var_log_syslog");
        let (dir, first) = temporary_beside(path);
        let (_, second) = temporary_beside(path);
        assert_eq!(dir, Path::new("/state/logs"));
        assert_ne!(first, second);
        for tmp in [first, second] {
            assert!(is_temporary(tmp.file_name().unwrap().to_str().unwrap()));
        }
        assert!(!is_temporary("_var_log_syslog"));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("file");
        assert!(write_atomically(&path, b"x").is_err());
        assert!(!path.exists());
    }
}
