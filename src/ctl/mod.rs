//! `cwlite ctl`: the stock `amazon-cloudwatch-agent-ctl`, so that `AmazonCloudWatch-ManageAgent`
//! and the documented commands drive cwlite unchanged.
//!
//! Owns the actions and their order: fetch a configuration, stage it, validate what would
//! run, then commit it and restart. A configuration that does not validate is refused before
//! anything changes. `staging` owns the configuration directory, `source` where a
//! configuration comes from, `service` the daemon's process. The ctl never talks to the
//! running daemon except through systemctl or a signal. One ctl runs at a time per
//! configuration directory (an exclusive `flock` on it).

pub mod service;
pub mod source;
pub mod staging;

use std::io::Write;
use std::path::PathBuf;

use crate::config::{self, Environment, Layout, RegionPolicy};
use service::Service;

/// What the ctl was asked to do (`-a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace every configuration with the one named.
    FetchConfig,
    /// Add the one named, replacing only a configuration of the same name.
    AppendConfig,
    /// Delete the one named, or all.
    RemoveConfig,
    /// Start (or restart) the daemon, with the default configuration if there is none.
    Start,
    /// Stop the daemon.
    Stop,
    /// Print the stock status JSON.
    Status,
    /// Change the running daemon's log level.
    SetLogLevel,
    /// For package scripts (stock, undocumented): before an upgrade stops the daemon, leave
    /// the restart marker if it runs.
    PrepRestart,
    /// For package scripts: after an upgrade, restart the daemon if the marker is there, then
    /// remove the marker.
    CondRestart,
}

impl Action {
    /// The stock action names.
    pub const NAMES: &'static str =
        "fetch-config|append-config|remove-config|start|stop|status|set-log-level";

    /// Parses a stock action name.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Self, CtlError> {
        Ok(match name {
            "fetch-config" => Self::FetchConfig,
            "append-config" => Self::AppendConfig,
            "remove-config" => Self::RemoveConfig,
            "start" => Self::Start,
            "stop" => Self::Stop,
            "status" => Self::Status,
            "set-log-level" => Self::SetLogLevel,
            "prep-restart" => Self::PrepRestart,
            "cond-restart" => Self::CondRestart,
            other => {
                return Err(CtlError::Usage(format!(
                    "invalid action {other:?}: -a takes {}",
                    Self::NAMES
                )));
            }
        })
    }
}

/// Where the host runs (`-m`). cwlite reads no instance metadata, so `auto` means on premises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ec2`: the stock default configuration gets the instance's dimensions.
    Ec2,
    /// `onPremise`, `onPrem`, or `auto`.
    OnPremise,
}

impl Mode {
    /// Parses a stock mode.
    ///
    /// # Errors
    /// An unknown mode.
    pub fn parse(name: &str) -> Result<Self, CtlError> {
        match name {
            "ec2" => Ok(Self::Ec2),
            "onPremise" | "onPrem" | "auto" => Ok(Self::OnPremise),
            other => Err(CtlError::Usage(format!(
                "invalid mode {other:?}: -m takes ec2|onPremise|onPrem|auto"
            ))),
        }
    }
}

/// Which configuration (`-c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The stock default.
    Default,
    /// Every configuration (`remove-config` only).
    All,
    /// A local file.
    File(PathBuf),
    /// An SSM Parameter Store parameter, by name or ARN.
    Ssm(String),
}

impl Location {
    /// Parses `default`, `all`, `file:<path>` or `ssm:<name>` (split at the first `:`, so an
    /// ARN keeps its colons).
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(text: &str) -> Result<Self, CtlError> {
        match text.split_once(':') {
            _ if text == "default" || text.is_empty() => Ok(Self::Default),
            _ if text == "all" => Ok(Self::All),
            Some(("file", path)) if !path.is_empty() => Ok(Self::File(PathBuf::from(path))),
            Some(("ssm", name)) if !name.is_empty() => Ok(Self::Ssm(name.to_owned())),
            _ => Err(CtlError::Usage(format!(
                "invalid configuration location {text:?}: -c takes default|all|file:<path>|ssm:<parameter-name>"
            ))),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::All => f.write_str("all"),
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Ssm(name) => write!(f, "ssm:{name}"),
        }
    }
}

/// The levels `set-log-level` takes, as the stock agent spells them.
pub const LOG_LEVELS: [&str; 5] = ["INFO", "DEBUG", "WARN", "ERROR", "OFF"];

/// One ctl invocation, parsed.
#[derive(Debug, Clone)]
pub struct Request {
    /// `-a`.
    pub action: Action,
    /// `-m`.
    pub mode: Mode,
    /// `-c`.
    pub location: Location,
    /// `-s`: restart after a configuration action.
    pub restart: bool,
    /// `-l`.
    pub log_level: Option<String>,
}

/// Why the ctl failed. Each message names what and where, on one line.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A bad command line.
    #[error("{0}")]
    Usage(String),
    /// The configuration would not run; nothing was changed.
    #[error("{location} is refused, nothing changed: {errors}")]
    Invalid {
        /// What was fetched.
        location: String,
        /// Every error, joined.
        errors: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, and on which file.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A program could not be run.
    #[error("cannot run {command}: {source}")]
    Command {
        /// The program.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// Starting or stopping the daemon failed.
    #[error("{0}")]
    Service(String),
    /// An SSM parameter could not be read.
    #[error(transparent)]
    Parameter(Box<crate::aws::ssm::ParameterError>),
}

/// Runs one request; what the stock ctl prints goes to `out`.
///
/// # Errors
/// See [`CtlError`]. The configuration directory is unchanged after any error of a
/// configuration action, except that a failure while committing can leave it part-way.
pub fn run(request: &Request, service: &Service, out: &mut dyn Write) -> Result<(), CtlError> {
    let layout = &service.layout;
    // ManageAgent and an operator at once would interleave staging, commits and starts.
    let _lock = lock(layout)?;
    match request.action {
        Action::FetchConfig | Action::AppendConfig | Action::RemoveConfig => {
            if request.location == Location::All && request.action != Action::RemoveConfig {
                let _ = writeln!(
                    out,
                    "ignore cwa configuration \"all\" as it is only supported by action \"remove-config\""
                );
                return Ok(());
            }
            if request.action == Action::RemoveConfig {
                remove(layout, &request.location, out)?;
            } else {
                apply(
                    layout,
                    &request.location,
                    request.mode,
                    request.action == Action::FetchConfig,
                    out,
                )?;
            }
            // As the stock translator rewrites env-config.json: a level set by hand lasts
            // until the configuration changes.
            let _ = std::fs::remove_file(layout.env_config());
            if request.restart {
                service.check_can_start()?;
                service.stop()?;
                start(service, request.mode, out)?;
            }
            Ok(())
        }
        Action::Start => {
            if service.running_pid()?.is_some() {
                let _ = writeln!(out, "cwlite has already been started");
                return Ok(());
            }
            start(service, request.mode, out)
        }
        Action::Stop => {
            if service.running_pid()?.is_none() {
                let _ = writeln!(out, "cwlite has already been stopped");
                return Ok(());
            }
            service.stop()
        }
        Action::Status => {
            let pid = service.running_pid()?;
            let status = serde_json::json!({
                "status": if pid.is_some() { "running" } else { "stopped" },
                "starttime": pid.and_then(service::start_time).unwrap_or_default(),
                "configstatus": if layout.is_configured() { "configured" } else { "not configured" },
                "version": env!("CARGO_PKG_VERSION"),
            });
            let text = serde_json::to_string_pretty(&status).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            Ok(())
        }
        Action::SetLogLevel => set_log_level(layout, request.log_level.as_deref(), out),
        Action::PrepRestart => {
            if service.running_pid()?.is_some() {
                std::fs::write(layout.restart_marker(), b"").map_err(|source| CtlError::Io {
                    what: format!("cannot write {}", layout.restart_marker().display()),
                    source,
                })?;
            }
            Ok(())
        }
        Action::CondRestart => {
            let marker = layout.restart_marker();
            if !marker.exists() {
                return Ok(());
            }
            // A restart, not a start: after `apt upgrade` the old binary still runs. The marker
            // stays when the start fails, so that the package manager's retry (or the
            // Distributor's rollback to the previous version) starts it again.
            service.check_can_start()?;
            service.stop()?;
            start(service, request.mode, out)?;
            std::fs::remove_file(&marker).map_err(|source| CtlError::Io {
                what: format!("cannot remove {}", marker.display()),
                source,
            })
        }
    }
}

/// Holds an exclusive lock on the configuration directory until dropped.
fn lock(layout: &Layout) -> Result<std::fs::File, CtlError> {
    let etc = layout.etc();
    let io = |source| CtlError::Io {
        what: format!("cannot lock {}", etc.display()),
        source,
    };
    std::fs::create_dir_all(etc).map_err(io)?;
    let dir = std::fs::File::open(etc).map_err(io)?;
    rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|err| io(err.into()))?;
    Ok(dir)
}

/// Fetches, stages, validates and commits one configuration.
fn apply(
    layout: &Layout,
    location: &Location,
    mode: Mode,
    replace_all: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let name = staging::file_name(location).unwrap_or_default();
    if !staging::is_readable_name(&name) {
        return Err(CtlError::Usage(format!(
            "{location} would be stored as {name}, a name cwlite does not read (hidden or ending in .tmp): rename the source"
        )));
    }
    let bytes = source::fetch(location, mode, layout)?;
    staging::discard_staged(layout).map_err(|source| CtlError::Io {
        what: format!("cannot clear staged files in {}", layout.dir().display()),
        source,
    })?;
    let staged = staging::stage(layout, &name, &bytes).map_err(|source| CtlError::Io {
        what: format!("cannot stage {location} in {}", layout.dir().display()),
        source,
    })?;
    let _ = writeln!(out, "Start configuration validation...");
    let files = staging::files_after(layout, &staged, replace_all);
    if let Err(err) = validate(layout, &files) {
        let _ = std::fs::remove_file(&staged);
        let shown = staged.display().to_string();
        let errors = err.replace(&shown, &location.to_string());
        return Err(CtlError::Invalid {
            location: location.to_string(),
            errors,
        });
    }
    let _ = writeln!(out, "Configuration validation succeeded");
    staging::commit(layout, &staged, replace_all).map_err(|source| CtlError::Io {
        what: format!("cannot apply {location} in {}", layout.dir().display()),
        source,
    })
}

fn remove(layout: &Layout, location: &Location, out: &mut dyn Write) -> Result<(), CtlError> {
    let doomed = staging::files_removed(layout, location).map_err(|source| CtlError::Io {
        what: format!("cannot remove {location}"),
        source,
    })?;
    let remaining: Vec<PathBuf> = layout
        .config_files()
        .into_iter()
        .filter(|file| !doomed.contains(file))
        .collect();
    if !remaining.is_empty() {
        let _ = writeln!(out, "Start configuration validation...");
        validate(layout, &remaining).map_err(|errors| CtlError::Invalid {
            location: format!("removing {location}"),
            errors,
        })?;
        let _ = writeln!(out, "Configuration validation succeeded");
    }
    staging::remove(layout, location).map_err(|source| CtlError::Io {
        what: format!("cannot remove {location}"),
        source,
    })?;
    if remaining.is_empty() {
        let _ = writeln!(out, "all cwlite configurations have been removed");
    }
    Ok(())
}

/// The configuration `files` would make, checked as `cwlite run` checks it; the errors on one
/// line when it would not run.
fn validate(layout: &Layout, files: &[PathBuf]) -> Result<(), String> {
    let env = Environment::from_process();
    let common = layout.common_config_if_present();
    config::load_files(files, common.as_deref(), &env, RegionPolicy::Required)
        .map(|_| ())
        .map_err(|err| {
            err.errors
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

fn start(service: &Service, mode: Mode, out: &mut dyn Write) -> Result<(), CtlError> {
    if !service.layout.is_configured() {
        let _ = writeln!(
            out,
            "cwlite is not configured. Applying the default configuration."
        );
        apply(&service.layout, &Location::Default, mode, true, out)?;
    }
    service.start()
}

fn set_log_level(
    layout: &Layout,
    level: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let level = level.unwrap_or_default();
    if !LOG_LEVELS.contains(&level) {
        return Err(CtlError::Usage(format!(
            "invalid log level {level:?}: -l takes {}",
            LOG_LEVELS.join("|")
        )));
    }
    let text = format!("{{\n\t\"CWAGENT_LOG_LEVEL\": \"{level}\"\n}}\n");
    // 0644 as the stock agent leaves it: the daemon runs as another user.
    crate::state::write_atomically(&layout.env_config(), text.as_bytes())
        .and_then(|()| {
            std::fs::set_permissions(
                layout.env_config(),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
        })
        .map_err(|source| CtlError::Io {
            what: format!("cannot write {}", layout.env_config().display()),
            source,
        })?;
    let _ = writeln!(out, "Set CWAGENT_LOG_LEVEL to {level}");
    Ok(())
}

impl From<crate::aws::ssm::ParameterError> for CtlError {
    fn from(err: crate::aws::ssm::ParameterError) -> Self {
        Self::Parameter(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stock_words_parse_and_others_are_named_in_the_error() {
        assert_eq!(Action::parse("fetch-config").unwrap(), Action::FetchConfig);
        assert_eq!(Action::parse("prep-restart").unwrap(), Action::PrepRestart);
        assert_eq!(Action::parse("cond-restart").unwrap(), Action::CondRestart);
        assert_eq!(Mode::parse("onPrem").unwrap(), Mode::OnPremise);
        assert_eq!(Mode::parse("auto").unwrap(), Mode::OnPremise);
        assert_eq!(
            Location::parse("ssm:arn:aws:ssm:eu-west-1:1:parameter/x").unwrap(),
            Location::Ssm("arn:aws:ssm:eu-west-1:1:parameter/x".into())
        );
        assert_eq!(
            Location::parse("file:/a/b.json").unwrap(),
            Location::File("/a/b.json".into())
        );
        assert_eq!(Location::parse("").unwrap(), Location::Default);
        for (bad, named) in [
            (Action::parse("reload").unwrap_err(), "\"reload\""),
            (Mode::parse("cloud").unwrap_err(), "\"cloud\""),
            (Location::parse("s3:bucket").unwrap_err(), "\"s3:bucket\""),
            (Location::parse("ssm:").unwrap_err(), "\"ssm:\""),
        ] {
            let text = bad.to_string();
            assert!(text.contains(named) && !text.contains('\n'), "{text}");
        }
    }
}
