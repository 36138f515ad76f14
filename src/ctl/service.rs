//! Starting, stopping and asking after the daemon for `cwlite ctl`: through systemctl when
//! systemd runs the host, else as a detached process the ctl starts itself and finds again by
//! a pid file.
//!
//! Owns the pid file (`<state-dir>/ctl.pid`), the log of a daemon it starts
//! (`<state-dir>/cwlite.log`, and the stale `status.json` it removes before a start), and the
//! daemon's start time. It never reads or writes configuration files, and never signals a
//! process that does not run its own program.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::CtlError;
use crate::config::Layout;

/// The unit the `.deb` installs.
pub const UNIT: &str = "cwlite.service";

/// The file, in the configuration directory, that the unit hands the daemon as its
/// credentials (`LoadCredential=aws-credentials:/etc/cwlite/credentials`).
pub const UNIT_CREDENTIALS: &str = "credentials";

/// The pid file of a daemon the ctl started itself, under the state directory.
pub const PID_FILE: &str = "ctl.pid";

/// Where a daemon the ctl started itself writes its stderr, under the state directory.
pub const LOG_FILE: &str = "cwlite.log";

/// How long a stop may take before the ctl gives up on it: the unit's `TimeoutStopSec=`.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a started daemon has to come up (load its configuration and credentials, and
/// write its first status report).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What runs the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// systemd: `systemctl` on [`UNIT`].
    Systemd,
    /// Nothing: the ctl starts `cwlite run` in the background itself.
    Process,
}

impl Init {
    /// systemd if it booted the host (the test of `sd_booted(3)`), else [`Init::Process`].
    pub fn detect() -> Self {
        if Path::new("/run/systemd/system").is_dir() {
            Self::Systemd
        } else {
            Self::Process
        }
    }
}

/// The daemon the ctl controls.
#[derive(Debug, Clone)]
pub struct Service {
    /// What runs it.
    pub init: Init,
    /// Its configuration, for a daemon the ctl starts itself.
    pub layout: Layout,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// The `cwlite` binary to start.
    pub program: PathBuf,
}

impl Service {
    /// The daemon's pid when it runs.
    ///
    /// # Errors
    /// systemctl cannot be run.
    pub fn running_pid(&self) -> Result<Option<u32>, CtlError> {
        match self.init {
            Init::Systemd => {
                let active = systemctl(&["is-active", "--quiet", UNIT])?.success();
                if !active {
                    return Ok(None);
                }
                let output = Command::new("systemctl")
                    .args(["show", "--property=MainPID", "--value", UNIT])
                    .output()
                    .map_err(|source| CtlError::Command {
                        command: "systemctl show".into(),
                        source,
                    })?;
                let pid = String::from_utf8_lossy(&output.stdout).trim().parse().ok();
                Ok(pid.filter(|pid| *pid != 0))
            }
            Init::Process => Ok(self
                .own_pid()
                .or_else(|| self.status_pid())
                .filter(|pid| self.runs_our_program(*pid))),
        }
    }

    /// Starts the daemon (enabling the unit under systemd), or restarts it if it runs.
    ///
    /// # Errors
    /// systemctl failed, or the process did not come up (its log's last lines are in the error).
    pub fn start(&self) -> Result<(), CtlError> {
        self.check_can_start()?;
        match self.init {
            Init::Systemd => {
                check(systemctl(&["enable", UNIT])?, "systemctl enable")?;
                check(systemctl(&["restart", UNIT])?, "systemctl restart")
            }
            Init::Process => self.spawn(),
        }
    }

    /// What would make a start fail for a reason the ctl can see first, checked before a
    /// restart stops the running daemon.
    ///
    /// # Errors
    /// Under systemd, the credentials file the unit loads is missing: the unit would fail to
    /// start, in words that do not say which file.
    pub fn check_can_start(&self) -> Result<(), CtlError> {
        if self.init == Init::Systemd {
            let credentials = self.layout.etc().join(UNIT_CREDENTIALS);
            if !credentials.is_file() {
                return Err(CtlError::Service(format!(
                    "cannot start {UNIT}: it loads its AWS credentials from {}, which does not exist (put the AmazonCloudWatchAgent profile there, mode 600)",
                    credentials.display()
                )));
            }
        }
        Ok(())
    }

    /// Stops the daemon and waits for it to end.
    ///
    /// # Errors
    /// systemctl failed, or the process did not end within [`STOP_TIMEOUT`].
    pub fn stop(&self) -> Result<(), CtlError> {
        match self.init {
            // Always: a unit that is starting or waiting to restart is not "active", and must
            // be stopped all the same.
            Init::Systemd => check(systemctl(&["stop", UNIT])?, "systemctl stop"),
            Init::Process => {
                let Some(pid) = self.running_pid()? else {
                    return Ok(());
                };
                signal(pid, rustix::process::Signal::TERM)?;
                let deadline = Instant::now() + STOP_TIMEOUT;
                while alive(pid) {
                    if Instant::now() > deadline {
                        // As systemd does after TimeoutStopSec=: the checkpoints written so far
                        // stay consistent, and what was not acknowledged is read again.
                        signal(pid, rustix::process::Signal::KILL)?;
                        let killed = Instant::now() + Duration::from_secs(5);
                        while alive(pid) && Instant::now() < killed {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = std::fs::remove_file(self.state_dir.join(PID_FILE));
                Ok(())
            }
        }
    }

    /// The pid in the ctl's own pid file, if that process still runs and is the one written
    /// (same start time: a pid reused by another program does not count).
    fn own_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.state_dir.join(PID_FILE)).ok()?;
        let mut fields = text.split_whitespace();
        let pid: u32 = fields.next()?.parse().ok()?;
        let started: u64 = fields.next()?.parse().ok()?;
        (start_ticks(pid) == Some(started)).then_some(pid)
    }

    /// Whether `pid` runs this ctl's own program (`/proc/<pid>/exe`; a binary replaced by an
    /// upgrade still counts). The pid and status files are in a directory the daemon's user may
    /// write, so what they name is not signalled on their word alone.
    fn runs_our_program(&self, pid: u32) -> bool {
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            return false;
        };
        let exe = exe.to_string_lossy();
        let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
        let ours = std::fs::canonicalize(&self.program).unwrap_or_else(|_| self.program.clone());
        Path::new(exe) == ours
    }

    /// The pid of a daemon started some other way on the same state directory, from its status
    /// report.
    fn status_pid(&self) -> Option<u32> {
        let (report, running) = crate::telemetry::read_status(&self.state_dir).ok()?;
        (running && alive(report.pid)).then_some(report.pid)
    }

    fn spawn(&self) -> Result<(), CtlError> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        use std::os::unix::process::CommandExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.state_dir)
            .map_err(|source| CtlError::Io {
                what: format!("cannot create {}", self.state_dir.display()),
                source,
            })?;
        let log_path = self.state_dir.join(LOG_FILE);
        // The daemon's user may own the state directory: never through a link, only a regular
        // file (the ctl runs as root and hands this file to the daemon).
        let log = crate::regular::open(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640),
            &log_path,
        )
        .map_err(|source| CtlError::Io {
            what: format!("cannot open {}", log_path.display()),
            source,
        })?;
        let log_start = log.metadata().map_or(0, |m| m.len());
        let status_path = self.state_dir.join(crate::telemetry::STATUS_FILE);
        let _ = std::fs::remove_file(&status_path);
        let mut child = Command::new(&self.program)
            .arg("run")
            .arg("--etc")
            .arg(self.layout.etc())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .stdin(std::process::Stdio::null())
            // What a systemd-started ctl would hand on, and which is not the daemon's.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_PID")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdout(log.try_clone().map_err(|source| CtlError::Io {
                what: format!("cannot open {}", log_path.display()),
                source,
            })?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal that ran the ctl does not reach it.
            .process_group(0)
            .spawn()
            .map_err(|source| CtlError::Command {
                command: self.program.display().to_string(),
                source,
            })?;
        let pid = child.id();
        let started = start_ticks(pid).unwrap_or(0);
        if let Err(source) = crate::state::write_atomically(
            &self.state_dir.join(PID_FILE),
            format!("{pid} {started}\n").as_bytes(),
        ) {
            // Without its pid file the ctl could not stop it again.
            let _ = child.kill();
            let _ = child.wait();
            return Err(CtlError::Io {
                what: format!("cannot write {}", self.state_dir.join(PID_FILE).display()),
                source,
            });
        }
        // Up once it wrote its first status report; a daemon that exits first failed to start.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_file(self.state_dir.join(PID_FILE));
                return Err(CtlError::Service(format!(
                    "cwlite exited ({status}) while starting: {}",
                    log_tail(&log_path, log_start)
                )));
            }
            if matches!(crate::telemetry::read_status(&self.state_dir), Ok((report, true)) if report.pid == pid)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = signal(pid, rustix::process::Signal::TERM);
                let _ = child.wait();
                let _ = std::fs::remove_file(self.state_dir.join(PID_FILE));
                return Err(CtlError::Service(format!(
                    "cwlite (pid {pid}) did not come up within {} s and was stopped: {}",
                    START_TIMEOUT.as_secs(),
                    log_tail(&log_path, log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// When `pid` started, as `YYYY-MM-DDTHH:MM:SS+00:00` (the stock status's `date -Isec` in UTC).
pub fn start_time(pid: u32) -> Option<String> {
    let ticks = start_ticks(pid)?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    let seconds = boot + i64::try_from(ticks / per_second).ok()?;
    let time = jiff::Timestamp::from_second(seconds).ok()?;
    Some(time.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string())
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks after boot.
/// `None` for a process that is gone or a zombie.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count from the last one.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

fn alive(pid: u32) -> bool {
    start_ticks(pid).is_some()
}

fn signal(pid: u32, signal: rustix::process::Signal) -> Result<(), CtlError> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| CtlError::Service(format!("invalid pid {pid}")))?;
    rustix::process::kill_process(target, signal).map_err(|err| CtlError::Io {
        what: format!("cannot signal pid {pid}"),
        source: err.into(),
    })
}

fn systemctl(args: &[&str]) -> Result<std::process::ExitStatus, CtlError> {
    Command::new("systemctl")
        .args(args)
        .status()
        .map_err(|source| CtlError::Command {
            command: format!("systemctl {}", args.join(" ")),
            source,
        })
}

fn check(status: std::process::ExitStatus, what: &str) -> Result<(), CtlError> {
    if status.success() {
        Ok(())
    } else {
        Err(CtlError::Service(format!(
            "{what} {UNIT} failed ({status})"
        )))
    }
}

/// The last lines the daemon wrote to its log since `from`, on one line.
fn log_tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        format!("nothing in {}", path.display())
    } else {
        tail.join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_in_the_stock_form() {
        let text = start_time(std::process::id()).unwrap();
        assert_eq!(text.len(), "2026-12-05T01:45:30+00:00".len(), "{text}");
        assert!(
            text.ends_with("+00:00") && text.as_bytes()[10] == b'T',
            "{text}"
        );
        let started = jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%:z", &text).unwrap();
        let age = jiff::Timestamp::now().as_second() - started.as_second();
        assert!((0..3600).contains(&age), "{text}");
    }

    #[test]
    fn a_pid_file_naming_a_reused_pid_is_not_our_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let service = Service {
            init: Init::Process,
            layout: Layout::new(dir.path()),
            state_dir: dir.path().to_owned(),
            program: PathBuf::from("cwlite"),
        };
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap();
        std::fs::write(dir.path().join(PID_FILE), format!("{me} {}\n", ticks + 1)).unwrap();
        assert_eq!(service.own_pid(), None);
        std::fs::write(dir.path().join(PID_FILE), format!("{me} {ticks}\n")).unwrap();
        assert_eq!(service.own_pid(), Some(me));
    }
}
