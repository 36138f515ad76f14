//! The contract between log sources and shippers: what a source hands on and what comes back.
//!
//! Owns the plain data types that cross the boundary between the sources (`tail`, `journal`,
//! `emf`, which know nothing of AWS) and `ship` (which never reads files): a log event with the
//! range of its source it covers, its destination, and the acknowledgement of a delivered range.
//!
//! Every source speaks in ranges of its own positions under a key of its own ([`SourceKind`]):
//! a tailed file in byte offsets, a journal entry list in sequence numbers (each standing for
//! one entry's cursor), a listener in nothing it could resume from. The shipper only gives
//! ranges back; what a position means is the business of the source and of `state`. No
//! behaviour lives here beyond that mapping.

use std::sync::Arc;

use crate::config::LogGroupClass;
use crate::tail::multiline::RawEvent;

/// First key of the journal sources: the tailer numbers its files from 1 up, far below.
const JOURNAL_KEYS: u64 = 1 << 62;
/// The key of every listener (EMF): what they received has no position to resume from.
pub const LISTENER_KEY: u64 = 1 << 63;

/// What a source key (`LogEvent::file`, `Ack::file`) names, and so what its positions mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A tailed file: positions are byte offsets.
    File,
    /// `journald.collect_list[i]`: positions are the sequence numbers its reader gave entries.
    Journal(usize),
    /// A listener: positions mean nothing, acknowledgements only give bytes back.
    Listener,
}

impl SourceKind {
    /// The kind of `key`.
    pub fn of(key: u64) -> Self {
        if key >= LISTENER_KEY {
            SourceKind::Listener
        } else if key >= JOURNAL_KEYS {
            SourceKind::Journal((key - JOURNAL_KEYS) as usize)
        } else {
            SourceKind::File
        }
    }

    /// The key of `journald.collect_list[entry]`.
    pub fn journal_key(entry: usize) -> u64 {
        JOURNAL_KEYS + entry as u64
    }
}

/// Where an event came from, so its acknowledgement can move the right checkpoint.
///
/// Not stored in a [`LogEvent`] (see [`LogEvent::source`]): its offsets are the message's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSource {
    /// Which tailed file (the tailer's key for it).
    pub file: u64,
    /// File offset of the event's first byte.
    pub start_offset: u64,
    /// File offset just past the event.
    pub end_offset: u64,
}

/// One event to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The message, as slices of the read buffer, and the file range it covers.
    pub message: RawEvent,
    /// Which tailed file (the tailer's key for it).
    pub file: u64,
}

impl LogEvent {
    /// Where the event came from. The range is the message's own, not a second copy of it:
    /// every event is moved from vector to vector several times between the read and the
    /// request body, and 16 bytes of 96 were the same offsets twice.
    pub fn source(&self) -> EventSource {
        EventSource {
            file: self.file,
            start_offset: self.message.start_offset,
            end_offset: self.message.end_offset,
        }
    }

    /// What the event holds against the backpressure budget: its message and the event itself.
    /// For a typical 120-byte line the event (offsets, slices) is most of the size again, so
    /// counting messages alone let a spent budget hold nearly twice its size (bulk peak RSS:
    /// 73 MB with a 32 MiB budget).
    pub fn budget_bytes(&self) -> usize {
        self.message.len + std::mem::size_of::<LogEvent>()
    }
}

/// One (group, stream) destination and what to apply to a group cwlite creates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Log group name.
    pub group: String,
    /// Log stream name.
    pub stream: String,
    /// Class for a group cwlite creates.
    pub class: Option<LogGroupClass>,
    /// Retention to set once per group.
    pub retention_days: Option<u32>,
}

/// Most events in one [`TailMessage`]: handing events over in chunks costs one channel
/// operation (and at most one wake-up) per chunk instead of per event.
pub const MAX_EVENTS_PER_HANDOFF: usize = 4096;

/// What tailers send to the shipper.
#[derive(Debug)]
pub enum TailMessage {
    /// Events of one file, in file order, for one destination (at most
    /// [`MAX_EVENTS_PER_HANDOFF`]).
    Events {
        /// Where they go.
        destination: Arc<Destination>,
        /// The events.
        events: Vec<LogEvent>,
        /// Whether the events are Embedded Metric Format.
        emf: Emf,
    },
}

/// Whether a hand-off's events are Embedded Metric Format documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emf {
    /// Each is looked at ([`is_emf`]), as the stock agent looks at tailed lines: one EMF
    /// event sends its destination as EMF from then on.
    Detect,
    /// All are (an EMF listener's): the destination is sent as EMF from now on.
    Always,
    /// None is, whatever it looks like (a journal entry, whose body is a JSON object of its
    /// fields: the stock agent does not look at them either).
    Never,
}

/// A delivered (or deliberately given up) file range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The tailer's file key.
    pub file: u64,
    /// First byte.
    pub start: u64,
    /// Just past the last byte.
    pub end: u64,
}

/// Completes when a source that runs as a task is told to stop (its `watch` turns true).
/// The guard `wait_for` returns is dropped here, so the future can cross threads.
pub async fn stop_requested(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Whether a message is an Embedded Metric Format document, by the stock agent's test
/// (`plugins/outputs/cloudwatchlogs`, `cwDest.Publish`): it starts with `{`, ends with `}` and
/// contains `"CloudWatchMetrics"`, on the raw bytes, with no parse and no trim. One such event
/// switches its destination to EMF for as long as cwlite runs.
pub fn is_emf(message: &RawEvent) -> bool {
    const MARK: &[u8] = b"\"CloudWatchMetrics\"";
    let (Some(first), Some(last)) = (message.parts.first(), message.parts.last()) else {
        return false;
    };
    if first.first() != Some(&b'{') || last.last() != Some(&b'}') {
        return false;
    }
    match &message.parts[..] {
        [one] => memchr::memmem::find(one, MARK).is_some(),
        // A multi-line event: its lines joined by newlines, as the body joins them.
        parts => {
            let joined = parts.join(&b'\n');
            memchr::memmem::find(&joined, MARK).is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(parts: &[&'static [u8]]) -> RawEvent {
        RawEvent {
            parts: parts.iter().map(|p| bytes::Bytes::from_static(p)).collect(),
            len: parts.iter().map(|p| p.len()).sum(),
            start_offset: 0,
            end_offset: 0,
        }
    }

    #[test]
    fn an_emf_message_is_a_brace_to_brace_text_naming_cloudwatch_metrics() {
        let emf = br#"{"_aws":{"CloudWatchMetrics":[]},"x":1}"#;
        assert!(is_emf(&raw(&[emf])));
        assert!(!is_emf(&raw(&[b"{\"_aws\":{\"Cloud", b"Watch\"}}"])));
        assert!(is_emf(&raw(&[
            b"{\"_aws\":",
            b"{\"CloudWatchMetrics\":[]}}"
        ])));
        // The stock test trims nothing and parses nothing.
        assert!(!is_emf(&raw(&[b" {\"CloudWatchMetrics\":1}"])));
        assert!(!is_emf(&raw(&[b"{\"CloudWatchMetrics\":1} "])));
        assert!(!is_emf(&raw(&[b"{\"Metrics\":1}"])));
        assert!(!is_emf(&raw(&[b"plain CloudWatchMetrics line"])));
        assert!(is_emf(&raw(&[b"{not json \"CloudWatchMetrics\"}"])));
        assert!(!is_emf(&raw(&[])));
    }

    #[test]
    fn source_keys_name_files_journal_entries_and_listeners_apart() {
        assert_eq!(SourceKind::of(1), SourceKind::File);
        assert_eq!(SourceKind::of(1 << 40), SourceKind::File);
        assert_eq!(
            SourceKind::of(SourceKind::journal_key(0)),
            SourceKind::Journal(0)
        );
        assert_eq!(
            SourceKind::of(SourceKind::journal_key(7)),
            SourceKind::Journal(7)
        );
        assert_eq!(SourceKind::of(LISTENER_KEY), SourceKind::Listener);
    }

    #[test]
    fn an_events_source_is_its_messages_range_in_its_file() {
        let event = LogEvent {
            timestamp_ms: 1,
            message: RawEvent {
                parts: smallvec::smallvec![bytes::Bytes::from_static(b"x")],
                len: 1,
                start_offset: 10,
                end_offset: 12,
            },
            file: 7,
        };
        assert_eq!(
            event.source(),
            EventSource {
                file: 7,
                start_offset: 10,
                end_offset: 12,
            }
        );
    }

    #[test]
    fn an_event_stays_within_80_bytes() {
        // Every event is moved between vectors several times, and counted against the byte
        // budget by this size (`budget_bytes`): growing it costs throughput and memory.
        assert!(std::mem::size_of::<LogEvent>() <= 80);
    }
}
