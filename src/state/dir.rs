//! The state directory itself: created 0700 when missing, and used only when it belongs to the
//! user cwlite runs as and no one else can write it.
//!
//! Why so strict: everything in the state directory is written by cwlite, often as root, and
//! a user who owns the directory could plant a link where a checkpoint is about to be written.
//! The directory is never walked, and only the directory itself is ever handed to another
//! user (`agent.run_as_user`), through a descriptor opened without following links. It knows
//! nothing of what the files in it mean.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Mode of every directory cwlite creates for its state.
pub const DIR_MODE: u32 = 0o700;

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// It or a parent could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// It could not be opened or inspected.
    #[error("cannot open the state directory {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// It is a link that someone other than root or the user made.
    #[error(
        "the state directory {path} is a symbolic link owned by uid {owner}: only a link owned by root or by uid {uid} is followed"
    )]
    Link {
        /// The directory.
        path: PathBuf,
        /// The link's owner.
        owner: u32,
        /// The user cwlite runs as.
        uid: u32,
    },
    /// It belongs to another user.
    #[error(
        "the state directory {path} belongs to uid {owner}, not to uid {uid} that cwlite runs as: its owner could make cwlite overwrite any file it can write (chown it, or choose another --state-dir)"
    )]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user cwlite runs as.
        uid: u32,
    },
    /// Its group or others may write it.
    #[error(
        "the state directory {path} can be written by its group or by others (mode {mode:03o}): run chmod go-w on it"
    )]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It could not be given to the user.
    #[error("cannot hand the state directory {path} to uid {uid}: {source}")]
    HandOver {
        /// The directory.
        path: PathBuf,
        /// The user.
        uid: u32,
        /// The error.
        source: io::Error,
    },
}

/// The user a state directory is for: its id and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Makes `path` the state directory of `owner` (the effective user when `None`): creates it
/// 0700 when missing, hands it (and only it) to `owner` when it belongs to the effective user
/// (root, about to become `owner`), and refuses it when it belongs to anyone else or its group
/// or others may write it. A link at `path` is followed only when root or `owner` made it, as
/// systemd's `DynamicUser=` does (`/var/lib/cwlite -> private/cwlite`).
///
/// # Errors
/// Why the directory cannot be trusted, or the system call that failed.
pub fn secure(path: &Path, owner: Option<Owner>) -> Result<(), StateDirError> {
    let effective = rustix::process::geteuid().as_raw();
    let uid = owner.map_or(effective, |o| o.uid);
    let real = resolve(path, uid)?;
    let open = |source: io::Error| StateDirError::Open {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        &real,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| open(errno.into()))?;
    let stat = rustix::fs::fstat(fd.as_fd()).map_err(|errno| open(errno.into()))?;
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path: path.to_owned(),
            mode,
        });
    }
    match owner {
        _ if stat.st_uid == uid => Ok(()),
        Some(owner) if stat.st_uid == effective => rustix::fs::fchown(
            fd.as_fd(),
            Some(rustix::fs::Uid::from_raw(owner.uid)),
            Some(rustix::fs::Gid::from_raw(owner.gid)),
        )
        .map_err(|errno| StateDirError::HandOver {
            path: path.to_owned(),
            uid,
            source: errno.into(),
        }),
        _ => Err(StateDirError::Owner {
            path: path.to_owned(),
            owner: stat.st_uid,
            uid,
        }),
    }
}

/// Creates a directory inside the (already secured) state directory, 0700 whatever the umask.
///
/// # Errors
/// The directory could not be created.
pub fn create_private(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// The directory `path` names: created 0700 if missing, or the target of a link made by root
/// or `uid`.
fn resolve(path: &Path, uid: u32) -> Result<PathBuf, StateDirError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if meta.uid() != 0 && meta.uid() != uid {
                return Err(StateDirError::Link {
                    path: path.to_owned(),
                    owner: meta.uid(),
                    uid,
                });
            }
            std::fs::canonicalize(path).map_err(|source| StateDirError::Open {
                path: path.to_owned(),
                source,
            })
        }
        Ok(_) => Ok(path.to_owned()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let create = |source| StateDirError::Create {
                path: path.to_owned(),
                source,
            };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(create)?;
            }
            match std::fs::DirBuilder::new().mode(DIR_MODE).create(path) {
                Err(err) if err.kind() != io::ErrorKind::AlreadyExists => Err(create(err)),
                _ => Ok(path.to_owned()),
            }
        }
        Err(source) => Err(StateDirError::Open {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn a_missing_directory_is_created_0700_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("var/lib/cwlite");
        secure(&state, None).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let inner = state.join("logs/rotated");
        create_private(&inner).unwrap();
        let mode = std::fs::metadata(&inner).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = secure(dir.path(), None).unwrap_err();
        assert!(
            matches!(err, StateDirError::Writable { mode: 0o777, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }

    /// The attack of H1: the user who owns the state directory plants a link to a file of
    /// root's. The directory is refused to root; handed to the user, only the directory
    /// changes owner, never what is in it.
    #[test]
    fn a_directory_of_another_user_is_refused_and_its_content_never_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        if !is_root() {
            // Not root: a directory of root's stands for another user's.
            let err = secure(Path::new("/usr"), None).unwrap_err();
            assert!(
                matches!(err, StateDirError::Owner { owner: 0, .. }),
                "{err}"
            );
            return;
        }
        let victim = dir.path().join("shadow");
        std::fs::write(&victim, "root only").unwrap();
        std::os::unix::fs::symlink(&victim, state.join("x")).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
        let err = secure(&state, None).unwrap_err();
        assert!(
            matches!(
                err,
                StateDirError::Owner {
                    owner: 65534,
                    uid: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(&state.display().to_string()),
            "{err}"
        );
        let nobody = Owner {
            uid: 65534,
            gid: 65534,
        };
        secure(&state, Some(nobody)).unwrap();
        assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
        // A fresh one of root's is handed over, the directory alone.
        let fresh = dir.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        std::os::unix::fs::symlink(&victim, fresh.join("x")).unwrap();
        secure(&fresh, Some(nobody)).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().uid(), 65534);
        assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
        // Another user's directory is not taken from them for the named user either.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::chown(&other, Some(1), None).unwrap();
        let err = secure(&other, Some(nobody)).unwrap_err();
        assert!(
            matches!(err, StateDirError::Owner { owner: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_link_is_followed_only_when_root_or_the_user_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("cwlite");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        secure(&link, None).unwrap();
        if is_root() {
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            let err = secure(&link, None).unwrap_err();
            assert!(
                matches!(err, StateDirError::Link { owner: 65534, .. }),
                "{err}"
            );
        }
    }
}
