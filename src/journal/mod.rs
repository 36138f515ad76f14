//! The systemd journal as a log source: one task per `logs_collected.journald` entry, reading a
//! `journalctl --output=export --follow` child.
//!
//! Owns the child's life (started, read, started again after it ends, killed at the stop) and
//! the hand-on of its entries to the shipper: numbered, filtered, taken from the destination's
//! share of the budget (waiting for room, so journalctl itself waits in its pipe: nothing read
//! is dropped), and their cursors registered with the checkpointer before the shipper can
//! acknowledge any. Why a child and not sd-journal: see `benches/journal_read.rs` and
//! ARCHITECTURE.md. It writes no state (the cursor is `state::cursor`'s) and knows nothing of
//! AWS.

pub mod command;
pub mod entry;
pub mod export;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::JournaldConfig;
use crate::event::{Destination, LogEvent, MAX_EVENTS_PER_HANDOFF, SourceKind, TailMessage};
use crate::listen::Throttle;
use crate::queue::{ByteBudget, Share};
use crate::state::cursor::JournalRead;
use crate::tail::multiline::RawEvent;
use crate::telemetry::Telemetry;
use entry::Entry;

/// The program read. The unit's `PATH` finds it in `/usr/bin` (`/bin` on merged systems).
pub const JOURNALCTL: &str = "journalctl";

/// Wait before journalctl is started again after it ended, as the stock receiver waits.
pub const RESTART_DELAY: Duration = Duration::from_secs(2);

/// Longest wait between starts while journalctl keeps failing at once (missing, refused).
pub const RESTART_DELAY_CAP: Duration = Duration::from_secs(60);

/// A chunk is handed on at this size even while journalctl has more ready: what one entry's
/// reader holds outside the budget.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// What a journal task is connected to.
#[derive(Debug, Clone)]
pub struct JournalLinks {
    /// To the shipper.
    pub events: mpsc::Sender<TailMessage>,
    /// To the checkpointer: cursors of what was read, before any acknowledgement of it.
    pub reads: mpsc::UnboundedSender<JournalRead>,
    /// Bytes between reading and acknowledgement.
    pub budget: Arc<ByteBudget>,
    /// Becomes true at the stop.
    pub stop: watch::Receiver<bool>,
    /// Counters.
    pub telemetry: Arc<Telemetry>,
    /// Longest message; longer ones are cut.
    pub max_event_bytes: usize,
}

/// Reads `journald.collect_list[index]` from `resume` (a delivered cursor) or, without one,
/// from where its `start_at` says, until the stop.
pub async fn run(
    index: usize,
    config: JournaldConfig,
    resume: Option<String>,
    links: JournalLinks,
) {
    let destination = Arc::new(Destination {
        group: config.log_group_name.clone(),
        stream: config.log_stream_name.clone(),
        class: config.log_group_class,
        retention_days: config.retention_in_days,
    });
    let share = links.budget.share(&destination);
    let mut reader = Reader {
        index,
        key: SourceKind::journal_key(index),
        config,
        destination,
        share,
        resume,
        next_seq: 0,
        chunk: Chunk::default(),
        malformed: Throttle::default(),
        cut: Throttle::default(),
        links,
    };
    reader.run().await;
}

/// Entries read and not yet handed on.
#[derive(Debug, Default)]
struct Chunk {
    first: u64,
    events: Vec<LogEvent>,
    cursors: Vec<Box<str>>,
    skipped: Vec<(u64, u64)>,
    bytes: usize,
}

impl Chunk {
    fn is_empty(&self) -> bool {
        self.cursors.is_empty()
    }

    fn is_full(&self) -> bool {
        self.cursors.len() >= MAX_EVENTS_PER_HANDOFF || self.bytes >= MAX_CHUNK_BYTES
    }
}

/// How one journalctl run ended.
enum RunEnd {
    /// The daemon stops.
    Stop,
    /// journalctl ended (or its output broke); `lines` is what it printed.
    Exited {
        lines: u64,
        status: String,
        stderr: Vec<String>,
    },
}

struct Reader {
    index: usize,
    key: u64,
    config: JournaldConfig,
    destination: Arc<Destination>,
    share: Arc<Share>,
    /// The cursor of the last entry read (or, at start, delivered): where a new journalctl
    /// goes on from.
    resume: Option<String>,
    next_seq: u64,
    chunk: Chunk,
    malformed: Throttle,
    cut: Throttle,
    links: JournalLinks,
}

impl Reader {
    async fn run(&mut self) {
        // "From now on" is the journal's last entry when journalctl first runs.
        let mut needs_tail =
            self.resume.is_none() && self.config.start_at == crate::config::JournalStart::End;
        let mut delay = RESTART_DELAY;
        loop {
            if self.stopped() {
                return;
            }
            if needs_tail {
                let mut stop = self.links.stop.clone();
                let tail = tokio::select! {
                    tail = self.tail() => tail,
                    () = crate::event::stop_requested(&mut stop) => return,
                };
                if let Ok(tail) = tail {
                    needs_tail = false;
                    if let Some(cursor) = tail {
                        // Stored at once as delivered: a restart before the first entry is
                        // sent goes on from here, instead of from a later "now".
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        let _ = self.links.reads.send(JournalRead {
                            entry: self.index,
                            first: seq,
                            cursors: vec![cursor.as_str().into()],
                            skipped: vec![(seq, seq + 1)],
                        });
                        self.resume = Some(cursor);
                    }
                }
            }
            let started = Instant::now();
            let child = match self.start() {
                Ok(child) => child,
                Err(err) => {
                    let why = if err.kind() == std::io::ErrorKind::NotFound {
                        "journalctl is not installed (or not on PATH)".to_owned()
                    } else {
                        format!("journalctl cannot be started: {err}")
                    };
                    error!(
                        entry = self.index,
                        "{why}: the journal is not read; tried again in {} s",
                        delay.as_secs()
                    );
                    if !self.pause(delay).await {
                        return;
                    }
                    delay = (delay * 2).min(RESTART_DELAY_CAP);
                    continue;
                }
            };
            let RunEnd::Exited {
                lines,
                status,
                stderr,
            } = self.read(child).await
            else {
                return;
            };
            if self.hand_on().await.is_err() {
                return;
            }
            Telemetry::bump(&self.links.telemetry.journal.restarts, 1);
            // A run that lasted starts over at the short delay; quick failures back off.
            if started.elapsed() > RESTART_DELAY_CAP {
                delay = RESTART_DELAY;
            }
            if lines == 0
                && self.resume.is_some()
                && stderr.iter().any(|l| l.to_lowercase().contains("cursor"))
            {
                warn!(
                    entry = self.index,
                    "journalctl refuses the stored cursor ({}): reading from the oldest entry kept instead, so entries may arrive twice but none is lost",
                    stderr.join("; ")
                );
                self.resume = None;
            } else {
                warn!(
                    entry = self.index,
                    "journalctl ended ({status}){}; started again in {} s",
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", stderr.join("; "))
                    },
                    delay.as_secs()
                );
            }
            if !self.pause(delay).await {
                return;
            }
            delay = (delay * 2).min(RESTART_DELAY_CAP);
        }
    }

    /// Waits `delay`; `false` when the stop came first.
    async fn pause(&self, delay: Duration) -> bool {
        let mut stop = self.links.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = crate::event::stop_requested(&mut stop) => false,
        }
    }

    /// The cursor of the journal's last entry now (`None` when it is empty or unreadable: then
    /// everything that appears is new).
    ///
    /// # Errors
    /// journalctl cannot be run at all.
    async fn tail(&self) -> std::io::Result<Option<String>> {
        let output = Command::new(JOURNALCTL)
            .args(command::tail_arguments(&self.config))
            .env("SYSTEMD_COLORS", "0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        Ok(output
            .stdout
            .split(|&b| b == b'\n')
            .find(|l| !l.is_empty())
            .and_then(|line| Entry::parse(line).ok())
            .map(|entry| entry.cursor.into()))
    }

    fn stopped(&self) -> bool {
        *self.links.stop.borrow()
    }

    fn start(&self) -> std::io::Result<Child> {
        let args = command::arguments(&self.config, self.resume.as_deref());
        let child = Command::new(JOURNALCTL)
            .args(&args)
            .env("SYSTEMD_COLORS", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        info!(
            entry = self.index,
            group = %self.destination.group,
            from = self.resume.as_deref().unwrap_or("the oldest entry"),
            "reading the journal"
        );
        Ok(child)
    }

    /// Reads journalctl's lines until it ends or the daemon stops.
    async fn read(&mut self, mut child: Child) -> RunEnd {
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // Its complaints are kept for the message when it ends (a few lines at most).
        let complaints = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut kept = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if kept.len() < 5 {
                    kept.push(line);
                }
            }
            kept
        });
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let (mut line, mut fields) = (Vec::new(), std::collections::BTreeMap::new());
        let mut lines = 0u64;
        let mut skip = self.resume.clone();
        let mut stop = self.links.stop.clone();
        loop {
            let read = tokio::select! {
                read = export::read_entry(&mut reader, &mut line, &mut fields) => read,
                _ = crate::event::stop_requested(&mut stop) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    // What is read and not handed on is read again at the next start.
                    return RunEnd::Stop;
                }
            };
            match read {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => {
                    // Its output cannot be followed any more: it is started again.
                    let _ = child.start_kill();
                    break;
                }
            }
            lines += 1;
            // `--cursor` starts at the resumed entry itself, which was read before.
            if let Some(cursor) = skip.take()
                && fields.get("__CURSOR").and_then(|c| c.as_str()) == Some(cursor.as_str())
            {
                continue;
            }
            self.take(std::mem::take(&mut fields));
            if (reader.buffer().is_empty() || self.chunk.is_full()) && self.hand_on().await.is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return RunEnd::Stop;
            }
        }
        let status = match child.wait().await {
            Ok(status) => status.to_string(),
            Err(err) => err.to_string(),
        };
        RunEnd::Exited {
            lines,
            status,
            stderr: complaints.await.unwrap_or_default(),
        }
    }

    /// Numbers one entry and puts it in the chunk, or among the skipped.
    fn take(&mut self, fields: std::collections::BTreeMap<String, serde_json::Value>) {
        let entry = match Entry::from_fields(fields) {
            Ok(entry) => entry,
            Err(err) => {
                if let Some(count) = self
                    .malformed
                    .count(&self.links.telemetry.journal.malformed, 1)
                {
                    warn!(
                        entry = self.index,
                        count,
                        "journalctl printed an entry without a cursor or time, dropped: {err}"
                    );
                }
                return;
            }
        };
        Telemetry::bump(&self.links.telemetry.journal.entries_read, 1);
        let kept = entry.kept_by(&self.config.filters);
        // A run of filtered entries is one position: only its last cursor can matter, so
        // a filter dropping nearly everything keeps one cursor per run, not one per entry.
        if !kept
            && self
                .chunk
                .skipped
                .last()
                .is_some_and(|&(_, end)| end == self.next_seq)
            && let Some(last) = self.chunk.cursors.last_mut()
        {
            Telemetry::bump(&self.links.telemetry.journal.entries_filtered, 1);
            self.resume = Some(entry.cursor.to_string());
            *last = entry.cursor;
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.chunk.is_empty() {
            self.chunk.first = seq;
        }
        self.resume = Some(entry.cursor.to_string());
        if !kept {
            Telemetry::bump(&self.links.telemetry.journal.entries_filtered, 1);
            match self.chunk.skipped.last_mut() {
                Some((_, end)) if *end == seq => *end = seq + 1,
                _ => self.chunk.skipped.push((seq, seq + 1)),
            }
            self.chunk.cursors.push(entry.cursor);
            return;
        }
        let mut message = entry.message().into_bytes();
        if message.len() > self.links.max_event_bytes {
            let mut cut = self.links.max_event_bytes;
            while cut > 0 && (message[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            message.truncate(cut);
            if let Some(count) = self.cut.note() {
                warn!(
                    entry = self.index,
                    count,
                    "a journal entry longer than {} bytes is cut to that length",
                    self.links.max_event_bytes
                );
            }
        }
        let len = message.len();
        let event = LogEvent {
            timestamp_ms: entry.timestamp_ms,
            message: RawEvent {
                parts: smallvec::smallvec![Bytes::from(message)],
                len,
                start_offset: seq,
                end_offset: seq + 1,
            },
            file: self.key,
        };
        self.chunk.bytes += event.budget_bytes();
        self.chunk.events.push(event);
        self.chunk.cursors.push(entry.cursor);
    }

    /// Registers the chunk's cursors and hands its events on, once the destination's share
    /// has room. `Err` when the daemon stops first (nothing of the chunk is registered or sent,
    /// so it is read again) or the shipper is gone.
    async fn hand_on(&mut self) -> Result<(), ()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let bytes = self.chunk.bytes;
        if !self.chunk.events.is_empty() {
            let mut stop = self.links.stop.clone();
            tokio::select! {
                () = self.links.budget.acquire(&self.share, bytes) => {}
                _ = crate::event::stop_requested(&mut stop) => return Err(()),
            }
        }
        let chunk = std::mem::take(&mut self.chunk);
        let _ = self.links.reads.send(JournalRead {
            entry: self.index,
            first: chunk.first,
            cursors: chunk.cursors,
            skipped: chunk.skipped,
        });
        if chunk.events.is_empty() {
            return Ok(());
        }
        let count = chunk.events.len() as u64;
        Telemetry::bump(&self.links.telemetry.queued_events, count);
        let message = TailMessage::Events {
            destination: self.destination.clone(),
            events: chunk.events,
            emf: crate::event::Emf::Never,
        };
        if self.links.events.send(message).await.is_err() {
            self.links.budget.release(&self.share, bytes);
            return Err(());
        }
        Ok(())
    }
}
