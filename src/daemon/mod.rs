//! What `cwlite run` does with a validated configuration: start-up checks, the control loop,
//! reloads, restarts, the status file and systemd's notifications, and an ordered shutdown.
//!
//! Owns the lifecycle. Start: clients, state directory, credentials, then the pipelines
//! (`pipelines`: shippers before producers). Then one control loop reacts to signals and to a
//! periodic tick until a stop signal; stop: producers first, shippers drain until their queues
//! are empty or the deadline passes, final checkpoints. It never touches files being tailed or
//! builds requests itself.

pub mod log_level;
pub mod memory;
mod pipelines;
pub mod privileges;
pub mod sandbox;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use sd_notify::NotifyState;
use tracing::{debug, error, info, warn};

pub use self::pipelines::Pipelines;
use crate::aws::{ClientSetupError, Clients};
use crate::config::Config;
use crate::ship::retry::Backoff;
use crate::state::checkpoint::CheckpointError;
use crate::state::replace_file;
use crate::state::spool::SpoolError;
use crate::telemetry::{STATUS_FILE, StatusReport, Telemetry};

/// Where cwlite keeps its state when `--state-dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cwlite";
/// How long shippers may keep sending after a stop request: well below systemd's default
/// 90 s stop timeout, so the final spool and checkpoint writes always happen.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// Collection cycles that may wait for the publisher; beyond that a cycle is dropped and counted
/// (the publisher never blocks on the network, so this only fills if it is stuck).
pub const METRIC_QUEUE_CYCLES: usize = 256;
/// Subdirectory of the state directory holding the metric spool.
pub const METRIC_SPOOL_DIR: &str = "metrics-spool";
/// Subdirectory of the state directory holding log checkpoints.
pub const LOG_STATE_DIR: &str = "logs-state";

/// Where each `journald` entry's cursor is kept, under the state directory.
pub const JOURNAL_STATE_DIR: &str = "journal-state";
/// Chunks of events that may wait between the tailer and the shipper: with at most
/// `MAX_EVENTS_PER_HANDOFF` (4,096) events each, at most 65,536 events; their bytes are bounded
/// by the budget.
pub const LOG_QUEUE_CHUNKS: usize = 16;
/// How often acknowledged offsets are written to disk at most.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// How the process runs, as opposed to what it does (which is the configuration).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Send nothing; print each request that would be sent.
    pub dry_run: bool,
    /// Directory for checkpoints and spools.
    pub state_dir: PathBuf,
    /// Most bytes of metric batches kept while CloudWatch cannot be reached.
    pub metric_spool_bytes: u64,
    /// Most bytes of log data read but not yet acknowledged (the backpressure budget).
    pub log_buffer_bytes: usize,
    /// Publish cwlite's own health as metrics, every `metrics_collection_interval`.
    pub self_metrics: bool,
    /// Where `cwlite ctl -a set-log-level` leaves a log level (with `--etc`).
    pub log_level: Option<log_level::LevelFile>,
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Clients or credentials could not be set up.
    #[error(transparent)]
    Setup(#[from] ClientSetupError),
    /// The state directory cannot be created or trusted.
    #[error(transparent)]
    StateDir(#[from] crate::state::dir::StateDirError),
    /// The metric spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The checkpoint directory cannot be opened.
    #[error(transparent)]
    Checkpoints(#[from] CheckpointError),
    /// The tailer thread could not be started.
    #[error("cannot start the tailer thread: {0}")]
    Thread(String),
    /// The statsd listener could not be started (its port in use, most often).
    #[error(transparent)]
    Statsd(#[from] crate::statsd::StatsdError),
    /// The collectd listener could not be started (`types.db` unreadable, its port in use).
    #[error(transparent)]
    Collectd(#[from] crate::collectd::CollectdError),
    /// The EMF listener could not be started (its port in use, most often).
    #[error(transparent)]
    Emf(#[from] crate::listen::ListenError),
}

/// What the control loop reacts to: a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM or SIGINT: stop in order.
    Stop(&'static str),
    /// SIGHUP: load the configuration again.
    Reload,
}

/// The signal handlers, installed at once when created (inside the runtime), so a signal that
/// arrives during start-up is not lost to the default action.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP.
    ///
    /// # Errors
    /// A handler could not be installed.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Control {
        tokio::select! {
            _ = self.term.recv() => Control::Stop("SIGTERM"),
            _ = self.int.recv() => Control::Stop("SIGINT"),
            _ = self.hup.recv() => Control::Reload,
        }
    }
}

/// Loads the configuration again for a reload: the validated configuration, or the errors to log.
pub type Reload = dyn Fn() -> Result<Config, Vec<String>> + Send + Sync;

/// Runs the pipelines of `config` until a stop signal, then stops them in order.
///
/// One control loop owns the lifecycle and reacts to a closed set of events: a signal
/// ([`Control`]), and a periodic tick on which it restarts a pipeline whose part ended (with
/// capped backoff), writes the status file, tells systemd the status, and feeds the watchdog
/// only while the pipelines are alive and the tailer goes round. SIGHUP loads the configuration
/// again through `reload`; a configuration that does not load, or whose clients or credentials
/// do not work, is logged and the running one stays. A second stop signal during the drain exits
/// at once: checkpoints are written atomically, so they stay consistent, and what was not
/// acknowledged is read again at the next start.
///
/// # Errors
/// A start-up check failed: state directory, region, CA bundle, proxy, credentials or spool; or
/// after a reload neither the new nor the old configuration could be started.
pub async fn run(
    config: Config,
    options: &RunOptions,
    reload: &Reload,
    mut signals: Signals,
) -> Result<(), RunError> {
    let telemetry = Arc::new(Telemetry::default());
    let started_at = epoch_secs();
    let mut clients = prepare(&config, options).await?;
    let mut config = config;
    let mut pipelines = Pipelines::start(&config, &clients, options, &telemetry)?;
    info!("started");
    let watchdog = sd_notify::watchdog_enabled();
    // The clients' attempt timeout, read once as the clients read it.
    let shipper_stuck = shipper_stuck_after(crate::aws::attempt_timeout(
        std::env::var(crate::aws::ATTEMPT_TIMEOUT_ENV)
            .ok()
            .as_deref(),
    ));
    let tick_every = watchdog.map_or(STATUS_INTERVAL, |timeout| {
        (timeout / 2).min(STATUS_INTERVAL)
    });
    if let Some(timeout) = watchdog {
        info!(
            timeout_ms = timeout.as_millis() as u64,
            "systemd watchdog on: fed while the pipelines make progress"
        );
    }
    let mut level = options.log_level.clone().map(log_level::Watch::new);
    if let Some(level) = &mut level {
        level.check();
    }
    let mut status = StatusWriter::new(options, started_at);
    status.write(&telemetry, &pipelines);
    notify(&[NotifyState::Ready, NotifyState::Status(&status.summary)]);
    let mut ticks = tokio::time::interval(tick_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut restarts = Backoff::new(RESTART_BACKOFF_BASE, RESTART_BACKOFF_CAP);
    let mut own = OwnMetrics::new(options.self_metrics, &config);
    let mut restart_at: Option<tokio::time::Instant> = None;
    let mut release_code_at = Some(tokio::time::Instant::now() + memory::RELEASE_AFTER);
    loop {
        tokio::select! {
            control = signals.next() => match control {
                Control::Stop(signal) => {
                    info!("{signal} received");
                    break;
                }
                Control::Reload => {
                    info!("SIGHUP received: loading the configuration again");
                    notify_reloading();
                    if let Some((new_config, new_clients)) = load_again(reload, options).await {
                        pipelines.stop().await;
                        match Pipelines::start(&new_config, &new_clients, options, &telemetry) {
                            Ok(started) => {
                                pipelines = started;
                                own = OwnMetrics::new(options.self_metrics, &new_config);
                                config = new_config;
                                clients = new_clients;
                                release_code_at = Some(tokio::time::Instant::now() + memory::RELEASE_AFTER);
                                info!("reloaded: the new configuration runs");
                            }
                            Err(err) => {
                                error!("the new configuration could not start ({err}); the previous one runs again");
                                pipelines = Pipelines::start(&config, &clients, options, &telemetry)?;
                            }
                        }
                    }
                    status.write(&telemetry, &pipelines);
                    notify(&[NotifyState::Ready, NotifyState::Status(&status.summary)]);
                }
            },
            _ = ticks.tick() => {
                let ended = pipelines.ended_parts();
                if !ended.is_empty() {
                    let now = tokio::time::Instant::now();
                    let due = *restart_at.get_or_insert_with(|| {
                        let delay = restarts.next_delay();
                        error!(parts = ?ended, restart_in_ms = delay.as_millis() as u64, "a part of the pipelines ended unexpectedly; restarting it");
                        now + delay
                    });
                    if now >= due {
                        restart_at = None;
                        if let Err(err) = pipelines.restart_ended(&config, &clients, options, &telemetry).await {
                            error!("restart failed: {err}; trying again later");
                        }
                    }
                } else if restart_at.is_none() && restarts.attempts() > 0 && status.up_for() > RESTART_BACKOFF_RESET {
                    restarts.reset();
                }
                if let Some(level) = &mut level {
                    level.check();
                }
                status.write(&telemetry, &pipelines);
                own.publish(&status, &pipelines);
                if release_code_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    release_code_at = None;
                    match memory::release_startup_code() {
                        Ok(bytes) => debug!(bytes, "start-up code released from memory"),
                        Err(err) => debug!("start-up code not released: {err}"),
                    }
                }
                let alive = ended.is_empty()
                    && tailer_goes_round(&telemetry, &pipelines)
                    && shipper_progresses(&telemetry, &pipelines, shipper_stuck);
                if watchdog.is_some() && alive {
                    notify(&[NotifyState::Watchdog, NotifyState::Status(&status.summary)]);
                } else {
                    if watchdog.is_some() {
                        warn!(parts = ?ended, "not feeding the watchdog: the pipelines make no progress");
                    }
                    notify(&[NotifyState::Status(&status.summary)]);
                }
            }
        }
    }
    notify(&[NotifyState::Stopping]);
    // A second signal means "now": the drain is skipped, nothing is corrupted.
    tokio::spawn(async move {
        if let Control::Stop(signal) = signals.next().await {
            warn!(
                "{signal} received again: exiting without draining; unacknowledged data is read again at the next start"
            );
            std::process::exit(EXIT_INTERRUPTED);
        }
    });
    pipelines.stop().await;
    status.write(&telemetry, &Pipelines::none());
    info!("stopped");
    Ok(())
}

/// Exit code of a stop forced by a second signal (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;
/// How often the status file is written and systemd told the status (more often when the
/// watchdog needs it).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// First delay before a pipeline whose part ended is started again.
pub const RESTART_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest delay between restarts of a part that keeps ending.
pub const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(60);
/// Running this long without a part ending forgets earlier restarts.
pub const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(600);
/// A tailer whose loop has not gone round for this long is stuck (it goes round at least every
/// rescan interval; it never waits for the budget, which only pauses some files).
pub const TAILER_STUCK_AFTER: Duration = Duration::from_secs(60);
/// A logs shipper that holds data and has neither finished a request nor been without one in
/// flight for this long, beyond what its slowest request may take (see
/// [`shipper_stuck_after`]), is stuck. An outage or a refusal is not stuck: each attempt
/// ends (the SDK's timeouts), and restarting would not help.
pub const SHIPPER_STUCK_AFTER: Duration = Duration::from_secs(180);

/// How long the logs shipper may go without a request ending before it counts as stuck: the
/// slowest request is a put, three creates and a put again, each within the attempt timeout.
pub fn shipper_stuck_after(attempt_timeout: Duration) -> Duration {
    SHIPPER_STUCK_AFTER.max(attempt_timeout * 5 + Duration::from_secs(60))
}

/// Builds the clients and runs the start-up checks of `config`.
async fn prepare(config: &Config, options: &RunOptions) -> Result<Clients, RunError> {
    let clients = Clients::build(config).await?;
    info!(region = %clients.region, logs = %clients.logs_endpoint, metrics = %clients.metrics_endpoint, "clients ready");
    if options.dry_run {
        // Loading credentials may itself be a request (instance metadata in the default chain),
        // and a dry run sends nothing, so credentials are not checked.
        info!("dry run: requests are printed on stdout, nothing is sent and nothing is written");
    } else {
        crate::state::dir::secure(&options.state_dir, None)?;
        let access_key_id = clients.check_credentials().await?;
        info!(access_key_id = %access_key_id, state_dir = %crate::telemetry::shown(&options.state_dir), "credentials loaded");
    }
    Ok(clients)
}

/// The reloaded configuration and its checked clients, or `None` (logged) when either fails:
/// the running configuration then stays.
async fn load_again(reload: &Reload, options: &RunOptions) -> Option<(Config, Clients)> {
    let config = match reload() {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors {
                error!("{error}");
            }
            error!(
                errors = errors.len(),
                "reload refused: the configuration is invalid; the running one stays"
            );
            return None;
        }
    };
    match prepare(&config, options).await {
        Ok(clients) => Some((config, clients)),
        Err(err) => {
            error!("reload refused: {err}; the running configuration stays");
            None
        }
    }
}

/// Whether the tailer (if any) went round recently.
fn tailer_goes_round(telemetry: &Telemetry, pipelines: &Pipelines) -> bool {
    if !pipelines.has_logs() {
        return true;
    }
    let beat = telemetry.tailer.heartbeat_secs.load(Ordering::Relaxed);
    epoch_secs().saturating_sub(beat) < TAILER_STUCK_AFTER.as_secs()
}

/// Whether the logs shipper (if any) makes progress: a destination's request ended recently,
/// or nothing is held to send. Waiting alone (a tailer paused on the budget) is not progress.
fn shipper_progresses(telemetry: &Telemetry, pipelines: &Pipelines, stuck_after: Duration) -> bool {
    if !pipelines.has_logs() || pipelines.queue(telemetry).bytes == 0 {
        return true;
    }
    telemetry
        .shipper_idle_secs()
        .is_none_or(|idle| idle < stuck_after.as_secs())
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Tells systemd (when it listens: `NOTIFY_SOCKET`); failures only matter to systemd, which
/// acts on missing messages itself.
fn notify(states: &[NotifyState<'_>]) {
    let _ = sd_notify::notify(states);
}

/// `RELOADING=1` with the monotonic time systemd 253 and later require with it.
fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// `--self-metrics`: cwlite's own health into the metric publisher, every
/// `metrics_collection_interval`, with the `host` dimension the host metrics carry.
struct OwnMetrics {
    every: Option<Duration>,
    host: Option<String>,
    last: Option<(tokio::time::Instant, StatusReport)>,
    warned: bool,
}

impl OwnMetrics {
    fn new(enabled: bool, config: &Config) -> Self {
        Self {
            every: enabled
                .then(|| Duration::from_secs(config.agent.metrics_collection_interval_secs.max(1))),
            host: (!config.agent.omit_hostname).then(|| config.agent.hostname.clone()),
            last: None,
            warned: false,
        }
    }

    fn publish(&mut self, status: &StatusWriter, pipelines: &Pipelines) {
        let (Some(every), Some(report)) = (self.every, &status.previous) else {
            return;
        };
        let now = tokio::time::Instant::now();
        let previous = match &self.last {
            Some((at, _)) if now.duration_since(*at) < every => return,
            Some((_, previous)) => previous.clone(),
            None => report.clone(),
        };
        let timestamp_ms = (epoch_secs() * 1000) as i64;
        let datums =
            crate::telemetry::self_datums(report, &previous, self.host.as_deref(), timestamp_ms);
        if !pipelines.publish_own(datums) && !self.warned {
            self.warned = true;
            warn!(
                "--self-metrics needs a metrics section (its namespace and endpoint): nothing is published"
            );
        }
        self.last = Some((now, report.clone()));
    }
}

/// Writes `status.json` in the state directory and keeps the one-line summary for systemd.
struct StatusWriter {
    path: Option<PathBuf>,
    started_at: u64,
    previous: Option<StatusReport>,
    summary: String,
    warned: bool,
}

impl StatusWriter {
    fn new(options: &RunOptions, started_at: u64) -> Self {
        Self {
            // A dry run writes nothing.
            path: (!options.dry_run).then(|| options.state_dir.join(STATUS_FILE)),
            started_at,
            previous: None,
            summary: String::new(),
            warned: false,
        }
    }

    fn up_for(&self) -> Duration {
        Duration::from_secs(epoch_secs().saturating_sub(self.started_at))
    }

    fn write(&mut self, telemetry: &Telemetry, pipelines: &Pipelines) {
        let report = telemetry.report(
            std::process::id(),
            self.started_at,
            epoch_secs(),
            pipelines.queue(telemetry),
            self.previous.as_ref(),
        );
        self.summary = report.summary(self.previous.as_ref());
        if let Some(path) = &self.path {
            // Compact: `cwlite status` is the human view (or `jq .`), and a glob over 10,000
            // files writes 10,000 entries every 5 s.
            let written = serde_json::to_vec(&report)
                .map_err(std::io::Error::other)
                .and_then(|json| replace_file(path, &json));
            match written {
                Ok(()) => self.warned = false,
                Err(err) if !self.warned => {
                    self.warned = true;
                    warn!(file = %crate::telemetry::shown(path), "cannot write the status file: {err}; `cwlite status` shows old figures");
                }
                Err(_) => {}
            }
        }
        self.previous = Some(report);
    }
}
