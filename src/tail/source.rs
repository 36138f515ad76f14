//! The tailer: one thread that discovers files, reads them and hands events on.
//!
//! Owns the set of open files of every `collect_list` entry. It discovers files at start, when a
//! watched directory changes (`notify`) and on a slow periodic rescan, instead of walking every
//! glob every second. Each pass reads at most a fixed budget per file so a busy file cannot
//! starve a quiet one. Before handing events on it takes their bytes from their destination's
//! [`Share`] of the [`ByteBudget`], and it never waits for them: when a destination cannot keep
//! up (CloudWatch slow, unreachable, or refusing it), only the files feeding that destination
//! pause, their data waiting in the files; every other file goes on, nothing is dropped and
//! memory stays bounded. Files are registered with
//! the checkpointer before their first event, and ranges that make no event are acknowledged at
//! once. It knows nothing of AWS; destinations are plain names.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::discovery::Pattern;
use super::events::{EventPipeline, Outputs};
use super::line_reader::{Framing, Line};
use super::multiline::MULTI_LINE_IDLE;
use super::watcher::{Change, TailedFile, locate};
use crate::config::{FileConfig, LogGroupName};
use crate::event::{Destination, LogEvent, MAX_EVENTS_PER_HANDOFF, TailMessage};
use crate::queue::{ByteBudget, Share};
use crate::state::checkpoint::{CheckpointMessage, FileCheckpoint};
use crate::telemetry::Telemetry;

/// How often every glob is evaluated again, and every tailed file looked at, when file-system
/// events are missing (the tailer then also polls every file every second).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// The same with file-system events, which name every change: the rescan is only a safety net
/// (a path spelt otherwise than the event spells it). It costs a `stat` of every match, and a
/// glob over 10,000 quiet files rescanned every 10 s spent most of its CPU there. Fluent Bit's
/// `refresh_interval` is 60 s too.
pub const RESCAN_INTERVAL_WITH_EVENTS: Duration = Duration::from_secs(60);
/// Longest the tailer sleeps: its heartbeat (see `TAILER_STUCK_AFTER`) and the `auto_removal`
/// look at superseded files need it to go round now and then.
pub const MAX_SLEEP: Duration = Duration::from_secs(10);
/// Bytes read from one file per pass.
pub const READ_BUDGET_PER_PASS: usize = 1024 * 1024;
/// How long appends gather after a pass that read every file to its end: at most this much
/// latency, against one pass per write.
pub const APPEND_GATHER: Duration = Duration::from_millis(25);
/// Most descriptors of tailed files kept open; the longest-idle files beyond it are closed and
/// reopened on change (a glob may match thousands of files; systemd's default soft limit is 1024).
pub const MAX_OPEN_FILES: usize = 256;
/// Most distinct changed paths remembered between two passes; beyond it every file is looked at.
pub const MAX_CHANGED_PATHS: usize = 4096;

/// Paths that file-system events named since the tailer last looked, so that a pass reopens
/// only the closed files that changed, and globs are evaluated again only when names changed.
/// Bounded: past [`MAX_CHANGED_PATHS`] it only remembers that everything must be looked at.
#[derive(Debug, Default)]
pub struct ChangedPaths {
    inner: Mutex<Changed>,
}

/// What [`ChangedPaths`] collected.
#[derive(Debug, Default)]
pub struct Changed {
    /// Paths whose content or name changed.
    pub paths: HashSet<PathBuf>,
    /// Events were lost or too many: look at every file.
    pub all: bool,
    /// A file was created, renamed or removed: evaluate the globs again.
    pub names: bool,
}

impl Changed {
    /// What a pass needs to ask, of each tailed file, whether an event named it.
    fn named(&self) -> Named<'_> {
        Named {
            changed: self,
            hashes: if self.paths.len() <= MAX_NAMED_HASHES {
                self.paths.iter().map(|p| path_hash(p)).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// Most named paths compared by hash in a pass; past that, each file's path is looked up.
const MAX_NAMED_HASHES: usize = 64;

/// The paths one pass's events named, by hash. A pass asks of every tailed file (thousands
/// under a wide glob) whether an event named it, while events name a few paths: hashing each
/// file's path every pass was the largest cost of a quiet 10,000-file glob, so each file's hash
/// is taken once, when it is opened, and compared with these.
struct Named<'a> {
    changed: &'a Changed,
    hashes: Vec<u64>,
}

impl Named<'_> {
    /// Whether an event named the file at `path`, whose [`path_hash`] is `hash`. Events name
    /// paths as discovery does (the watched directory joined with the name); a path spelt
    /// otherwise is still read at the next periodic look.
    fn mentions<'p>(&self, hash: u64, path: impl FnOnce() -> &'p Path) -> bool {
        let paths = &self.changed.paths;
        if paths.is_empty() {
            return false;
        }
        if paths.len() > MAX_NAMED_HASHES {
            return paths.contains(path());
        }
        self.hashes.contains(&hash) && {
            let path = path();
            paths
                .iter()
                .any(|named| named.as_os_str() == path.as_os_str())
        }
    }
}

/// A hash of a path's bytes, the same for the whole run.
fn path_hash(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    path.as_os_str().as_encoded_bytes().hash(&mut hasher);
    hasher.finish()
}

impl ChangedPaths {
    /// Records the paths of one event; `names` when it created, renamed or removed something.
    pub fn record(&self, paths: &[PathBuf], names: bool) {
        let mut changed = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        changed.names |= names;
        if changed.all {
            return;
        }
        for path in paths {
            if changed.paths.len() >= MAX_CHANGED_PATHS {
                changed.paths.clear();
                changed.all = true;
                return;
            }
            // Mostly already there (a written file raises an event per write): no clone then.
            if !changed.paths.contains(path) {
                changed.paths.insert(path.clone());
            }
        }
    }

    /// Records that events were lost: every file must be looked at and every glob evaluated.
    pub fn record_all(&self) {
        let mut changed = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        changed.paths.clear();
        changed.all = true;
        changed.names = true;
    }

    /// Takes what was recorded.
    pub fn take(&self) -> Changed {
        std::mem::take(&mut *self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// How long the file-event thread pauses, during a burst of writes, before it reads on.
pub const WRITE_BURST_PAUSE: Duration = APPEND_GATHER;
/// Events handled this soon after a pause ended were read with, or just after, the events
/// that came during it: one wake, so no second pause.
const RESUMED_WITHIN: Duration = Duration::from_millis(1);

/// When the file-event thread should pause so that the kernel merges the events of a burst
/// of writes.
///
/// inotify raises an event per `write(2)`, and merges one into the last unread event only
/// while that is unread. A program that logs line by line (20,000 writes a second) woke the
/// event thread about 9,000 times a second, which cost more CPU than reading the lines; the
/// tailer needs no more than one wake per [`APPEND_GATHER`], since it reads a written file
/// again after each gather. So the first write after a quiet spell is handed on at once, and
/// a write that follows another within [`WRITE_BURST_PAUSE`] makes the thread pause that long
/// before it reads more: a burst costs about one wake-up per pause. Events are only delayed,
/// never dropped (an inotify queue that overflows meanwhile makes the tailer look at every
/// file).
#[derive(Debug, Default)]
pub struct WriteBursts {
    last_write: Option<Instant>,
    resumed_at: Option<Instant>,
}

impl WriteBursts {
    /// A data write was reported at `now`; returns how long to pause before reading more.
    pub fn written(&mut self, now: Instant) -> Option<Duration> {
        let in_burst = self
            .last_write
            .is_some_and(|at| now.duration_since(at) < WRITE_BURST_PAUSE);
        let same_wake = self
            .resumed_at
            .is_some_and(|at| now.duration_since(at) < RESUMED_WITHIN);
        self.last_write = Some(now);
        (in_burst && !same_wake).then_some(WRITE_BURST_PAUSE)
    }

    /// The pause ended at `now`.
    pub fn resumed(&mut self, now: Instant) {
        self.resumed_at = Some(now);
    }
}

/// Most fully read files remembered by identity (see [`FinishedFiles`]).
pub const MAX_FINISHED_FILES: usize = 4096;

/// Files read to their end after rotation, by device and inode, with where they ended: when a
/// glob also matches rotated names (`app.log.1`), discovery meets them again under the new
/// name and must go on from their end, not send them again from 0. Bounded, oldest forgotten.
#[derive(Debug, Default)]
struct FinishedFiles {
    ends: HashMap<(u64, u64), (crate::state::checkpoint::FileIdentity, u64)>,
    order: std::collections::VecDeque<(u64, u64)>,
}

impl FinishedFiles {
    fn remember(&mut self, identity: crate::state::checkpoint::FileIdentity, end: u64) {
        let key = (identity.device, identity.inode);
        if self.ends.insert(key, (identity, end)).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_FINISHED_FILES {
            if let Some(oldest) = self.order.pop_front() {
                self.ends.remove(&oldest);
            }
        }
    }

    fn get(
        &self,
        device: u64,
        inode: u64,
    ) -> Option<(crate::state::checkpoint::FileIdentity, u64)> {
        self.ends.get(&(device, inode)).copied()
    }
}

/// Everything the tailer needs.
pub struct TailerSettings {
    /// The `collect_list` entries.
    pub entries: Vec<FileConfig>,
    /// Checkpoints by path.
    pub checkpoints: HashMap<PathBuf, FileCheckpoint>,
    /// Checkpoints of older, rotated-away files whose tail may not be delivered yet.
    pub rotated: Vec<FileCheckpoint>,
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
    /// Index of its `collect_list` entry.
    entry: usize,
    /// The last poll gave lines: there may be more, so the next pass polls it without an event.
    hot: bool,
    /// The next pass must look at it without an event: it is hot, was just truncated, is
    /// detached, or holds a partial line or a pending multi-line event. Kept here, next to the
    /// hash, so that a pass over thousands of quiet files reads a few bytes of each instead of
    /// its reader and pipeline (boxed for the same reason: a pass walking 10,000 inline files
    /// was most of the CPU of a quiet glob).
    attention: bool,
    file: Box<TailedFile>,
    /// [`path_hash`] of the file's path, taken once.
    path_hash: u64,
    pipeline: Box<EventPipeline>,
    destination: Arc<Destination>,
    /// Its destination's part of the budget (shared with the other files of the destination).
    share: Arc<Share>,
    /// Hand-off chunks of a pass whose destination had no room left, oldest first: the file is
    /// not read again until they are handed on, and nothing else waits for them.
    stalled: Vec<Vec<LogEvent>>,
    /// Memory its partial line and pending multi-line event held after its last poll, as
    /// counted in the tailer's total (see [`Held`]).
    held: usize,
}

/// What all files hold back outside the budget: partial lines (and the chunks they keep
/// alive) and pending multi-line events. Without a cap, 300 files of 1 MB without a newline
/// held 270 MB. Past the cap (half the budget), the file that just grew hands on what it holds
/// as it would after the idle timeout: nothing is lost, one line becomes two events.
#[derive(Debug, Default)]
struct Held {
    total: usize,
    cap: usize,
}

impl Held {
    /// Records `file`'s holding after a poll; true when it must hand on what it holds.
    fn over_cap(&mut self, file: &mut Open) -> bool {
        let now = file.file.held_bytes() + file.pipeline.pending_bytes();
        self.total = self.total - file.held + now;
        file.held = now;
        now > 0 && self.total > self.cap
    }

    /// Forgets a file that is no longer tailed.
    fn forget(&mut self, file: &Open) {
        self.total -= file.held;
    }
}

/// Which tailed files a pass visits, so that a pass costs what is due rather than every file
/// (a glob over 10,000 quiet files walked them all on every append): the files that need
/// attention (see `Open::attention`) and those an event named, found by path hash.
#[derive(Default)]
struct Roster {
    /// Indices into the open files by [`path_hash`].
    by_hash: HashMap<u64, smallvec::SmallVec<[usize; 1]>>,
    /// Indices of the files with `attention` set, as the last pass left them.
    attention: Vec<usize>,
    /// How many of the open files are indexed: between removals, files are only pushed.
    indexed: usize,
    /// A file was removed, so indices moved: everything is indexed again.
    stale: bool,
}

impl Roster {
    /// Indexes the files pushed since the last call (all of them after a removal).
    fn catch_up(&mut self, open: &[Open]) {
        if std::mem::take(&mut self.stale) {
            self.by_hash.clear();
            self.attention.clear();
            self.indexed = 0;
        }
        for (i, o) in open.iter().enumerate().skip(self.indexed) {
            self.by_hash.entry(o.path_hash).or_default().push(i);
            if o.attention {
                self.attention.push(i);
            }
        }
        self.indexed = open.len();
    }

    /// The files a pass visits, in order: every file when `all` or when too many paths were
    /// named to hash; otherwise those with attention and those named. The pass puts the
    /// files that still need attention back with [`Roster::keep`].
    fn due(&mut self, named: &Named<'_>, all: bool, count: usize) -> Vec<usize> {
        if all || named.changed.paths.len() > MAX_NAMED_HASHES {
            self.attention.clear();
            return (0..count).collect();
        }
        let mut due = std::mem::take(&mut self.attention);
        for hash in &named.hashes {
            if let Some(found) = self.by_hash.get(hash) {
                due.extend_from_slice(found);
            }
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// File `i` still needs attention after this pass.
    fn keep(&mut self, i: usize) {
        self.attention.push(i);
    }

    /// The open files that need attention, found through the indices the last pass kept
    /// rather than by walking every file: an idle wait after each pass over a glob of 10,000
    /// mostly quiet files walked all of them to find the few with a deadline. Every file is
    /// walked only when a removal moved the indices since.
    fn needing_attention<'a>(&'a self, open: &'a [Open]) -> impl Iterator<Item = &'a Open> + 'a {
        let (kept, rest): (&[usize], &[Open]) = if self.stale {
            (&[], open)
        } else {
            // Files added after the pass indexed them are looked at too.
            (
                &self.attention,
                open.get(self.indexed..).unwrap_or_default(),
            )
        };
        kept.iter()
            .filter_map(|&i| open.get(i))
            .chain(rest)
            .filter(|o| o.attention)
    }
}

/// An older file of an `auto_removal` entry, read to its end, waiting for CloudWatch to
/// acknowledge all of it before it is deleted.
struct Removal {
    path: PathBuf,
    identity: crate::state::checkpoint::FileIdentity,
    end: u64,
    entry: usize,
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
    /// What the file-system events named.
    pub changed: Arc<ChangedPaths>,
    /// Keys of finished files whose every byte is now delivered (for `auto_removal`).
    pub delivered: crossbeam_channel::Receiver<u64>,
    /// Counters.
    pub telemetry: Arc<Telemetry>,
    /// Whether file-system events arrive on `wake` (otherwise the tailer polls every second).
    pub file_events: bool,
}

/// Longest log group or stream name CloudWatch takes, in characters.
pub const MAX_NAME_CHARS: usize = 512;

/// `name` within [`MAX_NAME_CHARS`]: unchanged when it fits; otherwise its start and its end
/// (where paths differ: the file name) around the CRC-32 of the whole name, so that two long
/// names stay two names and a name stays the same across restarts. CloudWatch refuses a longer
/// name, so the stock agent's events for it are lost; cwlite sends them under the fitted name.
pub fn fit_name(name: &str) -> std::borrow::Cow<'_, str> {
    let count = name.chars().count();
    if count <= MAX_NAME_CHARS {
        return std::borrow::Cow::Borrowed(name);
    }
    let hash = format!("_{:08x}_", crc32fast::hash(name.as_bytes()));
    let room = MAX_NAME_CHARS - hash.len();
    let head = room / 2;
    let tail = room - head;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(count - tail).collect();
    std::borrow::Cow::Owned(format!("{start}{hash}{end}"))
}

/// The destination of a file of an entry. Names built from the path are made to fit
/// CloudWatch's rules (characters outside `[.-_/#A-Za-z0-9]` become `_`, as the stock agent
/// does; at most [`MAX_NAME_CHARS`], see [`fit_name`]).
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
    let fit = |name: String, what: &str| match fit_name(&name) {
        std::borrow::Cow::Borrowed(_) => name,
        std::borrow::Cow::Owned(fitted) => {
            warn!(file = %crate::telemetry::shown(path), "the log {what} name for this file is longer than CloudWatch takes ({MAX_NAME_CHARS} characters); its events go to {fitted:?}");
            fitted
        }
    };
    Destination {
        group: fit(group, "group"),
        stream: fit(stream, "stream"),
        class: config.log_group_class,
        retention_days: config.retention_in_days,
    }
}

/// Runs until `links.stop` is set. Pending multi-line events and partial lines are not sent at
/// shutdown: they are not acknowledged either, so the next start reads them again, complete.
pub fn run(settings: TailerSettings, links: TailerLinks) {
    let mut tailer = Tailer::start(settings, links);
    while !tailer.links.stop.load(Ordering::Relaxed) {
        if tailer.pass() == HandOn::Stop {
            return;
        }
    }
}

/// The tailer's state between passes. A pass goes through named phases, in order:
/// [`Tailer::take_delivered`] (auto_removal deletions CloudWatch made safe),
/// [`Tailer::discover_if_due`], [`Tailer::read_pass`] (each due file: [`Tailer::read_file`]),
/// [`Tailer::retire`] (files read to their end for good), [`Tailer::count_descriptors`], and
/// [`Tailer::rest`] (sleep until something is due).
struct Tailer {
    settings: TailerSettings,
    links: TailerLinks,
    /// Each entry's pattern.
    patterns: Vec<Pattern>,
    /// Each entry's patterns compiled once; every file of the entry gets a fresh copy.
    templates: Vec<Result<EventPipeline, String>>,
    /// The files tailed.
    open: Vec<Open>,
    /// The checkpoint key the next file gets.
    next_key: u64,
    /// The newest match of each entry, as the last discovery saw it.
    newest: Vec<Option<PathBuf>>,
    /// Files of `auto_removal` entries waiting for CloudWatch before they are deleted, by key.
    removals: HashMap<u64, Removal>,
    finished_files: FinishedFiles,
    roster: Roster,
    held: Held,
    /// The lines of the file being read (kept for its allocation).
    lines: Vec<Line>,
    /// When discovery last ran.
    last_scan: Option<Instant>,
    rescan_every: Duration,
    /// Discovery runs at the next pass, whatever the events said.
    rescan_now: bool,
    /// Whether files came, went, or took a descriptor since the descriptors were last counted.
    recount: bool,
    /// The last discovery left matches unopened for want of descriptors.
    unopened: bool,
    /// The last `close_idle` closed fewer files than it wanted.
    close_again: bool,
    /// Passes so far: each starts one file further (see [`Tailer::read_pass`]).
    passes: usize,
}

/// What one pass did.
#[derive(Default)]
struct Pass {
    /// Something was read, handed on or opened: another pass follows at once.
    progressed: bool,
    /// A file gave most of a pass's read budget: it has more right now.
    busy: bool,
    /// Indices of files read to their end for good (detached and quiet).
    finished: Vec<usize>,
}

impl Tailer {
    /// The tailer of `settings`, with the rotated and superseded files of the last run resumed.
    fn start(mut settings: TailerSettings, links: TailerLinks) -> Self {
        let patterns: Vec<Pattern> = settings
            .entries
            .iter()
            .map(|e| Pattern {
                file_path: e.file_path.clone(),
                publish_multi_logs: e.publish_multi_logs,
                blacklist: e.blacklist.clone(),
            })
            .collect();
        let templates: Vec<Result<EventPipeline, String>> = settings
            .entries
            .iter()
            .map(|config| EventPipeline::new(config, settings.max_event_bytes))
            .collect();
        let mut open = Vec::new();
        let mut next_key = 1u64;
        resume_rotated(
            &mut settings,
            &templates,
            &patterns,
            &mut open,
            &mut next_key,
            &links,
        );
        resume_superseded(
            &mut settings,
            &templates,
            &patterns,
            &mut open,
            &mut next_key,
            &links,
        );
        let rescan_every = if links.file_events {
            RESCAN_INTERVAL_WITH_EVENTS
        } else {
            RESCAN_INTERVAL
        };
        let held = Held {
            total: 0,
            cap: links.budget.max() / 2,
        };
        Tailer {
            newest: vec![None; patterns.len()],
            settings,
            links,
            patterns,
            templates,
            open,
            next_key,
            removals: HashMap::new(),
            finished_files: FinishedFiles::default(),
            roster: Roster::default(),
            held,
            lines: Vec::new(),
            last_scan: None,
            rescan_every,
            rescan_now: false,
            recount: true,
            unopened: false,
            close_again: false,
            passes: 0,
        }
    }

    /// One pass over what is due; `Stop` when the shipper is gone.
    fn pass(&mut self) -> HandOn {
        self.links
            .telemetry
            .tailer
            .heartbeat_secs
            .store(epoch_secs(), Ordering::Relaxed);
        self.take_delivered();
        let changed = self.links.changed.take();
        let periodic = self
            .last_scan
            .is_none_or(|at| at.elapsed() >= self.rescan_every);
        // The periodic look also catches changes to closed files that raised no event.
        let look_at_all = changed.all || periodic || !self.links.file_events;
        let mut pass = Pass {
            progressed: self.discover_if_due(changed.names || periodic),
            ..Pass::default()
        };
        if self.read_pass(&changed.named(), look_at_all, &mut pass) == HandOn::Stop {
            return HandOn::Stop;
        }
        self.retire(std::mem::take(&mut pass.finished));
        // A file that was busy (read, or waiting for room) may be closable now, and matches
        // wait for its descriptor.
        self.recount |= self.unopened && (pass.progressed || self.close_again);
        self.count_descriptors();
        self.rest(&pass);
        HandOn::Done
    }

    /// Deletes the `auto_removal` files whose every byte CloudWatch now has.
    fn take_delivered(&mut self) {
        for key in self.links.delivered.try_iter() {
            if let Some(removal) = self.removals.remove(&key) {
                self.recount = true;
                remove_delivered(
                    &self.settings,
                    &self.templates,
                    removal,
                    &mut self.open,
                    &mut self.next_key,
                    &self.links,
                );
            }
        }
    }

    /// Evaluates the globs again when names changed, at the periodic look, or when asked;
    /// appends only need the files polled. Returns whether files were left unopened for want
    /// of descriptors after others were opened: they are opened next pass, once this pass has
    /// read the new ones and closed the idle.
    fn discover_if_due(&mut self, names_changed: bool) -> bool {
        if !(names_changed || self.rescan_now) {
            return false;
        }
        self.last_scan = Some(Instant::now());
        self.rescan_now = false;
        self.recount = true;
        let before = self.open.len();
        self.unopened = discover(
            &mut self.settings,
            &self.templates,
            &self.finished_files,
            &self.patterns,
            &mut self.newest,
            &mut self.open,
            &mut self.next_key,
            &self.links,
        );
        // With no room made since the last call (every open file busy), the files left wait
        // until one is closed rather than loop.
        let more_to_open = self.unopened && self.open.len() > before;
        self.rescan_now |= more_to_open;
        more_to_open
    }

    /// Reads every due file once. Each pass starts one file further, so that the files of a
    /// destination short of room take turns at the room that comes back.
    fn read_pass(&mut self, named: &Named<'_>, look_at_all: bool, pass: &mut Pass) -> HandOn {
        self.roster.catch_up(&self.open);
        let due = self.roster.due(named, look_at_all, self.open.len());
        self.passes = self.passes.wrapping_add(1);
        let start = if due.is_empty() {
            0
        } else {
            self.passes % due.len()
        };
        for &i in due[start..].iter().chain(&due[..start]) {
            let tailed = &self.open[i];
            // With file-system events, a file is only looked at when an event named it, when it
            // may hold more (it gave lines last pass), when something of it is pending or it is
            // detached, and at the periodic look: a glob over thousands of quiet files costs
            // nothing while a few of them are written.
            let due = look_at_all
                || tailed.attention
                || named.mentions(tailed.path_hash, || tailed.file.path());
            if due && self.read_file(i, pass) == HandOn::Stop {
                return HandOn::Stop;
            }
        }
        HandOn::Done
    }

    /// Reads file `i` once, hands on what it gave, and acts on what changed about it.
    fn read_file(&mut self, i: usize, pass: &mut Pass) -> HandOn {
        let links = &self.links;
        let tailed = &mut self.open[i];
        // A file whose destination has no room is not read: what it would read waits in the
        // file, not in memory, and the budget wakes the tailer when room comes back. Only the
        // files of that destination wait; the others go on.
        match hand_on_stalled(tailed, links) {
            HandOn::Stop => return HandOn::Stop,
            HandOn::Stalled => {
                tailed.attention = true;
                self.roster.keep(i);
                return HandOn::Done;
            }
            HandOn::Done => {}
        }
        // Another file of the destination waits with chunks already read: it goes first.
        if tailed.share.stalled_files() > 0 || !links.budget.has_room(&tailed.share) {
            tailed.attention = true;
            self.roster.keep(i);
            return HandOn::Done;
        }
        let counters = &links.telemetry.tailer;
        let was_closed = tailed.file.is_closed();
        let lines = &mut self.lines;
        lines.clear();
        // Lines framed before an error are kept and handed on; the read is tried again next pass.
        let change = match tailed.file.poll(READ_BUDGET_PER_PASS, lines) {
            Ok(change) => change,
            Err(err) => {
                warn!(file = %crate::telemetry::shown(tailed.file.path()), "read failed, retrying: {err}");
                Change::None
            }
        };
        pass.progressed |= !lines.is_empty();
        tailed.hot = !lines.is_empty();
        self.recount |= was_closed && !tailed.file.is_closed();
        if !lines.is_empty() {
            Telemetry::bump(&counters.lines_read, lines.len() as u64);
            let bytes: usize = lines.iter().map(|l| l.bytes.len()).sum();
            Telemetry::bump(&counters.bytes_read, bytes as u64);
            pass.busy |= bytes >= READ_BUDGET_PER_PASS / 2;
        }
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
            pass.progressed = true;
        }
        let mut outputs = Outputs::new(tailed.key);
        for line in lines.drain(..) {
            tailed.pipeline.push(line, now, now_ms, &mut outputs);
        }
        // A renamed-away or deleted file is read until its writer has been quiet for a while
        // (it may append until it reopens its log); then its last line and event go out.
        let writer_done = tailed.file.is_detached()
            && tailed.stalled.is_empty()
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
            }
            _ => tailed.pipeline.flush_idle(now, now_ms, &mut outputs),
        }
        if self.held.over_cap(tailed) {
            if let Some(line) = tailed.file.take_partial() {
                tailed.pipeline.push(line, now, now_ms, &mut outputs);
            }
            tailed.pipeline.flush(now_ms, &mut outputs);
            self.held.over_cap(tailed);
        }
        if hand_on(tailed, outputs, links) == HandOn::Stop {
            return HandOn::Stop;
        }
        if writer_done && tailed.stalled.is_empty() {
            // Everything it will ever hand on is out: its checkpoint ends once that is delivered.
            let _ = links.checkpoints.send(CheckpointMessage::Finished {
                file: tailed.key,
                end: tailed.file.offset(),
            });
            pass.finished.push(i);
        }
        self.after_change(i, change, now, pass);
        HandOn::Done
    }

    /// What a change of file `i` (or its stronger identity) means for its checkpoint and the
    /// passes to come, and whether the next pass must look at it without an event.
    fn after_change(&mut self, i: usize, change: Change, now: Instant, pass: &mut Pass) {
        let links = &self.links;
        let tailed = &mut self.open[i];
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
                info!(file = %crate::telemetry::shown(tailed.file.path()), ?change, "the old file is read until its writer is done");
                // The writer's quiet time counts from now, not from the last line before.
                tailed.last_line_at = now;
                // The path may name a new file already: look now rather than at the next rescan.
                self.rescan_now = true;
                pass.progressed = true;
            }
            Change::Truncated => {
                info!(file = %crate::telemetry::shown(tailed.file.path()), ?change, "reading the new content from its start");
                let _ = links.checkpoints.send(CheckpointMessage::Finished {
                    file: tailed.key,
                    end: tailed.file.truncated_at(),
                });
                tailed.key = self.next_key;
                self.next_key += 1;
                tailed.told_identity = tailed.file.identity();
                let _ = links.checkpoints.send(CheckpointMessage::Register {
                    file: tailed.key,
                    path: tailed.file.path().to_owned(),
                    identity: tailed.file.identity(),
                    offset: 0,
                    rotated: false,
                });
                pass.progressed = true;
            }
        }
        // A truncated file restarts at 0 without reading: the new content may have come with
        // the event this pass consumed, and no other event may follow.
        tailed.attention = tailed.hot
            || change == Change::Truncated
            || tailed.file.is_detached()
            || tailed.file.pending_bytes() > 0
            || tailed.pipeline.has_pending()
            || !tailed.stalled.is_empty();
        if tailed.attention {
            self.roster.keep(i);
        }
    }

    /// Lets go of the files read to their end for good, and of the older files of
    /// `auto_removal` entries once a newer one is tailed (they are deleted when CloudWatch has
    /// all of them, see [`Tailer::take_delivered`]).
    fn retire(&mut self, mut finished: Vec<usize>) {
        if !finished.is_empty() {
            self.recount = true;
            self.roster.stale = true;
        }
        // Removed from the back, so that the indices still to remove stay valid.
        finished.sort_unstable();
        for i in finished.into_iter().rev() {
            let gone = self.open.remove(i);
            self.held.forget(&gone);
            self.finished_files
                .remember(gone.file.identity(), gone.file.offset());
            info!(file = %crate::telemetry::shown(gone.file.path()), "rotated or deleted file fully read");
        }
        if !self.settings.entries.iter().any(|e| e.auto_removal) {
            return;
        }
        for i in (0..self.open.len()).rev() {
            if !superseded_and_read(&self.open[i], &self.settings, &self.newest) {
                continue;
            }
            self.recount = true;
            self.roster.stale = true;
            let done = self.open.remove(i);
            self.held.forget(&done);
            let end = done.file.offset();
            info!(file = %crate::telemetry::shown(done.file.path()), "auto_removal: a newer file is tailed; this one is deleted once CloudWatch has all of it");
            let _ = self.links.checkpoints.send(CheckpointMessage::Finished {
                file: done.key,
                end,
            });
            self.removals.insert(
                done.key,
                Removal {
                    path: done.file.path().to_owned(),
                    identity: done.file.identity(),
                    end,
                    entry: done.entry,
                },
            );
        }
    }

    /// Closes idle files once too many are open, and counts files and descriptors for the
    /// status. Descriptors are only taken by discovery and by reopening a closed file:
    /// counting them every pass was a walk of every file.
    fn count_descriptors(&mut self) {
        if !std::mem::take(&mut self.recount) {
            return;
        }
        let closed = close_idle(&mut self.open, MAX_OPEN_FILES, &self.links.budget);
        // Descriptors were freed for the matches that wait for one: they are opened next pass.
        self.rescan_now |= self.unopened && closed.closed > 0;
        // Matches wait for descriptors that files paused for room hold: counted again at each
        // pass until those files could be closed.
        self.close_again = self.unopened && closed.short;
        let counters = &self.links.telemetry.tailer;
        counters
            .files_tailed
            .store(self.open.len() as u64, Ordering::Relaxed);
        counters.files_open.store(
            self.open.iter().filter(|o| !o.file.is_closed()).count() as u64,
            Ordering::Relaxed,
        );
    }

    /// Waits before the next pass. Idle: until a file-system event, the next rescan, or the
    /// moment a pending multi-line event or unterminated line is due, with no wake-ups beyond
    /// those (without file-system events, appends are looked for every second). After a pass
    /// that read every file to its end: a moment for appends to gather.
    fn rest(&mut self, pass: &Pass) {
        if !pass.progressed {
            let now = Instant::now();
            let links = &self.links;
            // A file waiting for its destination's room waits for the budget's wake instead.
            let due = self
                .roster
                .needing_attention(&self.open)
                .filter(|o| {
                    o.stalled.is_empty()
                        && o.share.stalled_files() == 0
                        && links.budget.has_room(&o.share)
                })
                .map(|o| (o.last_line_at + MULTI_LINE_IDLE).saturating_duration_since(now))
                .min();
            let until_rescan = self.last_scan.map_or(Duration::ZERO, |at| {
                self.rescan_every
                    .saturating_sub(at.elapsed())
                    .min(MAX_SLEEP)
            });
            let mut wait = due.map_or(until_rescan, |d| d.min(until_rescan));
            // Without file-system events, or while matches wait for descriptors that room
            // given back may free (the wake for that room can be missed by a hair).
            if !links.file_events || self.close_again {
                wait = wait.min(Duration::from_secs(1));
            }
            // What woke it is in `links.changed` (or it is the stop, or a delivered file).
            let _ = links.wake.recv_timeout(wait);
            while links.wake.try_recv().is_ok() {}
        } else if !pass.busy && !self.rescan_now {
            // Every file was read to its end: let appends gather for a moment instead of taking
            // them write by write (at 10 MB/s in 100 writes a second, a pass, a hand-off and a
            // shipper wake-up each). A file with more to read goes on at once.
            std::thread::sleep(APPEND_GATHER);
        }
    }
}

/// A pipeline for a new file of entry `entry`, sharing the entry's compiled patterns.
fn fresh_pipeline(
    templates: &[Result<EventPipeline, String>],
    entry: usize,
) -> Result<EventPipeline, String> {
    match &templates[entry] {
        Ok(template) => Ok(template.fresh()),
        Err(err) => Err(err.clone()),
    }
}

/// Whether `o` is an older file of an `auto_removal` entry (a newer match is tailed), read to
/// its end, with nothing pending and its writer quiet.
fn superseded_and_read(o: &Open, settings: &TailerSettings, newest: &[Option<PathBuf>]) -> bool {
    settings.entries[o.entry].auto_removal
        && !o.file.is_detached()
        && newest[o.entry]
            .as_deref()
            .is_some_and(|newest| newest != o.file.path())
        && o.file.pending_bytes() == 0
        && !o.pipeline.has_pending()
        && o.stalled.is_empty()
        && o.last_line_at.elapsed() >= MULTI_LINE_IDLE
        && std::fs::metadata(o.file.path()).is_ok_and(|m| m.len() == o.file.offset())
}

/// Deletes an `auto_removal` file now that all of it is delivered, if it is still the same file
/// and did not grow; a file that grew is tailed again from where it ended.
fn remove_delivered(
    settings: &TailerSettings,
    templates: &[Result<EventPipeline, String>],
    removal: Removal,
    open: &mut Vec<Open>,
    next_key: &mut u64,
    links: &TailerLinks,
) {
    let Some(name) = removal.path.file_name() else {
        return;
    };
    let dir = removal.path.parent().unwrap_or_else(|| Path::new("."));
    // The directory by a descriptor, its last component not followed, and the file by its
    // entry in it, not followed either: what is deleted is the very file that was read, even
    // if someone swapped a directory for a link since.
    let stat = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .and_then(|fd| {
        rustix::fs::statat(&fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map(|st| (fd, st))
    });
    let Ok((dir_fd, stat)) = stat else {
        return;
    };
    let regular =
        rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::RegularFile;
    if !regular || (stat.st_dev, stat.st_ino) != (removal.identity.device, removal.identity.inode) {
        return;
    }
    if stat.st_size as u64 == removal.end {
        match rustix::fs::unlinkat(&dir_fd, name, rustix::fs::AtFlags::empty()) {
            Ok(()) => {
                info!(file = %crate::telemetry::shown(&removal.path), "auto_removal: deleted after CloudWatch acknowledged all of it")
            }
            Err(err) => {
                warn!(file = %crate::telemetry::shown(&removal.path), "auto_removal: cannot delete: {err}")
            }
        }
        return;
    }
    warn!(file = %crate::telemetry::shown(&removal.path), "auto_removal: not deleted, it grew after it was read; reading on");
    let at = FileCheckpoint {
        path: removal.path,
        offset: removal.end,
        identity: Some(removal.identity),
    };
    open_at(
        settings,
        templates,
        removal.entry,
        at,
        open,
        next_key,
        links,
    );
}

/// Opens a file of entry `entry` at a checkpoint (from 0 if the file is not the one the
/// checkpoint names any more) and starts tailing it; false, logged, when it cannot be opened.
fn open_at(
    settings: &TailerSettings,
    templates: &[Result<EventPipeline, String>],
    entry: usize,
    at: FileCheckpoint,
    open: &mut Vec<Open>,
    next_key: &mut u64,
    links: &TailerLinks,
) -> bool {
    let config = &settings.entries[entry];
    let framing = Framing::for_encoding(config.encoding);
    let file = TailedFile::open_framed(
        &at.path,
        at.offset,
        at.identity,
        super::line_reader::DEFAULT_CHUNK_BYTES,
        framing.max_raw_line(settings.max_event_bytes),
        framing,
    );
    match (file, fresh_pipeline(templates, entry)) {
        (Ok(file), Ok(pipeline)) => {
            info!(file = %crate::telemetry::shown(&at.path), offset = file.offset(), "tailing");
            let destination = Arc::new(destination(config, &at.path));
            add(
                open,
                next_key,
                entry,
                file,
                at.path,
                false,
                pipeline,
                destination,
                links,
            );
            true
        }
        (Err(err), _) => {
            warn!(file = %crate::telemetry::shown(&at.path), "cannot open: {err}");
            false
        }
        (_, Err(err)) => {
            warn!(file = %crate::telemetry::shown(&at.path), "{err}");
            false
        }
    }
}

/// Closes the descriptors of the longest-idle files once `limit` are open (discovery opens no
/// more than that, and waits for the room this makes); each is
/// reopened when an event names it or at the next rescan. Detached files stay open. A partial
/// line and a pending multi-line event live in the file's reader and pipeline, not in its
/// descriptor, so they do not keep the file open (they did: a glob over thousands of one-line
/// files kept every one of them open, and 256 files with partial lines kept all others out).
fn close_idle(open: &mut [Open], limit: usize, budget: &ByteBudget) -> Closed {
    let descriptors = open.iter().filter(|o| !o.file.is_closed()).count();
    if descriptors < limit {
        return Closed::default();
    }
    // Close down to three quarters of the limit, so the next few new files do not each cost a
    // sort of every open file.
    let excess = descriptors - limit * 3 / 4;
    let mut waits_for_room = None;
    let mut idle: Vec<usize> = (0..open.len())
        .filter(|&i| {
            let o = &open[i];
            if o.file.is_closed() || o.file.is_detached() {
                return false;
            }
            // A file paused for its destination's room may not be read to its end: closed, its
            // unread tail would be lost if it were deleted (rotated and compressed) meanwhile.
            let paused = !o.stalled.is_empty()
                || o.share.stalled_files() > 0
                || !budget.would_allow(&o.share);
            if paused {
                waits_for_room.get_or_insert(i);
            }
            !paused
        })
        .collect();
    idle.sort_by_key(|&i| open[i].last_line_at);
    let mut closed = 0;
    for i in idle {
        if closed == excess {
            break;
        }
        if open[i].file.close() {
            closed += 1;
        }
    }
    let short = closed < excess;
    if short && let Some(i) = waits_for_room {
        // Room given back wakes the tailer, which then closes what it could not now.
        budget.has_room(&open[i].share);
    }
    Closed { closed, short }
}

/// What [`close_idle`] did.
#[derive(Debug, Default, Clone, Copy)]
struct Closed {
    /// Descriptors closed.
    closed: usize,
    /// Fewer than it wanted: files paused for room kept theirs.
    short: bool,
}

/// Opens the files the patterns select that are not open yet, while fewer than
/// [`MAX_OPEN_FILES`] descriptors are open. Returns whether some were left for lack of room
/// (the caller reads the new ones, closes the idle, and calls again once it closed some).
#[allow(clippy::too_many_arguments)]
fn discover(
    settings: &mut TailerSettings,
    templates: &[Result<EventPipeline, String>],
    finished: &FinishedFiles,
    patterns: &[Pattern],
    newest: &mut [Option<PathBuf>],
    open: &mut Vec<Open>,
    next_key: &mut u64,
    links: &TailerLinks,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut descriptors = open.iter().filter(|o| !o.file.is_closed()).count();
    let mut left = false;
    let mut attached: HashSet<PathBuf> = open
        .iter()
        .filter(|o| !o.file.is_detached())
        .map(|o| o.file.path().to_owned())
        .collect();
    let mut inodes: HashSet<(u64, u64)> = open
        .iter()
        .map(|o| (o.file.identity().device, o.file.identity().inode))
        .collect();
    for (entry, pattern) in patterns.iter().enumerate() {
        let selected = pattern.discover_until(&links.stop);
        newest[entry] = selected.first().map(|f| f.path.clone());
        for found in selected {
            if attached.contains(&found.path) {
                continue;
            }
            // A rotated file renamed to a name the glob also matches is the same file: reading
            // it again from 0 would send it twice.
            let meta = std::fs::metadata(&found.path).ok();
            if let Some(meta) = &meta
                && inodes.contains(&(meta.dev(), meta.ino()))
            {
                continue;
            }
            if descriptors >= MAX_OPEN_FILES {
                left = true;
                break;
            }
            // A checkpoint loaded at start applies to the first opening only, and is kept until
            // an opening succeeds: after a failed one (EACCES, EMFILE, EIO) the next rescan must
            // still go on from it rather than send the file again from 0. A file read to its
            // end under its old name goes on from there (if its head still matches).
            let checkpoint = settings.checkpoints.get(&found.path).cloned().or_else(|| {
                let (identity, end) = finished.get(meta.as_ref()?.dev(), meta.as_ref()?.ino())?;
                Some(FileCheckpoint {
                    path: found.path.clone(),
                    offset: end,
                    identity: Some(identity),
                })
            });
            let checkpoint = checkpoint.as_ref();
            let config = &settings.entries[entry];
            let pipeline = match fresh_pipeline(templates, entry) {
                Ok(pipeline) => pipeline,
                Err(err) => {
                    warn!(file = %crate::telemetry::shown(&found.path), "{err}");
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
                    settings.checkpoints.remove(&found.path);
                    info!(file = %crate::telemetry::shown(&found.path), offset = file.offset(), "tailing");
                    descriptors += 1;
                    attached.insert(found.path.clone());
                    inodes.insert((file.identity().device, file.identity().inode));
                    let destination = Arc::new(destination(config, &found.path));
                    add(
                        open,
                        next_key,
                        entry,
                        file,
                        found.path,
                        false,
                        pipeline,
                        destination,
                        links,
                    );
                }
                Err(err) => {
                    warn!(file = %crate::telemetry::shown(&found.path), "cannot open: {err}")
                }
            }
        }
    }
    left
}

/// Registers an opened file with the checkpointer and starts polling it.
#[allow(clippy::too_many_arguments)]
fn add(
    open: &mut Vec<Open>,
    next_key: &mut u64,
    entry: usize,
    file: TailedFile,
    path: PathBuf,
    rotated: bool,
    pipeline: EventPipeline,
    destination: Arc<Destination>,
    links: &TailerLinks,
) {
    let key = *next_key;
    *next_key += 1;
    let _ = links.checkpoints.send(CheckpointMessage::Register {
        file: key,
        path,
        identity: file.identity(),
        offset: file.offset(),
        rotated,
    });
    open.push(Open {
        share: links.budget.share(&destination),
        stalled: Vec::new(),
        held: 0,
        told_identity: file.identity(),
        last_line_at: Instant::now(),
        key,
        entry,
        hot: true,
        attention: true,
        path_hash: path_hash(file.path()),
        file: Box::new(file),
        pipeline: Box::new(pipeline),
        destination,
    });
}

/// At start: finds the older files whose tail was not delivered before the last stop (rotated
/// while cwlite was down, or while their last batches were in flight) by their identity, and
/// reads each from its checkpoint to its end. A rotated checkpoint whose file is gone is closed.
fn resume_rotated(
    settings: &mut TailerSettings,
    templates: &[Result<EventPipeline, String>],
    patterns: &[Pattern],
    open: &mut Vec<Open>,
    next_key: &mut u64,
    links: &TailerLinks,
) {
    use std::os::unix::fs::MetadataExt;
    let mut candidates: Vec<(FileCheckpoint, bool)> = std::mem::take(&mut settings.rotated)
        .into_iter()
        .map(|c| (c, true))
        .collect();
    // A path's own checkpoint whose file was renamed away while cwlite was down (the path
    // names another file now, or nothing yet).
    for checkpoint in settings.checkpoints.values() {
        if let Some(identity) = checkpoint.identity
            && !std::fs::metadata(&checkpoint.path)
                .is_ok_and(|m| (m.dev(), m.ino()) == (identity.device, identity.inode))
        {
            candidates.push((checkpoint.clone(), false));
        }
    }
    // A crash between writing a rotated checkpoint and the path's can leave both naming one
    // file: resume it once, from the further position.
    candidates.sort_by_key(|(c, _)| {
        c.identity
            .map(|id| (id.device, id.inode, std::cmp::Reverse(c.offset)))
    });
    candidates.dedup_by_key(|(c, _)| c.identity.map(|id| (id.device, id.inode)));
    for (checkpoint, from_rotated) in candidates {
        let Some(identity) = checkpoint.identity else {
            continue;
        };
        let entry = patterns.iter().position(|p| p.matches(&checkpoint.path));
        let found = locate(&checkpoint.path, identity).filter(|found| *found != checkpoint.path);
        let resumed = match (entry, &found) {
            (Some(entry), Some(found)) => {
                let config = &settings.entries[entry];
                let framing = Framing::for_encoding(config.encoding);
                let file = TailedFile::open_rotated(
                    found,
                    checkpoint.offset,
                    identity,
                    super::line_reader::DEFAULT_CHUNK_BYTES,
                    framing.max_raw_line(settings.max_event_bytes),
                    framing,
                );
                match (file, fresh_pipeline(templates, entry)) {
                    (Ok(Some(file)), Ok(pipeline)) => {
                        info!(file = %crate::telemetry::shown(found), path = %crate::telemetry::shown(&checkpoint.path), offset = checkpoint.offset, "resuming the undelivered tail of a rotated file");
                        let destination = Arc::new(destination(config, &checkpoint.path));
                        add(
                            open,
                            next_key,
                            entry,
                            file,
                            checkpoint.path.clone(),
                            true,
                            pipeline,
                            destination,
                            links,
                        );
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !resumed && from_rotated {
            info!(path = %crate::telemetry::shown(&checkpoint.path), offset = checkpoint.offset, "a rotated file with an undelivered tail is gone; its checkpoint is dropped");
            // Registered and finished at once: the checkpointer removes its checkpoint.
            let key = *next_key;
            *next_key += 1;
            let _ = links.checkpoints.send(CheckpointMessage::Register {
                file: key,
                path: checkpoint.path.clone(),
                identity,
                offset: checkpoint.offset,
                rotated: true,
            });
            let _ = links.checkpoints.send(CheckpointMessage::Finished {
                file: key,
                end: checkpoint.offset,
            });
        }
    }
}

/// At start: reads on from its checkpoint every file whose checkpoint stops short of its end
/// but that discovery will not select, because a newer match took its place under a
/// newest-only glob (`app-2026-12-01.log` once `app-2026-12-02.log` exists): what was
/// appended to it while cwlite was stopped, or read but not acknowledged at the stop (an
/// outage, batches in flight), is delivered before it is forgotten, across stops, `kill -9`,
/// reloads and pipeline restarts alike. The file is then followed as it would have been had
/// cwlite run all along (and removed by `auto_removal` once superseded and delivered).
fn resume_superseded(
    settings: &mut TailerSettings,
    templates: &[Result<EventPipeline, String>],
    patterns: &[Pattern],
    open: &mut Vec<Open>,
    next_key: &mut u64,
    links: &TailerLinks,
) {
    use std::os::unix::fs::MetadataExt;
    let selected: HashSet<PathBuf> = patterns
        .iter()
        .flat_map(|p| p.discover().into_iter().map(|f| f.path))
        .collect();
    let attached: HashSet<PathBuf> = open.iter().map(|o| o.file.path().to_owned()).collect();
    let mut behind: Vec<(usize, FileCheckpoint)> = Vec::new();
    for checkpoint in settings.checkpoints.values() {
        // Checkpoints without an identity (imported from the stock agent) cannot be matched
        // to their file safely; they apply when discovery selects their path.
        let Some(identity) = checkpoint.identity else {
            continue;
        };
        if selected.contains(&checkpoint.path) || attached.contains(&checkpoint.path) {
            continue;
        }
        // The first entry that matches is the file's, as in discovery; a publish_multi_logs
        // entry selects every match already.
        let Some(entry) = patterns
            .iter()
            .position(|p| p.matches(&checkpoint.path))
            .filter(|&entry| !patterns[entry].publish_multi_logs)
        else {
            continue;
        };
        let short = std::fs::metadata(&checkpoint.path).is_ok_and(|m| {
            (m.dev(), m.ino()) == (identity.device, identity.inode) && m.len() > checkpoint.offset
        });
        if short {
            behind.push((entry, checkpoint.clone()));
        }
    }
    behind.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    for (entry, checkpoint) in behind {
        info!(file = %crate::telemetry::shown(&checkpoint.path), offset = checkpoint.offset, "a newer file is the newest match; this one is read on from its checkpoint first");
        let path = checkpoint.path.clone();
        if open_at(
            settings, templates, entry, checkpoint, open, next_key, links,
        ) {
            settings.checkpoints.remove(&path);
        }
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What became of a file's hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandOn {
    /// Everything went to the shipper.
    Done,
    /// Some chunks wait in the file's `stalled` for room in its destination's share.
    Stalled,
    /// The shipper is gone: the tailer must stop.
    Stop,
}

/// Sends the outputs on, events in chunks; chunks its destination has no room for wait in
/// the file's `stalled`, after any that wait already (a file's events keep their order).
fn hand_on(tailed: &mut Open, outputs: Outputs, links: &TailerLinks) -> HandOn {
    for skipped in &outputs.skipped {
        Telemetry::bump(&links.telemetry.tailer.events_skipped, 1);
        let _ = links.checkpoints.send(CheckpointMessage::Ack {
            file: tailed.key,
            start: skipped.start_offset,
            end: skipped.end_offset,
        });
    }
    let chunks = handoff_chunks(outputs.events);
    if tailed.stalled.is_empty() {
        // The usual case: the pass's chunks are the list, nothing waits before them.
        tailed.stalled = chunks;
        send_waiting(tailed, links, false)
    } else {
        tailed.stalled.extend(chunks);
        send_waiting(tailed, links, true)
    }
}

/// Hands on the file's waiting chunks, oldest first, while its destination has room.
fn hand_on_stalled(tailed: &mut Open, links: &TailerLinks) -> HandOn {
    if tailed.stalled.is_empty() {
        return HandOn::Done;
    }
    send_waiting(tailed, links, true)
}

/// Sends `tailed.stalled` while there is room; `was_stalled` says whether the file counted
/// as stalled in its share before, so the share's count changes only when that does.
fn send_waiting(tailed: &mut Open, links: &TailerLinks, was_stalled: bool) -> HandOn {
    let mut sent = 0;
    let mut outcome = HandOn::Done;
    for chunk in &mut tailed.stalled {
        let bytes = chunk.iter().map(LogEvent::budget_bytes).sum();
        if !links.budget.try_acquire(&tailed.share, bytes) {
            outcome = HandOn::Stalled;
            break;
        }
        let events = std::mem::take(chunk);
        sent += 1;
        let count = events.len() as u64;
        Telemetry::bump(&links.telemetry.tailer.events_read, count);
        Telemetry::bump(&links.telemetry.queued_events, count);
        let message = TailMessage::Events {
            destination: tailed.destination.clone(),
            events,
            emf: crate::event::Emf::Detect,
        };
        // The shipper always takes messages while it runs; a closed channel means it is gone.
        if links.events.blocking_send(message).is_err() {
            outcome = HandOn::Stop;
            break;
        }
    }
    tailed.stalled.drain(..sent);
    let stalled = !tailed.stalled.is_empty();
    if !stalled {
        // A pass of many chunks left a long vector of chunks behind.
        tailed.stalled = Vec::new();
    }
    if stalled != was_stalled {
        tailed.share.set_stalled(stalled);
    }
    outcome
}

/// Cuts a pass's events into hand-off chunks of at most [`MAX_EVENTS_PER_HANDOFF`], in order.
///
/// The vector that holds them is the first chunk: cut from the back, each event beyond it is
/// moved once, in one block copy per chunk (cutting from the front would move the rest again
/// for every chunk).
fn handoff_chunks(mut events: Vec<LogEvent>) -> Vec<Vec<LogEvent>> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut chunks = Vec::with_capacity(events.len().div_ceil(MAX_EVENTS_PER_HANDOFF));
    if events.len() > MAX_EVENTS_PER_HANDOFF {
        while events.len() > MAX_EVENTS_PER_HANDOFF {
            let last = (events.len() - 1) / MAX_EVENTS_PER_HANDOFF * MAX_EVENTS_PER_HANDOFF;
            chunks.push(events.split_off(last));
        }
        // The queue bounds events, not capacity: a pass of 500,000 two-byte lines must not
        // leave its first chunk holding room for all of them.
        events.shrink_to_fit();
    }
    chunks.push(events);
    chunks.reverse();
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plugins/inputs/logfile/logfile.go`, `FindLogSrc`: with `publish_multi_logs`, a named
    /// group gets streams `<entry stream>_<path, / as _>` (the entry's stream is empty when it
    /// has none: `__var_log_app.log`), and no group makes the group the path, characters
    /// CloudWatch refuses as `_`.
    #[test]
    fn publish_multi_logs_names_streams_and_groups_as_the_stock_agent() {
        let named = |stream: &str| {
            let mut config = FileConfig::plain("/var/log/*.log", "g", stream);
            config.publish_multi_logs = true;
            destination(&config, Path::new("/var/log/app 1.log"))
        };
        assert_eq!(named("").stream, "__var_log_app_1.log");
        assert_eq!(named("web").stream, "web__var_log_app_1.log");
        let mut config = FileConfig::plain("/var/log/*.log", "unused", "web");
        config.publish_multi_logs = true;
        config.log_group_name = LogGroupName::FromEachFilePath;
        let each = destination(&config, Path::new("/var/log/app 1.log"));
        assert_eq!(
            (each.group.as_str(), each.stream.as_str()),
            ("/var/log/app_1.log", "web")
        );
    }

    #[test]
    fn names_longer_than_cloudwatch_takes_are_fitted_stably_and_stay_apart() {
        assert_eq!(MAX_NAME_CHARS, 512);
        let short = "host_var_log_app.log";
        assert_eq!(fit_name(short), short);
        let exact = "x".repeat(512);
        assert_eq!(fit_name(&exact), exact.as_str());
        let deep = |file: &str| format!("host_{}_{file}", "very_deep_directory_".repeat(40));
        let (a, b) = (
            fit_name(&deep("a.log")).into_owned(),
            fit_name(&deep("b.log")).into_owned(),
        );
        assert_eq!(a.chars().count(), 512);
        assert_eq!(b.chars().count(), 512);
        assert_ne!(a, b);
        assert!(
            a.starts_with("host_very_deep") && a.ends_with("_a.log"),
            "{a}"
        );
        assert_eq!(
            a,
            fit_name(&deep("a.log")).as_ref(),
            "the same name every time"
        );
        let wide = "é".repeat(600);
        assert_eq!(fit_name(&wide).chars().count(), 512);
    }

    #[test]
    fn a_pass_is_handed_on_in_order_in_chunks_of_at_most_the_handoff_limit() {
        let event = |n: u64| LogEvent {
            timestamp_ms: 0,
            message: crate::tail::multiline::RawEvent {
                parts: smallvec::smallvec![bytes::Bytes::from_static(b"x")],
                len: 1,
                start_offset: n,
                end_offset: n + 1,
            },
            file: 3,
        };
        let max = MAX_EVENTS_PER_HANDOFF;
        for len in [0, 1, max - 1, max, max + 1, 2 * max, 3 * max + 7] {
            let chunks = handoff_chunks((0..len as u64).map(event).collect());
            let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
            let mut expected = vec![max; len / max];
            if len % max != 0 {
                expected.push(len % max);
            }
            assert_eq!(sizes, expected, "{len} events");
            let order: Vec<u64> = chunks
                .iter()
                .flatten()
                .map(|e| e.message.start_offset)
                .collect();
            assert_eq!(order, (0..len as u64).collect::<Vec<_>>(), "{len} events");
        }
        // The pass's vector had room for far more: its first chunk keeps none of that.
        let mut pass = Vec::with_capacity(100 * max);
        pass.extend((0..2 * max as u64 + 1).map(event));
        let chunks = handoff_chunks(pass);
        assert!(chunks.iter().all(|c| c.capacity() <= max));
    }

    #[test]
    fn a_burst_of_writes_pauses_the_event_thread_once_per_wake_and_a_lone_write_never() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut bursts = WriteBursts::default();
        // A lone write, and one a second later: handed on at once.
        assert_eq!(bursts.written(at(0)), None);
        assert_eq!(bursts.written(at(1000)), None);
        // The next write 2 ms later is a burst: pause.
        assert_eq!(bursts.written(at(1002)), Some(WRITE_BURST_PAUSE));
        bursts.resumed(at(1027));
        // What was read at the end of the pause is that wake's: no second pause.
        assert_eq!(bursts.written(at(1027)), None);
        assert_eq!(bursts.written(at(1027)), None);
        // A new wake while the writes go on pauses again.
        assert_eq!(bursts.written(at(1035)), Some(WRITE_BURST_PAUSE));
        bursts.resumed(at(1060));
        // The burst ended: the next write, long after, goes at once.
        assert_eq!(bursts.written(at(1500)), None);
    }

    #[test]
    fn an_event_mentions_exactly_the_paths_it_named() {
        let mentions = |changed: &Changed, path: &str| {
            let path = Path::new(path);
            changed.named().mentions(path_hash(path), || path)
        };
        let mut changed = Changed::default();
        assert!(!mentions(&changed, "/var/log/a.log"));
        changed.paths.insert(PathBuf::from("/var/log/a.log"));
        changed.paths.insert(PathBuf::from("/srv/b.log"));
        assert!(mentions(&changed, "/var/log/a.log"));
        assert!(mentions(&changed, "/srv/b.log"));
        assert!(
            !mentions(&changed, "/srv/a.log"),
            "same name, other directory"
        );
        assert!(!mentions(&changed, "/var/log/b.log"));
        for i in 0..MAX_NAMED_HASHES {
            changed.paths.insert(PathBuf::from(format!("/d/{i}.log")));
        }
        assert!(mentions(&changed, "/d/63.log"), "many named: looked up");
        assert!(mentions(&changed, "/srv/b.log"));
        assert!(!mentions(&changed, "/d/64.log"));
    }

    /// Descriptors this process holds on files under `dir`.
    fn open_under(dir: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// A tailer thread over one entry, and its ends of the links.
    struct Tailer {
        thread: std::thread::JoinHandle<()>,
        events: tokio::sync::mpsc::Receiver<TailMessage>,
        changed: Arc<ChangedPaths>,
        wake: crossbeam_channel::Sender<()>,
        stop: Arc<AtomicBool>,
    }

    impl Tailer {
        fn start(file_path: &str, file_events: bool, queue: usize) -> Tailer {
            let entry = FileConfig {
                publish_multi_logs: true,
                ..FileConfig::plain(file_path, "g", "s")
            };
            let (events_tx, events) = tokio::sync::mpsc::channel(queue);
            let (checkpoints_tx, _checkpoints_rx) = tokio::sync::mpsc::unbounded_channel();
            let (wake, wake_rx) = crossbeam_channel::bounded(1);
            let (_delivered_tx, delivered_rx) = crossbeam_channel::unbounded();
            let stop = Arc::new(AtomicBool::new(false));
            let changed = Arc::new(ChangedPaths::default());
            let links = TailerLinks {
                events: events_tx,
                checkpoints: checkpoints_tx,
                budget: Arc::new(ByteBudget::new(1 << 30)),
                stop: stop.clone(),
                wake: wake_rx,
                changed: changed.clone(),
                delivered: delivered_rx,
                telemetry: Arc::new(Telemetry::default()),
                file_events,
            };
            let settings = TailerSettings {
                entries: vec![entry],
                checkpoints: HashMap::new(),
                rotated: Vec::new(),
                max_event_bytes: 1 << 20,
            };
            let thread = std::thread::spawn(move || run(settings, links));
            Tailer {
                thread,
                events,
                changed,
                wake,
                stop,
            }
        }

        /// The messages of the next event handed on, waiting at most `within`.
        fn next_messages(&mut self, within: Duration) -> Vec<String> {
            let until = Instant::now() + within;
            loop {
                if let Ok(TailMessage::Events { events, .. }) = self.events.try_recv() {
                    return events
                        .iter()
                        .map(|e| String::from_utf8_lossy(&e.message.joined()).into_owned())
                        .collect();
                }
                assert!(
                    Instant::now() < until,
                    "nothing handed on within {within:?}"
                );
                // Polling the channel; the deadline decides failure.
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        fn stop(self) {
            self.stop.store(true, Ordering::Relaxed);
            let _ = self.wake.try_send(());
            self.thread.join().unwrap();
        }
    }

    /// The event naming a truncation may be the only one for the new content written with it:
    /// the truncated file is read again next pass, not at the rescan a minute later.
    #[test]
    fn a_truncation_and_its_new_content_in_one_event_are_both_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old line one\nold line two\n").unwrap();
        let mut tailer = Tailer::start(&path.display().to_string(), true, 16);
        let mut old = Vec::new();
        while old.is_empty() {
            old.extend(tailer.next_messages(Duration::from_secs(20)));
        }
        assert_eq!(old[0], "old line one");
        std::fs::write(&path, "new\n").unwrap();
        tailer.changed.record(std::slice::from_ref(&path), false);
        let _ = tailer.wake.try_send(());
        let mut seen = Vec::new();
        // Well within RESCAN_INTERVAL_WITH_EVENTS: only the pass after the truncation reads it.
        while !seen.iter().any(|m| m == "new") {
            seen.extend(tailer.next_messages(Duration::from_secs(20)));
        }
        assert!(RESCAN_INTERVAL_WITH_EVENTS > Duration::from_secs(40));
        tailer.stop();
    }

    /// A directory of `count` files `f0000.log`, ... each holding the one line `line <i>`.
    fn one_line_files(count: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..count {
            std::fs::write(
                dir.path().join(format!("f{i:04}.log")),
                format!("line {i}\n"),
            )
            .unwrap();
        }
        dir
    }

    /// With file-system events the tailer sleeps until an event, the rescan, or the first
    /// deadline of a file that needs attention (or [`MAX_SLEEP`]). A hundred files whose one
    /// line waits as a pending multi-line event give it those deadlines, found through the
    /// roster rather than by walking every file: all of them go out at the idle flush.
    #[test]
    fn pending_events_of_many_files_go_out_at_their_idle_deadline_with_file_events() {
        const FILES: usize = 100;
        let dir = one_line_files(FILES);
        // Before the tailer's longest sleep ends: a deadline it missed would only be noticed
        // then.
        let deadline = Instant::now() + MULTI_LINE_IDLE + (MAX_SLEEP - MULTI_LINE_IDLE) / 2;
        let mut tailer = Tailer::start(&format!("{}/*.log", dir.path().display()), true, FILES);
        let mut seen = Vec::new();
        while seen.len() < FILES {
            seen.extend(tailer.next_messages(deadline.saturating_duration_since(Instant::now())));
        }
        seen.sort();
        let mut want: Vec<String> = (0..FILES).map(|i| format!("line {i}")).collect();
        want.sort();
        assert_eq!(seen, want);
        tailer.stop();
    }

    /// A glob over three times [`MAX_OPEN_FILES`] one-line files. Each line stays a pending
    /// multi-line event until the idle flush, and that used to keep its file open; discovery
    /// also opened every match at once. Now the tailer never holds more than the limit, and
    /// every line still goes out.
    #[test]
    fn a_glob_over_many_one_line_files_never_holds_more_than_the_limit_open() {
        const FILES: usize = 3 * MAX_OPEN_FILES;
        let dir = one_line_files(FILES);
        let Tailer {
            thread: tailer,
            events: mut events_rx,
            wake: wake_tx,
            stop,
            ..
        } = Tailer::start(&format!("{}/*.log", dir.path().display()), false, FILES);
        let until = Instant::now() + Duration::from_secs(60);
        let (mut events, mut most) = (0, 0);
        while events < FILES {
            most = most.max(open_under(dir.path()));
            while let Ok(TailMessage::Events { events: chunk, .. }) = events_rx.try_recv() {
                events += chunk.len();
            }
            assert!(Instant::now() < until, "{events} of {FILES} events");
            // Sampling the descriptor table while the tailer works; the deadline decides failure.
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.store(true, Ordering::Relaxed);
        let _ = wake_tx.try_send(());
        tailer.join().unwrap();
        assert_eq!(events, FILES);
        assert!(
            most <= MAX_OPEN_FILES,
            "{most} descriptors open at once, over {MAX_OPEN_FILES}"
        );
    }
}
