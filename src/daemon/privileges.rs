//! `agent.run_as_user`: giving up root for a named user before anything runs.
//!
//! Owns the one switch of user: when cwlite starts as root and the configuration names a user,
//! the state directory is created and handed to that user, then the process takes the user's
//! groups, group and id for good (glibc applies them to every thread). Files opened before
//! (the configuration, `agent.logfile`) stay usable; the credentials file is read later, as that
//! user, so it must be readable by them (or come through systemd's `LoadCredential=`). Under
//! systemd, `User=` or `DynamicUser=` in the unit is preferred; this exists for the stock
//! agent's configurations.

use std::ffi::CString;
use std::path::Path;

use nix::unistd::{Gid, Uid, User};
use tracing::{info, warn};

/// Why the user could not be switched to.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    System {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn system(what: impl Into<String>) -> impl FnOnce(nix::Error) -> PrivilegeError {
    let what = what.into();
    move |errno| PrivilegeError::System {
        what,
        source: std::io::Error::from(errno),
    }
}

/// Becomes `user` when running as root; otherwise only warns that the setting is ignored.
///
/// # Errors
/// The user does not exist, or the switch failed (cwlite then does not run as root by mistake).
pub fn run_as(user: &str, state_dir: &Path) -> Result<(), PrivilegeError> {
    if !Uid::effective().is_root() {
        warn!(
            user,
            "agent.run_as_user is ignored: cwlite was not started as root"
        );
        return Ok(());
    }
    let account = User::from_name(user)
        .map_err(system(format!("looking up user {user:?}")))?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_owned()))?;
    std::fs::create_dir_all(state_dir).map_err(|source| PrivilegeError::System {
        what: format!("creating {}", state_dir.display()),
        source,
    })?;
    hand_over(state_dir, account.uid, account.gid)?;
    let name = CString::new(account.name.clone())
        .map_err(|_| PrivilegeError::NoSuchUser(user.to_owned()))?;
    // Groups first: once the user id changes, changing groups is no longer allowed.
    nix::unistd::initgroups(&name, account.gid).map_err(system("setting the user's groups"))?;
    nix::unistd::setgid(account.gid).map_err(system("setting the group"))?;
    nix::unistd::setuid(account.uid).map_err(system("setting the user"))?;
    info!(
        user,
        uid = account.uid.as_raw(),
        "running as agent.run_as_user"
    );
    Ok(())
}

/// Gives `path` and everything below it to the user, so it can keep writing its state.
fn hand_over(path: &Path, uid: Uid, gid: Gid) -> Result<(), PrivilegeError> {
    nix::unistd::chown(path, Some(uid), Some(gid))
        .map_err(system(format!("handing {} to the user", path.display())))?;
    if path.is_dir() && !path.is_symlink() {
        let entries = std::fs::read_dir(path).map_err(|source| PrivilegeError::System {
            what: format!("reading {}", path.display()),
            source,
        })?;
        for entry in entries.flatten() {
            hand_over(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}
