//! Opening a file in a directory someone else may write: no link followed, no FIFO waited on,
//! regular files only.
//!
//! Owns [`open`], which every open of a log, a state file or `agent.logfile` goes through. It
//! adds `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` to the caller's options, checks what opened with an
//! `fstat` of the descriptor (not of the path, which may have changed since), and clears
//! `O_NONBLOCK` again, so callers get an ordinary descriptor. It decides nothing about which
//! links may be followed (`tail::discovery::link_allowed` does) and knows no file format.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why [`open`] refused what it found (an `io::Error` of kind `Other` carries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The path is a symbolic link.
    #[error("it is a symbolic link")]
    Link,
    /// A FIFO, socket, device or directory.
    #[error("it is not a regular file")]
    NotRegular,
}

/// Opens `path` with `options`, never through a link at its last component and never waiting
/// on a FIFO; anything but a regular file is closed again.
///
/// # Errors
/// The open failed, or [`Refused`] (as an `io::Error` of kind `Other`; see [`refused`]).
pub fn open(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other(Refused::Link),
            _ => err,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(Refused::NotRegular));
    }
    // Reads and writes of a regular file never block anyway; cleared so the descriptor is an
    // ordinary one.
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}

/// What [`open`] refused, if that is why `err` happened.
pub fn refused(err: &io::Error) -> Option<Refused> {
    err.get_ref()?.downcast_ref::<Refused>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_a_fifo_and_a_directory_are_refused_and_a_file_opens_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR).unwrap();
        let read = || {
            let mut options = OpenOptions::new();
            options.read(true);
            options
        };
        let opened = open(&mut read(), &file).unwrap();
        let flags = rustix::fs::fcntl_getfl(&opened).unwrap();
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
        let refusal = |path: &Path| refused(&open(&mut read(), path).unwrap_err());
        assert_eq!(refusal(&link), Some(Refused::Link));
        assert_eq!(refusal(&fifo), Some(Refused::NotRegular));
        assert_eq!(refusal(dir.path()), Some(Refused::NotRegular));
        let missing = open(&mut read(), &dir.path().join("missing")).unwrap_err();
        assert_eq!(
            (missing.kind(), refused(&missing)),
            (io::ErrorKind::NotFound, None)
        );
    }
}
