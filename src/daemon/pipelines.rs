//! The running pipelines of one configuration: start them, tell whether a part of them died,
//! and stop them in order.
//!
//! Owns the wiring of each pipeline: channels, the byte budget, the tailer thread, the shipper,
//! checkpointer, publisher and collector tasks, and the directory watches. Stopping goes
//! producers first (collectors, tailer), then the shippers drain until their queues are empty or
//! the deadline passes, then the last checkpoints are written. It does not decide when to start,
//! stop, reload or restart: the control loop in `daemon` does.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::{
    CHECKPOINT_INTERVAL, DRAIN_DEADLINE, JOURNAL_STATE_DIR, LOG_QUEUE_CHUNKS, LOG_STATE_DIR,
    METRIC_QUEUE_CYCLES, METRIC_SPOOL_DIR, RunError, RunOptions,
};
use crate::aws::Clients;
use crate::collect::{Collector, Host};
use crate::config::{Config, LogsConfig, MetricsConfig, PluginConfig};
use crate::event::SourceKind;
use crate::metrics::{DatumBuilder, MetricDatum};
use crate::queue::ByteBudget;
use crate::ship::cloudwatch_logs::batch::MAX_EVENT_MESSAGE_BYTES;
use crate::ship::cloudwatch_logs::shipper::{self, LogShipperSettings, LogShipperStats};
use crate::ship::cloudwatch_logs::sink::LogsSink;
use crate::ship::cloudwatch_metrics::{MetricsSink, Publisher, PublisherSettings, PublisherStats};
use crate::state::checkpoint::{
    CheckpointError, CheckpointMessage, CheckpointStore, Checkpointer, STOCK_STATE_DIR,
};
use crate::state::cursor::{CursorStore, JournalCheckpoints, JournalRead};
use crate::state::spool::Spool;
use crate::tail::source::{ChangedPaths, TailerLinks, TailerSettings};
use crate::telemetry::{QueueReport, Telemetry};

/// How often, at most, the checkpointer hands delivery positions to the status report (which
/// is written every 5 s): building them sorts every file tracked, and at every 500 ms flush
/// that was a tenth of a 10,000-file glob's CPU.
const POSITIONS_INTERVAL: Duration = Duration::from_secs(5);

/// How long shutdown waits for the sources that are tasks (journal readers, EMF listeners),
/// all together: an EMF connection may wait 5 s for room for a line it read.
const SOURCE_STOP_WAIT: Duration = Duration::from_secs(7);

/// How long shutdown waits for the tailer thread: a pass over files takes milliseconds, and
/// the walk and the reads check the stop flag as they go.
const TAILER_STOP_WAIT: Duration = Duration::from_secs(5);

/// Everything running for one configuration.
pub struct Pipelines {
    metrics: Option<MetricsPipeline>,
    logs: Option<LogsPipeline>,
}

impl Pipelines {
    /// Starts the pipelines `config` asks for: shippers before producers.
    ///
    /// # Errors
    /// A spool, checkpoint directory or thread could not be set up; whatever started is stopped.
    pub fn start(
        config: &Config,
        clients: &Clients,
        options: &RunOptions,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Self, RunError> {
        let metrics = match &config.metrics {
            Some(metrics) => Some(start_metrics(config, metrics, clients, options, telemetry)?),
            None => None,
        };
        let logs = match &config.logs {
            Some(logs) if logs.has_sources() => {
                match start_logs(logs, clients, options, telemetry) {
                    Ok(logs) => Some(logs),
                    Err(err) => {
                        if let Some(metrics) = metrics {
                            // Not left running half-started: the caller decides what runs.
                            let stopping = metrics.stop();
                            drop(tokio::spawn(stopping));
                        }
                        return Err(err);
                    }
                }
            }
            _ => None,
        };
        Ok(Self { metrics, logs })
    }

    /// Nothing running (for the last status report after a stop).
    pub fn none() -> Self {
        Self {
            metrics: None,
            logs: None,
        }
    }

    /// Whether a logs pipeline runs.
    pub fn has_logs(&self) -> bool {
        self.logs.is_some()
    }

    /// The parts that ended although nothing asked them to (a panic, or an error they could not
    /// get past), by name.
    pub fn ended_parts(&self) -> Vec<&'static str> {
        let mut ended = Vec::new();
        if let Some(metrics) = &self.metrics {
            if metrics.publisher.is_finished() {
                ended.push("metrics publisher");
            }
            if metrics.collectors.iter().any(JoinHandle::is_finished) {
                ended.push("metric collector");
            }
            if metrics
                .statsd
                .as_ref()
                .is_some_and(crate::statsd::Listener::has_ended)
            {
                ended.push("statsd listener");
            }
            if metrics
                .collectd
                .as_ref()
                .is_some_and(crate::collectd::Listener::has_ended)
            {
                ended.push("collectd listener");
            }
        }
        if let Some(logs) = &self.logs {
            if logs.tailer.is_finished() {
                ended.push("log tailer");
            }
            if logs.shipper.is_finished() {
                ended.push("logs shipper");
            }
            if logs.checkpointer.is_finished() {
                ended.push("checkpointer");
            }
            if logs.sources.iter().any(JoinHandle::is_finished) {
                ended.push("journal reader or emf listener");
            }
        }
        ended
    }

    /// Stops and starts again each pipeline that has a part that ended.
    ///
    /// # Errors
    /// A pipeline could not be started again.
    pub async fn restart_ended(
        &mut self,
        config: &Config,
        clients: &Clients,
        options: &RunOptions,
        telemetry: &Arc<Telemetry>,
    ) -> Result<(), RunError> {
        if let Some(metrics_config) = &config.metrics
            && self
                .metrics
                .as_ref()
                .is_some_and(MetricsPipeline::has_ended_part)
        {
            if let Some(metrics) = self.metrics.take() {
                metrics.stop().await;
            }
            self.metrics = Some(start_metrics(
                config,
                metrics_config,
                clients,
                options,
                telemetry,
            )?);
        }
        if let Some(logs_config) = &config.logs
            && self.logs.as_ref().is_some_and(LogsPipeline::has_ended_part)
        {
            if let Some(logs) = self.logs.take() {
                logs.stop().await;
            }
            self.logs = Some(start_logs(logs_config, clients, options, telemetry)?);
        }
        Ok(())
    }

    /// Hands cwlite's own datums to the metric publisher; false when there is none (no
    /// `metrics` section, or `--self-metrics` not given). A full queue drops them: the next
    /// period sends fresh ones.
    pub fn publish_own(&self, datums: Vec<MetricDatum>) -> bool {
        let Some(own) = self.metrics.as_ref().and_then(|m| m.own.as_ref()) else {
            return false;
        };
        let _ = own.try_send(datums);
        true
    }

    /// Log data between reading and acknowledgement.
    pub fn queue(&self, telemetry: &Telemetry) -> QueueReport {
        self.logs
            .as_ref()
            .map_or(QueueReport::default(), |logs| QueueReport {
                bytes: logs.budget.used() as u64,
                budget_bytes: logs.budget.max() as u64,
                events: telemetry.queued_events.load(Ordering::Relaxed),
            })
    }

    /// Stops in order: producers, then shippers drain, then the final checkpoints.
    pub async fn stop(self) {
        info!(
            "stopping: producers first, then shippers drain (at most {}s)",
            DRAIN_DEADLINE.as_secs()
        );
        // Both pipelines drain at the same time: the deadline is for the whole stop.
        let metrics = self.metrics.map(MetricsPipeline::stop);
        let logs = self.logs.map(LogsPipeline::stop);
        match (metrics, logs) {
            (Some(metrics), Some(logs)) => {
                tokio::join!(metrics, logs);
            }
            (Some(metrics), None) => metrics.await,
            (None, Some(logs)) => logs.await,
            (None, None) => {}
        }
    }
}

struct LogsPipeline {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The stop of the sources that are tasks (journal readers, EMF listeners).
    stop_sources: watch::Sender<bool>,
    sources: Vec<JoinHandle<()>>,
    budget: Arc<ByteBudget>,
    wake: crossbeam_channel::Sender<()>,
    tailer: std::thread::JoinHandle<()>,
    shipper: JoinHandle<LogShipperStats>,
    checkpointer: JoinHandle<()>,
    // Dropped at the end: its callbacks only wake the tailer.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl LogsPipeline {
    fn has_ended_part(&self) -> bool {
        self.tailer.is_finished()
            || self.shipper.is_finished()
            || self.checkpointer.is_finished()
            || self.sources.iter().any(JoinHandle::is_finished)
    }

    /// Stops in order: the sources, then the shipper drains, then the final checkpoints.
    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.wake.try_send(());
        let _ = self.stop_sources.send(true);
        // Each hands on what it read (an EMF connection waits a few seconds at most for room);
        // their senders to the shipper close as they end. One that does not end in time is
        // aborted: what it read and did not hand on is read again (the journal) or lost with
        // its connection (EMF), never waited on for ever.
        // One deadline for all: they stop at the same time, so the stop as a whole stays
        // within the unit's TimeoutStopSec= however many there are.
        let deadline = tokio::time::Instant::now() + SOURCE_STOP_WAIT;
        for mut source in self.sources {
            if tokio::time::timeout_at(deadline, &mut source)
                .await
                .is_err()
            {
                warn!(
                    "a journal reader or emf listener did not stop within {} s; it is aborted",
                    SOURCE_STOP_WAIT.as_secs()
                );
                source.abort();
            }
        }
        let tailer = self.tailer;
        let joined = tokio::time::timeout(
            TAILER_STOP_WAIT,
            tokio::task::spawn_blocking(move || tailer.join()),
        )
        .await;
        if joined.is_err() {
            // Its sender to the shipper stays open, so the shipper and the checkpointer would
            // wait for ever: they stop too. Acknowledged lines whose checkpoint was not written
            // yet are sent again at the next start; nothing is lost.
            warn!(
                "the tailer did not stop within {} s (a read or a directory walk blocked in the file system?); stopping without the final drain and checkpoints",
                TAILER_STOP_WAIT.as_secs()
            );
            self.shipper.abort();
            self.checkpointer.abort();
            return;
        }
        match self.shipper.await {
            Ok(stats) => info!(
                batches = stats.batches_sent,
                events = stats.events_sent,
                retries = stats.retries,
                rejected = stats.events_too_old + stats.events_too_new + stats.events_expired,
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
    telemetry: &Arc<Telemetry>,
) -> Result<LogsPipeline, RunError> {
    let (sink, store) = if options.dry_run {
        (LogsSink::DryRun, None)
    } else {
        let store = CheckpointStore::open(&options.state_dir.join(LOG_STATE_DIR))?;
        let (imported, errors) = store.import_stock(Path::new(STOCK_STATE_DIR));
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
    let cursors = match &store {
        Some(_) => Some(CursorStore::open(
            &options.state_dir.join(JOURNAL_STATE_DIR),
        )?),
        None => None,
    };
    // Bound before anything starts: a port in use stops this start with its address.
    let emf_sockets = match &logs.emf {
        Some(emf) => Some(crate::emf::bind(emf)?),
        None => None,
    };
    let (events_tx, events_rx) = mpsc::channel(LOG_QUEUE_CHUNKS);
    let (checkpoint_tx, mut checkpoint_rx) = mpsc::unbounded_channel::<CheckpointMessage>();
    let (reads_tx, mut reads_rx) = mpsc::unbounded_channel::<JournalRead>();
    let (stop_sources, stop_rx) = watch::channel(false);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<shipper::Ack>();
    let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
    // Bytes coming back to a destination whose files paused wake the tailer.
    let budget = Arc::new(ByteBudget::with_wake(
        options.log_buffer_bytes,
        Some(wake_tx.clone()),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let changed = Arc::new(ChangedPaths::default());
    let (delivered_tx, delivered_rx) = crossbeam_channel::unbounded::<u64>();
    let tailer_wake = wake_tx.clone();
    let watcher = watch_directories(logs, wake_tx.clone(), changed.clone());
    let mut entries = logs.files.clone();
    // Said once here, as the user cwlite runs as, rather than by every file it cannot see or
    // delete.
    let findings = super::sandbox::check_now(&entries);
    for finding in &findings {
        error!("{finding}");
        if let super::sandbox::Problem::CannotDelete { .. } = finding.problem {
            entries[finding.entry].auto_removal = false;
        }
    }
    telemetry.set_sandbox(findings.iter().map(ToString::to_string).collect());
    let settings = TailerSettings {
        entries,
        checkpoints,
        rotated,
        max_event_bytes: MAX_EVENT_MESSAGE_BYTES,
    };
    let links = TailerLinks {
        events: events_tx.clone(),
        checkpoints: checkpoint_tx,
        budget: budget.clone(),
        stop: stop.clone(),
        wake: wake_rx,
        changed,
        delivered: delivered_rx,
        telemetry: telemetry.clone(),
        file_events: watcher.is_some(),
    };
    let tailer = std::thread::Builder::new()
        .name("cwlite-tailer".into())
        .spawn(move || crate::tail::source::run(settings, links))
        .map_err(|err| RunError::Thread(err.to_string()))?;
    let mut sources = Vec::new();
    for (index, entry) in logs.journald.iter().enumerate() {
        let resume = match &cursors {
            Some(cursors) => match cursors.load(index, entry.directory.as_deref()) {
                Ok(cursor) => cursor,
                Err(err) => {
                    warn!("{err}; journald entry {index} reads from where its start_at says");
                    None
                }
            },
            None => None,
        };
        let links = crate::journal::JournalLinks {
            events: events_tx.clone(),
            reads: reads_tx.clone(),
            budget: budget.clone(),
            stop: stop_rx.clone(),
            telemetry: telemetry.clone(),
            max_event_bytes: MAX_EVENT_MESSAGE_BYTES,
        };
        sources.push(tokio::spawn(crate::journal::run(
            index,
            entry.clone(),
            resume,
            links,
        )));
    }
    drop(reads_tx);
    if let (Some(emf), Some(sockets)) = (&logs.emf, emf_sockets) {
        let links = crate::emf::EmfLinks {
            events: events_tx.clone(),
            budget: budget.clone(),
            stop: stop_rx.clone(),
            telemetry: telemetry.clone(),
            max_line_bytes: MAX_EVENT_MESSAGE_BYTES,
        };
        match crate::emf::spawn(sockets, emf, links) {
            Ok(tasks) => sources.extend(tasks),
            Err(err) => {
                // Nothing of this start may be left running: the caller decides what runs.
                let _ = stop_sources.send(true);
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = wake_tx.try_send(());
                return Err(RunError::Thread(format!("emf listener: {err}")));
            }
        }
    }
    // The shipper drains once every source's sender is gone.
    drop(events_tx);
    let journal_directories = logs.journald.iter().map(|j| j.directory.clone()).collect();
    let shipper_settings = LogShipperSettings {
        flush_interval: Duration::from_secs(logs.force_flush_interval_secs),
        concurrency: logs.concurrency as usize,
        requests_in_flight: logs.requests_in_flight as usize,
        drain_deadline: DRAIN_DEADLINE,
    };
    let shipper = tokio::spawn(shipper::run(
        shipper_settings,
        sink,
        events_rx,
        ack_tx,
        budget.clone(),
        telemetry.clone(),
    ));
    let positions = telemetry.clone();
    let checkpointer = tokio::spawn(async move {
        let mut checkpointer = Checkpointer::new(store);
        let mut journal = JournalCheckpoints::new(cursors, journal_directories);
        let mut journal_failures = CheckpointFailures::default();
        let mut failures = CheckpointFailures::default();
        let mut positions_stale = false;
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A timer of its own: sharing the flush timer kept it ticking while nothing changed,
        // so the first acknowledgement after a quiet spell waited for the next tick instead of
        // being written at once (after a restart, a kill in that wait sent it all again).
        let mut positions_ticks = tokio::time::interval(POSITIONS_INTERVAL);
        positions_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut registrations_open, mut reads_open, mut acks_open) = (true, true, true);
        while registrations_open || reads_open || acks_open {
            tokio::select! {
                // A file's registration is always queued before any acknowledgement of it exists;
                // taking registrations first means no acknowledgement meets an unknown file.
                biased;
                message = checkpoint_rx.recv(), if registrations_open => match message {
                    Some(message) => checkpointer.apply(message),
                    None => registrations_open = false,
                },
                read = reads_rx.recv(), if reads_open => match read {
                    Some(read) => journal.apply(read),
                    None => reads_open = false,
                },
                ack = ack_rx.recv(), if acks_open => match ack {
                    Some(ack) => match SourceKind::of(ack.file) {
                        SourceKind::File => checkpointer.apply(CheckpointMessage::Ack { file: ack.file, start: ack.start, end: ack.end }),
                        SourceKind::Journal(entry) => journal.ack(entry, ack.start, ack.end),
                        SourceKind::Listener => {}
                    },
                    None => acks_open = false,
                },
                // Only while there is something to write: an idle agent does not wake for this.
                _ = ticks.tick(), if checkpointer.has_changes() || journal.has_changes() => {
                    if journal.has_changes() {
                        journal_failures.after_flush(&journal.flush()).log("journal cursor");
                    }
                    if !checkpointer.has_changes() {
                        continue;
                    }
                    failures.after_flush(&checkpointer.flush()).log("checkpoint");
                    positions_stale = true;
                    let delivered = checkpointer.take_delivered();
                    if !delivered.is_empty() {
                        for file in delivered {
                            let _ = delivered_tx.send(file);
                        }
                        let _ = tailer_wake.try_send(());
                    }
                }
                // Positions at most every POSITIONS_INTERVAL while checkpoints move, and once
                // after they stop, so status is never left stale.
                _ = positions_ticks.tick(), if positions_stale => {
                    positions_stale = false;
                    positions.set_files(checkpointer.positions());
                }
            }
        }
        for error in checkpointer.flush().into_iter().chain(journal.flush()) {
            warn!("final checkpoint: {error}");
        }
        positions.set_files(checkpointer.positions());
    });
    Ok(LogsPipeline {
        stop,
        stop_sources,
        sources,
        budget,
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
    let mut bursts = crate::tail::source::WriteBursts::default();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let mut pause = None;
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
                    if matches!(event.kind, EventKind::Modify(ModifyKind::Data(_))) {
                        pause = bursts.written(std::time::Instant::now());
                    }
                }
                // Events were lost (queue overflow): look at everything.
                Err(_) => changed.record_all(),
            }
            let _ = wake.try_send(());
            // This runs on notify's event thread: pausing it lets the kernel merge the writes
            // that come meanwhile (see `WriteBursts`).
            if let Some(pause) = pause {
                std::thread::sleep(pause);
                bursts.resumed(std::time::Instant::now());
            }
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
            // Files there would raise no events, and only evented files are polled between
            // rescans: without a full set of watches, every file is checked every second.
            warn!(directory = %crate::telemetry::shown(&root), "not watched ({err}); files are checked every second instead");
            return None;
        }
    }
    Some(watcher)
}

struct MetricsPipeline {
    stop: watch::Sender<bool>,
    /// Where cwlite's own datums go (`--self-metrics`); dropped first at stop, so the publisher
    /// sees its queue close once the collectors are done.
    own: Option<mpsc::Sender<Vec<MetricDatum>>>,
    collectors: Vec<JoinHandle<()>>,
    /// The statsd listener, a producer like the collectors.
    statsd: Option<crate::statsd::Listener>,
    /// The collectd listener, likewise.
    collectd: Option<crate::collectd::Listener>,
    publisher: JoinHandle<PublisherStats>,
}

impl MetricsPipeline {
    fn has_ended_part(&self) -> bool {
        self.publisher.is_finished()
            || self.collectors.iter().any(JoinHandle::is_finished)
            || self
                .statsd
                .as_ref()
                .is_some_and(crate::statsd::Listener::has_ended)
    }

    /// Stops the collectors and listeners (the listeners send what they aggregated), then
    /// lets the publisher drain.
    async fn stop(self) {
        drop(self.own);
        // Receivers only go away when their tasks ended, which is fine to ignore here.
        let _ = self.stop.send(true);
        if let Some(listener) = self.statsd {
            let _ = tokio::task::spawn_blocking(move || listener.stop()).await;
        }
        if let Some(listener) = self.collectd {
            let _ = tokio::task::spawn_blocking(move || listener.stop()).await;
        }
        for collector in self.collectors {
            let _ = collector.await;
        }
        match self.publisher.await {
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
}

fn start_metrics(
    config: &Config,
    metrics: &MetricsConfig,
    clients: &Clients,
    options: &RunOptions,
    telemetry: &Arc<Telemetry>,
) -> Result<MetricsPipeline, RunError> {
    let (stop_tx, stop) = watch::channel(false);
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
    // Before anything is spawned: a port in use stops the start with nothing left running.
    let statsd = match &metrics.statsd {
        Some(statsd) => Some(crate::statsd::Listener::start(
            statsd,
            &config.agent,
            &metrics.aggregation_dimensions,
            sender.clone(),
            telemetry.clone(),
        )?),
        None => None,
    };
    let collectd = match &metrics.collectd {
        Some(collectd) => Some(crate::collectd::Listener::start(
            collectd,
            &config.agent,
            &metrics.aggregation_dimensions,
            sender.clone(),
            telemetry.clone(),
        )?),
        None => None,
    };
    let publisher = tokio::spawn(
        Publisher::new(settings, sink, spool)
            .with_telemetry(telemetry.clone())
            .run(receiver),
    );
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
                telemetry.clone(),
            ))
        })
        .collect();
    Ok(MetricsPipeline {
        stop: stop_tx,
        own: options.self_metrics.then(|| sender.clone()),
        collectors,
        statsd,
        collectd,
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
    telemetry: Arc<Telemetry>,
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
            Telemetry::bump(
                &telemetry.collectors.values_invalid,
                builder.stats.dropped_invalid_values - invalid_before,
            );
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
                Telemetry::bump(&telemetry.collectors.cycles_dropped, 1);
                warn!(
                    plugin = name,
                    dropped_cycles, "metric queue full: this cycle's datums are dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
}

/// Checkpoint write failures as the log shows them: the checkpointer tries again every tick
/// (500 ms), so a failure is logged when it starts or changes, not at every tick while it
/// lasts, and its end once.
#[derive(Debug, Default)]
struct CheckpointFailures {
    /// The failures of the last flush, as logged.
    last: Option<Vec<String>>,
}

/// What a flush means for the log.
#[derive(Debug, PartialEq, Eq)]
enum FlushReport {
    /// Nothing new.
    Quiet,
    /// New or changed failures, to log.
    Failing(Vec<String>),
    /// Writes succeed again after failures.
    Recovered,
}

impl FlushReport {
    /// Logs what is new: each failure as it starts or changes, and the recovery. `what` names
    /// what is written (`checkpoint`, `journal cursor`).
    fn log(self, what: &str) {
        match self {
            FlushReport::Quiet => {}
            FlushReport::Failing(errors) => {
                for error in errors {
                    warn!("{error}; shipping goes on and the {what} is written again later");
                }
            }
            FlushReport::Recovered => info!("{what}s are written again"),
        }
    }
}

impl CheckpointFailures {
    fn after_flush(&mut self, errors: &[CheckpointError]) -> FlushReport {
        if errors.is_empty() {
            return match self.last.take() {
                Some(_) => FlushReport::Recovered,
                None => FlushReport::Quiet,
            };
        }
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        if self.last.as_ref() == Some(&texts) {
            return FlushReport::Quiet;
        }
        self.last = Some(texts.clone());
        FlushReport::Failing(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_checkpoint_failure_is_logged_once_and_its_end_once() {
        let error = |path: &str| CheckpointError::Io {
            path: path.into(),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        };
        let mut failures = CheckpointFailures::default();
        assert_eq!(failures.after_flush(&[]), FlushReport::Quiet);
        let FlushReport::Failing(first) = failures.after_flush(&[error("/s/logs-state/a")]) else {
            panic!("a new failure is logged");
        };
        assert!(first[0].starts_with("/s/logs-state/a: "), "{first:?}");
        for _ in 0..10 {
            assert_eq!(
                failures.after_flush(&[error("/s/logs-state/a")]),
                FlushReport::Quiet
            );
        }
        assert!(matches!(
            failures.after_flush(&[error("/s/logs-state/b")]),
            FlushReport::Failing(_)
        ));
        assert_eq!(failures.after_flush(&[]), FlushReport::Recovered);
        assert_eq!(failures.after_flush(&[]), FlushReport::Quiet);
    }
    use crate::config::expand::{Environment, HostFacts};

    async fn dry_run_metrics(dir: &Path) -> (Config, Clients, RunOptions) {
        let file = dir.join("config.json");
        std::fs::write(
            &file,
            r#"{"agent": {"region": "us-east-1", "metrics_collection_interval": 60},
                "metrics": {"metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}}}"#,
        )
        .unwrap();
        let host = HostFacts {
            hostname: "h".into(),
            ip_address: None,
            date: "2026-11-27".into(),
        };
        let loaded = crate::config::load(
            &[file],
            None,
            &Environment::fixed(&[], host),
            crate::config::RegionPolicy::Required,
        )
        .unwrap();
        let clients = Clients::build(&loaded.config).await.unwrap();
        let options = RunOptions {
            dry_run: true,
            state_dir: dir.join("state"),
            metric_spool_bytes: 1 << 20,
            log_buffer_bytes: 1 << 20,
            self_metrics: false,
            log_level: None,
        };
        (loaded.config, clients, options)
    }

    #[tokio::test]
    async fn a_part_that_ended_is_reported_and_its_pipeline_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let (config, clients, options) = dry_run_metrics(dir.path()).await;
        let telemetry = Arc::new(Telemetry::default());
        let mut pipelines = Pipelines::start(&config, &clients, &options, &telemetry).unwrap();
        assert!(pipelines.ended_parts().is_empty());
        // The publisher dies as a panicking task would.
        let metrics = pipelines.metrics.as_mut().unwrap();
        let panicked = tokio::spawn(async { panic!("injected") });
        std::mem::replace(&mut metrics.publisher, panicked).abort();
        while !metrics.publisher.is_finished() {
            tokio::task::yield_now().await;
        }
        assert_eq!(pipelines.ended_parts(), ["metrics publisher"]);
        pipelines
            .restart_ended(&config, &clients, &options, &telemetry)
            .await
            .unwrap();
        assert!(
            pipelines.ended_parts().is_empty(),
            "a new publisher and new collectors run"
        );
        pipelines.stop().await;
    }
}
