//! What `cwlite run` does with a validated configuration: start-up checks, the pipelines, and
//! an ordered shutdown.
//!
//! Owns the order of things. Start: clients, state directory, credentials, then shippers before
//! producers. Stop (on the `shutdown` future): producers first (collectors stop and drop their
//! senders), then shippers drain until their queues are empty or the deadline passes, and what
//! is left stays in the spool. The logs pipeline plugs in here the same way.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::aws::{ClientSetupError, Clients};
use crate::collect::{Collector, Host};
use crate::config::LogsConfig;
use crate::config::{Config, MetricsConfig, PluginConfig};
use crate::metrics::{DatumBuilder, MetricDatum};
use crate::queue::{ByteBudget, DEFAULT_LOG_BUDGET_BYTES};
use crate::ship::cloudwatch_logs::batch::MAX_EVENT_MESSAGE_BYTES;
use crate::ship::cloudwatch_logs::shipper::{self, LogShipperSettings, LogShipperStats};
use crate::ship::cloudwatch_logs::sink::LogsSink;
use crate::ship::cloudwatch_metrics::{MetricsSink, Publisher, PublisherSettings, PublisherStats};
use crate::state::checkpoint::{
    CheckpointError, CheckpointMessage, CheckpointStore, Checkpointer, STOCK_STATE_DIR,
};
use crate::state::spool::{Spool, SpoolError};
use crate::tail::source::{ChangedPaths, TailerLinks, TailerSettings};

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
/// Events that may wait between the tailer and the shipper (bytes are bounded by the budget).
pub const LOG_QUEUE_EVENTS: usize = 10_000;
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
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Clients or credentials could not be set up.
    #[error(transparent)]
    Setup(#[from] ClientSetupError),
    /// The state directory cannot be created.
    #[error("cannot create state directory {path}: {reason}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The metric spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The checkpoint directory cannot be opened.
    #[error(transparent)]
    Checkpoints(#[from] CheckpointError),
    /// The tailer thread could not be started.
    #[error("cannot start the tailer thread: {0}")]
    Thread(String),
}

/// Runs until `shutdown` completes (a signal in production, a future in tests), then stops in
/// order.
///
/// # Errors
/// A start-up check failed: state directory, region, CA bundle, proxy, credentials or spool.
pub async fn run(
    config: &Config,
    options: &RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let clients = Clients::build(config).await?;
    info!(region = %clients.region, logs = %clients.logs_endpoint, metrics = %clients.metrics_endpoint, "clients ready");
    if options.dry_run {
        // Loading credentials may itself be a request (instance metadata in the default chain),
        // and a dry run sends nothing, so credentials are not checked.
        info!("dry run: requests are printed on stdout, nothing is sent and nothing is written");
    } else {
        std::fs::create_dir_all(&options.state_dir).map_err(|err| RunError::StateDir {
            path: options.state_dir.clone(),
            reason: err.to_string(),
        })?;
        let access_key_id = clients.check_credentials().await?;
        info!(access_key_id = %access_key_id, state_dir = %options.state_dir.display(), "credentials loaded");
    }

    let (stop_producers, stop_signal) = watch::channel(false);
    let metrics = match &config.metrics {
        Some(metrics) => Some(start_metrics(
            config,
            metrics,
            &clients,
            options,
            &stop_signal,
        )?),
        None => None,
    };
    let logs = match &config.logs {
        Some(logs) if !logs.files.is_empty() => Some(start_logs(logs, &clients, options)?),
        _ => None,
    };
    info!("started");
    shutdown.await;

    info!(
        "stopping: producers first, then shippers drain (at most {}s)",
        DRAIN_DEADLINE.as_secs()
    );
    // Receivers only go away when their tasks ended, which is fine to ignore here.
    let _ = stop_producers.send(true);
    if let Some(logs) = logs {
        logs.stop().await;
    }
    if let Some(metrics) = metrics {
        for collector in metrics.collectors {
            let _ = collector.await;
        }
        match metrics.publisher.await {
            Ok(stats) => info!(
                batches = stats.batches_sent,
                datums = stats.datums_sent,
                retries = stats.retries,
                refused = stats.batches_refused,
                dropped_spool_full = stats.batches_dropped_spool_full,
                "metrics publisher stopped"
            ),
            Err(err) => warn!("metrics publisher ended abnormally: {err}"),
        }
    }
    info!("stopped");
    Ok(())
}

struct LogsPipeline {
    stop: Arc<std::sync::atomic::AtomicBool>,
    wake: crossbeam_channel::Sender<()>,
    tailer: std::thread::JoinHandle<()>,
    shipper: JoinHandle<LogShipperStats>,
    checkpointer: JoinHandle<()>,
    // Dropped at the end: its callbacks only wake the tailer.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl LogsPipeline {
    /// Stops in order: the tailer, then the shipper drains, then the final checkpoints.
    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.wake.try_send(());
        let tailer = self.tailer;
        let _ = tokio::task::spawn_blocking(move || tailer.join()).await;
        match self.shipper.await {
            Ok(stats) => info!(
                batches = stats.batches_sent,
                events = stats.events_sent,
                retries = stats.retries,
                rejected = stats.events_rejected,
                given_up = stats.events_given_up,
                out_of_window = stats.events_out_of_window,
                "logs shipper stopped"
            ),
            Err(err) => warn!("logs shipper ended abnormally: {err}"),
        }
        let _ = self.checkpointer.await;
    }
}

fn start_logs(
    logs: &LogsConfig,
    clients: &Clients,
    options: &RunOptions,
) -> Result<LogsPipeline, RunError> {
    let (sink, store) = if options.dry_run {
        (LogsSink::DryRun, None)
    } else {
        let store = CheckpointStore::open(&options.state_dir.join(LOG_STATE_DIR))?;
        let (imported, errors) = store.import_stock(std::path::Path::new(STOCK_STATE_DIR));
        if imported > 0 {
            info!(
                imported,
                "log offsets taken over from the stock agent's state"
            );
        }
        for error in errors {
            warn!("{error}");
        }
        (
            LogsSink::CloudWatch {
                client: clients.logs.clone(),
                endpoint: clients.logs_endpoint.clone(),
            },
            Some(store),
        )
    };
    let (checkpoints, rotated) = match &store {
        Some(store) => {
            let (found, errors) = store.load_all();
            for error in errors {
                warn!("{error}; that file is read from its start");
            }
            let (rotated, errors) = store.load_rotated();
            for error in errors {
                warn!("{error}; that rotated file's tail is not resumed");
            }
            (
                found.into_iter().map(|c| (c.path.clone(), c)).collect(),
                rotated,
            )
        }
        None => (std::collections::HashMap::new(), Vec::new()),
    };
    let budget = Arc::new(ByteBudget::new(DEFAULT_LOG_BUDGET_BYTES));
    let (events_tx, events_rx) = mpsc::channel(LOG_QUEUE_EVENTS);
    let (checkpoint_tx, mut checkpoint_rx) = mpsc::unbounded_channel::<CheckpointMessage>();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<shipper::Ack>();
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let changed = Arc::new(ChangedPaths::default());
    let (delivered_tx, delivered_rx) = crossbeam_channel::unbounded::<u64>();
    let tailer_wake = wake_tx.clone();
    let watcher = watch_directories(logs, wake_tx.clone(), changed.clone());
    let settings = TailerSettings {
        entries: logs.files.clone(),
        checkpoints,
        rotated,
        max_event_bytes: MAX_EVENT_MESSAGE_BYTES,
    };
    let links = TailerLinks {
        events: events_tx,
        checkpoints: checkpoint_tx,
        budget: budget.clone(),
        stop: stop.clone(),
        wake: wake_rx,
        changed,
        delivered: delivered_rx,
        file_events: watcher.is_some(),
    };
    let tailer = std::thread::Builder::new()
        .name("cwlite-tailer".into())
        .spawn(move || crate::tail::source::run(settings, links))
        .map_err(|err| RunError::Thread(err.to_string()))?;
    let shipper_settings = LogShipperSettings {
        flush_interval: Duration::from_secs(logs.force_flush_interval_secs),
        concurrency: logs.concurrency as usize,
        drain_deadline: DRAIN_DEADLINE,
    };
    let shipper = tokio::spawn(shipper::run(
        shipper_settings,
        sink,
        events_rx,
        ack_tx,
        budget,
    ));
    let checkpointer = tokio::spawn(async move {
        let mut checkpointer = Checkpointer::new(store);
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut registrations_open, mut acks_open) = (true, true);
        while registrations_open || acks_open {
            tokio::select! {
                // A file's registration is always queued before any acknowledgement of it exists;
                // taking registrations first means no acknowledgement meets an unknown file.
                biased;
                message = checkpoint_rx.recv(), if registrations_open => match message {
                    Some(message) => checkpointer.apply(message),
                    None => registrations_open = false,
                },
                ack = ack_rx.recv(), if acks_open => match ack {
                    Some(ack) => checkpointer.apply(CheckpointMessage::Ack { file: ack.file, start: ack.start, end: ack.end }),
                    None => acks_open = false,
                },
                _ = ticks.tick() => {
                    for error in checkpointer.flush() {
                        warn!("{error}; shipping goes on and the checkpoint is written again later");
                    }
                    let delivered = checkpointer.take_delivered();
                    if !delivered.is_empty() {
                        for file in delivered {
                            let _ = delivered_tx.send(file);
                        }
                        let _ = tailer_wake.try_send(());
                    }
                }
            }
        }
        for error in checkpointer.flush() {
            warn!("final checkpoint: {error}");
        }
    });
    Ok(LogsPipeline {
        stop,
        wake: wake_tx,
        tailer,
        shipper,
        checkpointer,
        _watcher: watcher,
    })
}

/// Watches each entry's directory so the tailer wakes on change instead of polling.
fn watch_directories(
    logs: &LogsConfig,
    wake: crossbeam_channel::Sender<()>,
    changed: Arc<ChangedPaths>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            match event {
                // Opening or reading a file or directory (our own reads and rescans do) is not
                // a change.
                Ok(event) if matches!(event.kind, notify::EventKind::Access(_)) => return,
                Ok(event) if event.need_rescan() => changed.record_all(),
                Ok(event) => {
                    use notify::EventKind;
                    use notify::event::ModifyKind;
                    let names = !matches!(
                        event.kind,
                        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_))
                    );
                    changed.record(&event.paths, names);
                }
                // Events were lost (queue overflow): look at everything.
                Err(_) => changed.record_all(),
            }
            let _ = wake.try_send(());
        }) {
            Ok(watcher) => watcher,
            Err(err) => {
                warn!("no file-system events ({err}); files are checked every second instead");
                return None;
            }
        };
    for file in &logs.files {
        let pattern = crate::tail::discovery::Pattern {
            file_path: file.file_path.clone(),
            publish_multi_logs: false,
            blacklist: None,
        };
        let (root, recursive) = pattern.watch_root();
        let mode = if recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        if let Err(err) = watcher.watch(&root, mode) {
            warn!(directory = %root.display(), "not watched ({err}); new files there are found by the periodic rescan");
        }
    }
    Some(watcher)
}

struct MetricsPipeline {
    collectors: Vec<JoinHandle<()>>,
    publisher: JoinHandle<PublisherStats>,
}

fn start_metrics(
    config: &Config,
    metrics: &MetricsConfig,
    clients: &Clients,
    options: &RunOptions,
    stop: &watch::Receiver<bool>,
) -> Result<MetricsPipeline, RunError> {
    let (sink, spool) = if options.dry_run {
        (
            MetricsSink::DryRun,
            Spool::in_memory(options.metric_spool_bytes),
        )
    } else {
        let sink = MetricsSink::CloudWatch {
            client: clients.metrics.clone(),
            endpoint: clients.metrics_endpoint.clone(),
        };
        (
            sink,
            Spool::open(
                &options.state_dir.join(METRIC_SPOOL_DIR),
                options.metric_spool_bytes,
            )?,
        )
    };
    let settings = PublisherSettings {
        namespace: metrics.namespace.clone(),
        flush_interval: Duration::from_secs(metrics.force_flush_interval_secs),
        drain_deadline: DRAIN_DEADLINE,
    };
    let (sender, receiver) = mpsc::channel(METRIC_QUEUE_CYCLES);
    let publisher = tokio::spawn(Publisher::new(settings, sink, spool).run(receiver));
    let host = Arc::new(Host::real());
    let collectors = metrics
        .plugins
        .iter()
        .map(|plugin| {
            let builder = DatumBuilder::new(plugin, &config.agent, &metrics.aggregation_dimensions);
            tokio::spawn(collect_loop(
                plugin.clone(),
                builder,
                host.clone(),
                sender.clone(),
                stop.clone(),
            ))
        })
        .collect();
    Ok(MetricsPipeline {
        collectors,
        publisher,
    })
}

/// Samples one plugin every interval until told to stop, sending each cycle's datums on.
async fn collect_loop(
    plugin: PluginConfig,
    mut builder: DatumBuilder,
    host: Arc<Host>,
    sender: mpsc::Sender<Vec<MetricDatum>>,
    mut stop: watch::Receiver<bool>,
) {
    let name = plugin.kind.name();
    let mut state = Some((Collector::for_plugin(&plugin), Vec::new()));
    let mut ticks = tokio::time::interval(Duration::from_secs(plugin.interval_secs));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut dropped_cycles = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => break,
        }
        let timestamp_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Reads run off the runtime: a hung network filesystem can block `statfs` for ever, and
        // must not stall a runtime thread or hold up shutdown.
        let Some((mut collector, mut samples)) = state.take() else {
            break;
        };
        let reader = host.clone();
        let job = tokio::task::spawn_blocking(move || {
            samples.clear();
            let result = collector.collect(&reader, &mut samples);
            (collector, samples, result)
        });
        let (collector, samples, result) = tokio::select! {
            joined = job => match joined {
                Ok(done) => done,
                Err(err) => {
                    warn!(plugin = name, "collector stopped: {err}");
                    break;
                }
            },
            _ = stop.changed() => {
                info!(plugin = name, "stopping without waiting for a collection still in progress");
                break;
            }
        };
        match result {
            Ok(()) if failing => {
                info!(plugin = name, "collection works again");
                failing = false;
            }
            Ok(()) => {}
            Err(err) if !failing => {
                warn!(plugin = name, "{err}; retrying every interval");
                failing = true;
            }
            Err(_) => {}
        }
        let mut datums = Vec::with_capacity(samples.len());
        let invalid_before = builder.stats.dropped_invalid_values;
        builder.build(&samples, timestamp_ms, &mut datums);
        state = Some((collector, samples));
        if builder.stats.dropped_invalid_values > invalid_before {
            warn!(
                plugin = name,
                total = builder.stats.dropped_invalid_values,
                "values CloudWatch refuses (NaN, infinite) were dropped, not sent"
            );
        }
        if datums.is_empty() {
            continue;
        }
        match sender.try_send(datums) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped_cycles += 1;
                warn!(
                    plugin = name,
                    dropped_cycles, "metric queue full: this cycle's datums are dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is called (inside the
/// runtime), not when the future is first polled, so a signal that arrives during start-up is
/// not lost to the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = int.recv() => info!("SIGINT received"),
                }
            }
            // Without signal handlers the process can still be killed; waiting forever is the
            // only behaviour that does not stop a daemon for no reason.
            _ => std::future::pending::<()>().await,
        }
    }
}
