//! From lines to events: decoding, multi-line grouping, timestamps, filters.
//!
//! Owns the per-file event pipeline. Each line is decoded to UTF-8 (valid UTF-8 is passed on
//! without a copy; invalid bytes become U+FFFD rather than losing the line; other encodings are
//! decoded by `encoding_rs`), grouped by the [`Assembler`], given a timestamp (the parsed
//! `timestamp_format`, else the last valid timestamp of the file, else now), optionally trimmed,
//! and filtered. Every byte range it does not turn into an event (filtered, empty) is reported as
//! a [`Skipped`] range, so the checkpoint can move past it: nothing is dropped silently, and
//! nothing blocks the checkpoint forever. Whether CloudWatch accepts an event's time is the
//! shipper's business, not this module's.
//!
//! UTF-16 files are framed on two-byte newlines by the line reader and decoded here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::line_reader::Line;
use super::multiline::{Assembler, MULTI_LINE_IDLE, RawEvent, StartRule, TextLine};
use super::timestamp::{Memo, TimestampFormat};
use crate::config::{Charset, FileConfig, FilterKind, MultiLineStart};
use crate::event::LogEvent;

/// Why a byte range produced no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// An event with an empty message (CloudWatch refuses those).
    Empty,
    /// Removed by an include or exclude filter.
    Filtered,
}

/// A byte range that produced no event, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// File offset of its first byte.
    pub start_offset: u64,
    /// File offset just past it.
    pub end_offset: u64,
    /// Why.
    pub reason: SkipReason,
}

/// What the pipeline produced from one file: events ready for a batch, in file order, and
/// the ranges to acknowledge without sending.
///
/// Events are built here as the [`LogEvent`]s the shipper batches, in the vector that is
/// handed over: an 80-byte event is written once on its way from the line to the batch, not
/// copied from one vector into the next one by one (at opt-level `s` each such copy is a
/// `rep movsq`).
#[derive(Debug, Default)]
pub struct Outputs {
    /// The tailer's key of the file fed: every event carries it.
    pub file: u64,
    /// Events to send.
    pub events: Vec<LogEvent>,
    /// Ranges that produced no event.
    pub skipped: Vec<Skipped>,
}

impl Outputs {
    /// Nothing yet from the file with key `file`.
    pub fn new(file: u64) -> Self {
        Self {
            file,
            events: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

/// A file's event pipeline.
#[derive(Debug)]
pub struct EventPipeline {
    encoding: Charset,
    assembler: Assembler,
    timestamp: Option<TimestampFormat>,
    /// What this file's last timestamp leaves for the next.
    timestamp_memo: Memo,
    trim_timestamp: bool,
    /// Shared with every file of the entry (see `fresh`).
    filters: Arc<[(FilterKind, regex::bytes::Regex)]>,
    last_timestamp_ms: Option<i64>,
    events: Vec<RawEvent>,
    max_event_bytes: usize,
}

impl EventPipeline {
    /// The pipeline for one `collect_list` entry, with events of at most `max_event_bytes`
    /// (the destination's limit, which the caller knows and `tail` does not).
    ///
    /// # Errors
    /// The timestamp format does not compile.
    pub fn new(config: &FileConfig, max_event_bytes: usize) -> Result<Self, String> {
        let timestamp = config
            .timestamp_format
            .as_deref()
            .map(|f| TimestampFormat::new(f, config.timezone))
            .transpose()?;
        let rule = match &config.multi_line_start {
            MultiLineStart::Pattern(p)
                if p.as_str() == crate::config::DEFAULT_MULTI_LINE_START_PATTERN =>
            {
                StartRule::NonSpace
            }
            MultiLineStart::Pattern(p) => StartRule::Pattern(Arc::new(p.regex().clone())),
            MultiLineStart::TimestampFormat => match &timestamp {
                Some(t) => StartRule::Pattern(t.regex().clone()),
                None => StartRule::NonSpace,
            },
        };
        Ok(Self {
            encoding: config.encoding,
            assembler: Assembler::new(rule, max_event_bytes),
            timestamp,
            timestamp_memo: Memo::default(),
            trim_timestamp: config.trim_timestamp,
            filters: config
                .filters
                .iter()
                .map(|f| (f.kind, f.expression.regex().clone()))
                .collect::<Vec<_>>()
                .into(),
            last_timestamp_ms: None,
            events: Vec::new(),
            max_event_bytes,
        })
    }

    /// A pipeline for another file of the same entry: the compiled timestamp format, start
    /// pattern and filters are shared (a glob over thousands of files compiles them once, not
    /// per file), the state is new.
    pub fn fresh(&self) -> Self {
        Self {
            encoding: self.encoding,
            assembler: self.assembler.fresh(),
            timestamp: self.timestamp.clone(),
            timestamp_memo: Memo::default(),
            trim_timestamp: self.trim_timestamp,
            filters: self.filters.clone(),
            last_timestamp_ms: None,
            events: Vec::new(),
            max_event_bytes: self.max_event_bytes,
        }
    }

    /// Feeds one line read at `now`; completed events and skips are appended to `out`.
    pub fn push(&mut self, line: Line, now: Instant, now_ms: i64, out: &mut Outputs) {
        let text = self.decode(line.bytes, line.utf8);
        let mut events = std::mem::take(&mut self.events);
        if text.len() <= self.max_event_bytes {
            let line = TextLine {
                text,
                start_offset: line.start_offset,
                end_offset: line.end_offset,
                continues: line.continues,
            };
            self.assembler.push(line, now, &mut events);
        } else {
            // Decoding grew the line past the event limit (U+FFFD for invalid bytes, a legacy
            // encoding): cut the text on character boundaries. Each piece but the last covers one
            // byte of the line, so the checkpoint reaches the line's end only when every piece
            // is delivered.
            let pieces = split_utf8(&text, self.max_event_bytes);
            let last = pieces.len() - 1;
            for (i, piece) in pieces.into_iter().enumerate() {
                let start_offset = line.start_offset + i as u64;
                let end_offset = if i == last {
                    line.end_offset
                } else {
                    start_offset + 1
                };
                let continues = i < last || line.continues;
                self.assembler.push(
                    TextLine {
                        text: piece,
                        start_offset,
                        end_offset,
                        continues,
                    },
                    now,
                    &mut events,
                );
            }
        }
        for event in events.drain(..) {
            self.finish(event, now_ms, out);
        }
        self.events = events;
    }

    /// Hands on a pending multi-line event after the idle time.
    pub fn flush_idle(&mut self, now: Instant, now_ms: i64, out: &mut Outputs) {
        if let Some(event) = self.assembler.flush_idle(now, MULTI_LINE_IDLE) {
            self.finish(event, now_ms, out);
        }
    }

    /// Hands on whatever is pending (shutdown, rotation, deletion).
    pub fn flush(&mut self, now_ms: i64, out: &mut Outputs) {
        if let Some(event) = self.assembler.flush() {
            self.finish(event, now_ms, out);
        }
    }

    /// Whether a multi-line event waits for more lines (and so for the idle flush).
    pub fn has_pending(&self) -> bool {
        self.assembler.has_pending()
    }

    /// Bytes of the multi-line event waiting for more lines.
    pub fn pending_bytes(&self) -> usize {
        self.assembler.pending_bytes()
    }

    /// How long until a pending event would be flushed for idleness.
    pub fn idle_timeout() -> Duration {
        MULTI_LINE_IDLE
    }

    /// `checked`: the line reader saw that `bytes` are valid UTF-8.
    fn decode(&self, bytes: Bytes, checked: bool) -> Bytes {
        if self.encoding.is_utf8() {
            if checked {
                return bytes;
            }
            // The one UTF-8 check of a line the reader did not check (everything after matches
            // bytes), SIMD-accelerated.
            match simdutf8::basic::from_utf8(&bytes) {
                Ok(_) => bytes,
                Err(_) => Bytes::from(String::from_utf8_lossy(&bytes).into_owned()),
            }
        } else {
            let text = self.encoding.decode(&bytes);
            // A byte-order mark opens the file's first line; it is not part of the message.
            Bytes::from(text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned())
        }
    }

    fn finish(&mut self, mut event: RawEvent, now_ms: i64, out: &mut Outputs) {
        let skip = |reason| Skipped {
            start_offset: event.start_offset,
            end_offset: event.end_offset,
            reason,
        };
        if event.len == 0 {
            out.skipped.push(skip(SkipReason::Empty));
            return;
        }
        let joined = event.joined();
        // Decoded text is valid UTF-8 by construction (`decode`); the timestamp and the filters
        // match its bytes, with no second check.
        let found = match &self.timestamp {
            Some(t) => t.find_next(&joined, now_ms, &mut self.timestamp_memo),
            None => None,
        };
        let timestamp_ms = match found {
            Some(found) => {
                self.last_timestamp_ms = Some(found.timestamp_ms);
                found.timestamp_ms
            }
            None => self.last_timestamp_ms.unwrap_or(now_ms),
        };
        let message = match (found, self.trim_timestamp) {
            (Some(found), true) => {
                // The match starts and ends on character boundaries (ASCII classes, literals of
                // whole characters); the white space after it is trimmed as text, Unicode
                // spaces included.
                let rest = String::from_utf8_lossy(&joined[found.end..]);
                let mut trimmed = Vec::with_capacity(joined.len());
                trimmed.extend_from_slice(&joined[..found.start]);
                trimmed.extend_from_slice(rest.trim_start().as_bytes());
                Some(trimmed)
            }
            _ => None,
        };
        let final_text: &[u8] = message.as_deref().unwrap_or(&joined);
        for (kind, regex) in self.filters.iter() {
            let matched = regex.is_match(final_text);
            let passes = match kind {
                FilterKind::Include => matched,
                FilterKind::Exclude => !matched,
            };
            if !passes {
                out.skipped.push(skip(SkipReason::Filtered));
                return;
            }
        }
        if let Some(trimmed) = message {
            if trimmed.is_empty() {
                return out.skipped.push(skip(SkipReason::Empty));
            }
            event.len = trimmed.len();
            event.parts = smallvec::smallvec![Bytes::from(trimmed)];
        }
        out.events.push(LogEvent {
            timestamp_ms,
            message: event,
            file: out.file,
        });
    }
}

/// Cuts valid UTF-8 `text` into pieces of at most `max` bytes, on character boundaries.
fn split_utf8(text: &Bytes, max: usize) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + max).min(text.len());
        while end > start && end < text.len() && (text[end] & 0b1100_0000) == 0b1000_0000 {
            end -= 1;
        }
        if end == start {
            end = (start + max).min(text.len());
        }
        pieces.push(text.slice(start..end));
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Filter;
    use crate::config::go_regex::GoRegex;

    const NOW_MS: i64 = 1_764_072_000_000; // 2025-11-25T12:00:00Z

    fn config() -> FileConfig {
        FileConfig::plain("/var/log/app.log", "app", "h")
    }

    fn run(config: &FileConfig, input: &[u8]) -> Outputs {
        let mut pipeline = EventPipeline::new(config, 1 << 20).unwrap();
        let mut reader = super::super::line_reader::LineReader::new(0, 1024, 1 << 20);
        let mut source = input;
        let mut out = Outputs::new(7);
        let now = Instant::now();
        while reader.fill(&mut source).unwrap() > 0 {
            while let Some(line) = reader.next_line() {
                pipeline.push(line, now, NOW_MS, &mut out);
            }
        }
        pipeline.flush(NOW_MS, &mut out);
        out
    }

    fn messages(out: &Outputs) -> Vec<String> {
        assert!(out.events.iter().all(|e| e.file == out.file));
        out.events
            .iter()
            .map(|e| String::from_utf8(e.message.joined().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_not_a_lost_line() {
        let out = run(&config(), b"ok\nbad \xff\xfe byte\n");
        assert_eq!(messages(&out), ["ok", "bad \u{fffd}\u{fffd} byte"]);
    }

    #[test]
    fn other_encodings_are_decoded() {
        let mut latin1 = config();
        latin1.encoding = Charset::Standard(encoding_rs::WINDOWS_1252);
        let out = run(&latin1, b"caf\xe9\n");
        assert_eq!(messages(&out), ["café"]);
    }

    #[test]
    fn utf16_files_are_decoded_without_their_byte_order_mark() {
        let mut utf16 = config();
        utf16.encoding = Charset::Standard(encoding_rs::UTF_16LE);
        let bytes: Vec<u8> = "\u{feff}first ✓\nsecond\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut pipeline = EventPipeline::new(&utf16, 1 << 20).unwrap();
        let mut reader = super::super::line_reader::LineReader::new(0, 1024, 1 << 20)
            .with_framing(super::super::line_reader::Framing::Utf16Le);
        let mut source: &[u8] = &bytes;
        let mut out = Outputs::new(7);
        reader.fill(&mut source).unwrap();
        while let Some(line) = reader.next_line() {
            pipeline.push(line, Instant::now(), NOW_MS, &mut out);
        }
        pipeline.flush(NOW_MS, &mut out);
        assert_eq!(messages(&out), ["first ✓", "second"]);
    }

    #[test]
    fn timestamps_come_from_the_format_else_the_last_one_else_now() {
        let mut with_format = config();
        with_format.timestamp_format = Some("%Y-%m-%d %H:%M:%S".into());
        let out = run(
            &with_format,
            b"no time yet\n2025-11-25 10:00:00 first\nno time here\n",
        );
        let times: Vec<i64> = out.events.iter().map(|e| e.timestamp_ms).collect();
        let ten = NOW_MS - 2 * 3600 * 1000;
        assert_eq!(times, [NOW_MS, ten, ten]);
    }

    #[test]
    fn trim_timestamp_removes_it_and_following_space() {
        let mut trimmed = config();
        trimmed.timestamp_format = Some("%Y-%m-%d %H:%M:%S".into());
        trimmed.trim_timestamp = true;
        assert_eq!(
            messages(&run(&trimmed, b"2025-11-25 10:00:00   hello\n")),
            ["hello"]
        );
    }

    #[test]
    fn filters_must_all_pass_and_skipped_ranges_are_reported() {
        let mut filtered = config();
        filtered.filters = vec![
            Filter {
                kind: FilterKind::Include,
                expression: GoRegex::new("ERROR|WARN").unwrap(),
            },
            Filter {
                kind: FilterKind::Exclude,
                expression: GoRegex::new("healthcheck").unwrap(),
            },
        ];
        let out = run(&filtered, b"INFO a\nERROR b\nWARN healthcheck\n");
        assert_eq!(messages(&out), ["ERROR b"]);
        let skipped: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.start_offset, s.end_offset, s.reason))
            .collect();
        assert_eq!(
            skipped,
            [(0, 7, SkipReason::Filtered), (15, 32, SkipReason::Filtered)]
        );
    }

    #[test]
    fn empty_events_are_skipped_not_sent() {
        let out = run(&config(), b"\nafter\n");
        let reasons: Vec<_> = out.skipped.iter().map(|s| s.reason).collect();
        assert_eq!(reasons, [SkipReason::Empty]);
        assert_eq!(messages(&out), ["after"]);
    }

    #[test]
    fn a_line_that_grows_past_the_limit_when_decoded_is_cut_into_valid_events() {
        // 400 invalid bytes become 400 U+FFFD, 1200 bytes of UTF-8: over a 500-byte limit.
        let mut input = vec![0xFFu8; 400];
        input.push(b'\n');
        let mut pipeline = EventPipeline::new(&config(), 500).unwrap();
        let mut reader = super::super::line_reader::LineReader::new(0, 4096, 500);
        let mut source: &[u8] = &input;
        let mut out = Outputs::new(7);
        reader.fill(&mut source).unwrap();
        while let Some(line) = reader.next_line() {
            pipeline.push(line, Instant::now(), NOW_MS, &mut out);
        }
        pipeline.flush(NOW_MS, &mut out);
        let events = &out.events;
        assert_eq!(events.len(), 3);
        assert!(
            events
                .iter()
                .all(|e| e.message.len <= 500 && std::str::from_utf8(&e.message.joined()).is_ok())
        );
        assert_eq!(events.iter().map(|e| e.message.len).sum::<usize>(), 1200);
        let ranges: Vec<(u64, u64)> = events
            .iter()
            .map(|e| (e.message.start_offset, e.message.end_offset))
            .collect();
        assert_eq!(
            ranges,
            [(0, 1), (1, 2), (2, 401)],
            "the last piece carries the line's end"
        );
    }

    #[test]
    fn every_byte_is_covered_by_an_event_or_a_skip() {
        let mut filtered = config();
        filtered.filters = vec![Filter {
            kind: FilterKind::Exclude,
            expression: GoRegex::new("drop").unwrap(),
        }];
        let input = b"keep 1\n  cont\ndrop me\n\nkeep 2\n";
        let out = run(&filtered, input);
        let mut ranges: Vec<(u64, u64)> = out
            .events
            .iter()
            .map(|e| (e.message.start_offset, e.message.end_offset))
            .chain(out.skipped.iter().map(|s| (s.start_offset, s.end_offset)))
            .collect();
        ranges.sort();
        let mut at = 0;
        for (start, end) in ranges {
            assert_eq!(start, at, "no gap and no overlap");
            at = end;
        }
        assert_eq!(at, input.len() as u64);
    }
}
