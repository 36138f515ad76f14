//! `agent.run_as_user`: giving up root for a named user before anything runs.
//!
//! Owns the one switch of user: when cwlite starts as root and the configuration names a user,
//! the state directory is created and handed to that user (the directory alone, never what is
//! in it: see `state::dir`), then the process takes the user's groups, group and id for good
//! (glibc applies them to every thread). Everything else is opened after the switch, as that
//! user: `agent.logfile` and the credentials file must be readable by them (or come through
//! systemd's `LoadCredential=`). Under systemd, `User=` or `DynamicUser=` in the unit is
//! preferred; this exists for the stock agent's configurations.

use std::ffi::CString;
use std::path::Path;

use nix::unistd::{Uid, User};
use tracing::{info, warn};

/// Why the user could not be switched to.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// The state directory cannot be used or handed over.
    #[error(transparent)]
    StateDir(#[from] crate::state::dir::StateDirError),
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

/// What [`run_as`] did, for the log (which is opened only after the switch, as the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// The process is now the user.
    Became {
        /// The user's name.
        user: String,
        /// The user's id.
        uid: u32,
    },
    /// Not started as root: the setting is ignored.
    NotRoot {
        /// The user named.
        user: String,
    },
}

impl Switch {
    /// Logs what happened.
    pub fn log(&self) {
        match self {
            Self::Became { user, uid } => info!(user, uid, "running as agent.run_as_user"),
            Self::NotRoot { user } => warn!(
                user,
                "agent.run_as_user is ignored: cwlite was not started as root"
            ),
        }
    }
}

/// Becomes `user` when running as root; otherwise leaves the setting ignored.
///
/// # Errors
/// The user does not exist, the state directory cannot be trusted, or the switch failed
/// (cwlite then does not run as root by mistake).
pub fn run_as(user: &str, state_dir: &Path) -> Result<Switch, PrivilegeError> {
    if !Uid::effective().is_root() {
        return Ok(Switch::NotRoot {
            user: user.to_owned(),
        });
    }
    let account = User::from_name(user)
        .map_err(system(format!("looking up user {user:?}")))?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.to_owned()))?;
    let owner = crate::state::dir::Owner {
        uid: account.uid.as_raw(),
        gid: account.gid.as_raw(),
    };
    crate::state::dir::secure(state_dir, Some(owner))?;
    let name = CString::new(account.name.clone())
        .map_err(|_| PrivilegeError::NoSuchUser(user.to_owned()))?;
    // Groups first: once the user id changes, changing groups is no longer allowed.
    nix::unistd::initgroups(&name, account.gid).map_err(system("setting the user's groups"))?;
    nix::unistd::setgid(account.gid).map_err(system("setting the group"))?;
    nix::unistd::setuid(account.uid).map_err(system("setting the user"))?;
    Ok(Switch::Became {
        user: user.to_owned(),
        uid: account.uid.as_raw(),
    })
}
