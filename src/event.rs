//! The contract between producers and shippers: what a tailer hands on and what comes back.
//!
//! Owns the plain data types that cross the boundary between `tail` (which knows nothing of AWS)
//! and `ship` (which never reads files): a log event with the file range it covers, its
//! destination, and the acknowledgement of a delivered range. No behaviour lives here.

use std::sync::Arc;

use crate::config::LogGroupClass;
use crate::tail::multiline::RawEvent;

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
    },
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

#[cfg(test)]
mod tests {
    use super::*;

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
