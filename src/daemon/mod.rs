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
use crate::config::{Config, MetricsConfig, PluginConfig};
use crate::metrics::{DatumBuilder, MetricDatum};
use crate::ship::cloudwatch_metrics::{MetricsSink, Publisher, PublisherSettings, PublisherStats};
use crate::state::spool::{Spool, SpoolError};

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
    info!("started");
    shutdown.await;

    info!(
        "stopping: producers first, then shippers drain (at most {}s)",
        DRAIN_DEADLINE.as_secs()
    );
    // Receivers only go away when their tasks ended, which is fine to ignore here.
    let _ = stop_producers.send(true);
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

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
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
