//! The tailer: one thread that discovers files, reads them and hands events on.
//!
//! Owns the set of open files of every `collect_list` entry. It discovers files at start, when a
//! watched directory changes (`notify`) and on a slow periodic rescan, instead of walking every
//! glob every second. Each pass reads at most a fixed budget per file so a busy file cannot
//! starve a quiet one. Before handing an event on it takes the event's bytes from the shared
//! [`ByteBudget`]; when the shipper cannot keep up (or CloudWatch is unreachable) the budget runs
//! out and reading pauses: nothing is dropped and memory stays bounded. Files are registered with
//! the checkpointer before their first event, and ranges that make no event are acknowledged at
//! once. It knows nothing of AWS; destinations are plain names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::discovery::Pattern;
use super::events::{EventPipeline, Output};
use super::line_reader::{Framing, Line};
use super::multiline::MULTI_LINE_IDLE;
use super::watcher::{Change, TailedFile};
use crate::config::{FileConfig, LogGroupName};
use crate::event::{Destination, EventSource, LogEvent, TailMessage};
use crate::queue::ByteBudget;
use crate::state::checkpoint::{CheckpointMessage, FileCheckpoint};

/// How often every glob is evaluated again even without a file-system event.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// Bytes read from one file per pass.
pub const READ_BUDGET_PER_PASS: usize = 1024 * 1024;

/// Everything the tailer needs.
pub struct TailerSettings {
    /// The `collect_list` entries.
    pub entries: Vec<FileConfig>,
    /// Checkpoints by path.
    pub checkpoints: HashMap<PathBuf, FileCheckpoint>,
    /// Largest event message in bytes (the destination's limit).
    pub max_event_bytes: usize,
}

struct Open {
    /// The identity last told to the checkpointer.
    told_identity: crate::state::checkpoint::FileIdentity,
    /// When this file last gave a line; a final line without newline is handed on after
    /// [`MULTI_LINE_IDLE`] of quiet, as the stock agent does.
    last_line_at: Instant,
    key: u64,
    file: TailedFile,
    pipeline: EventPipeline,
    destination: Arc<Destination>,
}

/// Channels and signals the tailer talks through.
pub struct TailerLinks {
    /// Events to the shipper.
    pub events: tokio::sync::mpsc::Sender<TailMessage>,
    /// Registrations and skipped ranges to the checkpointer.
    pub checkpoints: tokio::sync::mpsc::UnboundedSender<CheckpointMessage>,
    /// Bytes in memory between reading and acknowledgement.
    pub budget: Arc<ByteBudget>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Wakes the tailer (file-system events, stop).
    pub wake: crossbeam_channel::Receiver<()>,
    /// Whether file-system events arrive on `wake` (otherwise the tailer polls every second).
    pub file_events: bool,
}

/// The destination of a file of an entry.
fn destination(config: &FileConfig, path: &std::path::Path) -> Destination {
    let sanitized: String = path
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_/#".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (group, stream) = match &config.log_group_name {
        LogGroupName::Named(group) if config.publish_multi_logs => (
            group.clone(),
            format!("{}_{}", config.log_stream_name, sanitized.replace('/', "_")),
        ),
        LogGroupName::Named(group) => (group.clone(), config.log_stream_name.clone()),
        LogGroupName::FromEachFilePath => (sanitized, config.log_stream_name.clone()),
    };
    Destination {
        group,
        stream,
        class: config.log_group_class,
        retention_days: config.retention_in_days,
    }
}

/// Runs until `links.stop` is set. Pending multi-line events and partial lines are not sent at
/// shutdown: they are not acknowledged either, so the next start reads them again, complete.
pub fn run(mut settings: TailerSettings, links: TailerLinks) {
    let patterns: Vec<Pattern> = settings
        .entries
        .iter()
        .map(|e| Pattern {
            file_path: e.file_path.clone(),
            publish_multi_logs: e.publish_multi_logs,
            blacklist: e.blacklist.clone(),
        })
        .collect();
    let mut open: Vec<Open> = Vec::new();
    let mut next_key = 1u64;
    let mut last_scan: Option<Instant> = None;
    let mut lines: Vec<Line> = Vec::new();
    let mut outputs: Vec<Output> = Vec::new();
    let mut woken = true;
    let mut rescan_now = false;
    while !links.stop.load(Ordering::Relaxed) {
        if woken || rescan_now || last_scan.is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL) {
            last_scan = Some(Instant::now());
            rescan_now = false;
            for (entry, pattern) in patterns.iter().enumerate() {
                for found in pattern.discover() {
                    if open
                        .iter()
                        .any(|o| !o.file.is_detached() && o.file.path() == found.path)
                    {
                        continue;
                    }
                    // A rotated file renamed to a name the glob also matches is the same file:
                    // reading it again from 0 would send it twice.
                    if let Ok(meta) = std::fs::metadata(&found.path) {
                        use std::os::unix::fs::MetadataExt;
                        if open.iter().any(|o| {
                            o.file.identity().device == meta.dev()
                                && o.file.identity().inode == meta.ino()
                        }) {
                            continue;
                        }
                    }
                    // A checkpoint loaded at start applies to the first opening only.
                    let checkpoint = settings.checkpoints.remove(&found.path);
                    let checkpoint = checkpoint.as_ref();
                    let config = &settings.entries[entry];
                    let pipeline = match EventPipeline::new(config, settings.max_event_bytes) {
                        Ok(pipeline) => pipeline,
                        Err(err) => {
                            warn!(file = %found.path.display(), "{err}");
                            continue;
                        }
                    };
                    let framing = Framing::for_encoding(config.encoding);
                    match TailedFile::open_framed(
                        &found.path,
                        checkpoint.map_or(0, |c| c.offset),
                        checkpoint.and_then(|c| c.identity),
                        super::line_reader::DEFAULT_CHUNK_BYTES,
                        framing.max_raw_line(settings.max_event_bytes),
                        framing,
                    ) {
                        Ok(file) => {
                            let key = next_key;
                            next_key += 1;
                            info!(file = %found.path.display(), offset = file.offset(), "tailing");
                            let _ = links.checkpoints.send(CheckpointMessage::Register {
                                file: key,
                                path: found.path.clone(),
                                identity: file.identity(),
                                offset: file.offset(),
                            });
                            let destination = Arc::new(destination(config, &found.path));
                            open.push(Open {
                                told_identity: file.identity(),
                                last_line_at: Instant::now(),
                                key,
                                file,
                                pipeline,
                                destination,
                            });
                        }
                        Err(err) => warn!(file = %found.path.display(), "cannot open: {err}"),
                    }
                }
            }
        }
        let mut progressed = false;
        let mut finished = Vec::new();
        for (i, tailed) in open.iter_mut().enumerate() {
            lines.clear();
            // Lines framed before an error are kept and handed on; the read is tried again next pass.
            let change = match tailed.file.poll(READ_BUDGET_PER_PASS, &mut lines) {
                Ok(change) => change,
                Err(err) => {
                    warn!(file = %tailed.file.path().display(), "read failed, retrying: {err}");
                    Change::None
                }
            };
            progressed |= !lines.is_empty();
            let now = Instant::now();
            let now_ms = epoch_ms();
            if !lines.is_empty() {
                tailed.last_line_at = now;
            } else if change == Change::None
                && tailed.file.pending_bytes() > 0
                && now.duration_since(tailed.last_line_at) >= MULTI_LINE_IDLE
            {
                // A writer that never ends its last line: hand it on rather than hold it for ever.
                lines.extend(tailed.file.take_partial());
                tailed.last_line_at = now;
            }
            for line in lines.drain(..) {
                tailed.pipeline.push(line, now, now_ms, &mut outputs);
            }
            // A renamed-away or deleted file is read until its writer has been quiet for a while
            // (it may append until it reopens its log); then its last line and event go out.
            let writer_done = tailed.file.is_detached()
                && change == Change::None
                && now.duration_since(tailed.last_line_at) >= MULTI_LINE_IDLE;
            match change {
                // The content before the change is complete: its pending event goes out now, so
                // it is not overtaken by the new file's lines.
                Change::Truncated | Change::Rotated | Change::Deleted => {
                    tailed.pipeline.flush(now_ms, &mut outputs)
                }
                _ if writer_done => {
                    if let Some(line) = tailed.file.take_partial() {
                        tailed.pipeline.push(line, now, now_ms, &mut outputs);
                    }
                    tailed.pipeline.flush(now_ms, &mut outputs);
                    finished.push(i);
                }
                _ => tailed.pipeline.flush_idle(now, now_ms, &mut outputs),
            }
            if !hand_on(tailed, &mut outputs, &links) {
                return;
            }
            if change == Change::None && tailed.file.identity() != tailed.told_identity {
                // The fingerprint now covers more of the head: a stronger identity for restarts.
                tailed.told_identity = tailed.file.identity();
                let _ = links.checkpoints.send(CheckpointMessage::Identity {
                    file: tailed.key,
                    identity: tailed.told_identity,
                });
            }
            match change {
                Change::None => {}
                Change::Rotated | Change::Deleted => {
                    info!(file = %tailed.file.path().display(), ?change, "the old file is read until its writer is done");
                    // The writer's quiet time counts from now, not from the last line before.
                    tailed.last_line_at = now;
                    // The path may name a new file already: look now rather than at the next rescan.
                    rescan_now = true;
                    progressed = true;
                }
                Change::Truncated => {
                    info!(file = %tailed.file.path().display(), ?change, "reading the new content from its start");
                    tailed.key = next_key;
                    next_key += 1;
                    tailed.told_identity = tailed.file.identity();
                    let _ = links.checkpoints.send(CheckpointMessage::Register {
                        file: tailed.key,
                        path: tailed.file.path().to_owned(),
                        identity: tailed.file.identity(),
                        offset: 0,
                    });
                    progressed = true;
                }
            }
        }
        for i in finished.into_iter().rev() {
            let gone = open.remove(i);
            info!(file = %gone.file.path().display(), "rotated or deleted file fully read");
        }
        if !progressed {
            // Idle: sleep until a file-system event, the next rescan, or the moment a pending
            // multi-line event or unterminated line is due; no wake-ups beyond those. Without
            // file-system events (no inotify), appends are looked for every second.
            let now = Instant::now();
            let due = open
                .iter()
                .filter(|o| {
                    o.pipeline.has_pending() || o.file.pending_bytes() > 0 || o.file.is_detached()
                })
                .map(|o| (o.last_line_at + MULTI_LINE_IDLE).saturating_duration_since(now))
                .min();
            let until_rescan = last_scan.map_or(Duration::ZERO, |at| {
                RESCAN_INTERVAL.saturating_sub(at.elapsed())
            });
            let mut wait = due.map_or(until_rescan, |d| d.min(until_rescan));
            if !links.file_events {
                wait = wait.min(Duration::from_secs(1));
            }
            woken = links.wake.recv_timeout(wait).is_ok();
            while links.wake.try_recv().is_ok() {}
        } else {
            woken = false;
        }
    }
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends the outputs on; false when the tailer must stop.
fn hand_on(tailed: &Open, outputs: &mut Vec<Output>, links: &TailerLinks) -> bool {
    for output in outputs.drain(..) {
        match output {
            Output::Skipped(skipped) => {
                let _ = links.checkpoints.send(CheckpointMessage::Ack {
                    file: tailed.key,
                    start: skipped.start_offset,
                    end: skipped.end_offset,
                });
            }
            Output::Event(event) => {
                let bytes = event.message.len;
                while !links.budget.acquire(bytes, Duration::from_millis(200)) {
                    if links.stop.load(Ordering::Relaxed) {
                        return false;
                    }
                }
                let source = EventSource {
                    file: tailed.key,
                    start_offset: event.message.start_offset,
                    end_offset: event.message.end_offset,
                };
                let message = TailMessage::Event {
                    destination: tailed.destination.clone(),
                    event: LogEvent {
                        timestamp_ms: event.timestamp_ms,
                        message: event.message,
                        source,
                    },
                };
                if links.events.blocking_send(message).is_err() {
                    return false;
                }
            }
        }
    }
    true
}
