//! Multi-line events: consecutive lines joined into one event, as the stock agent groups them.
//!
//! Owns the start rule and the pending event. The stock default start pattern `^[\S]` is always
//! on: a line that starts with white space, or is empty, continues the current event; any other
//! line starts a new one. A configured pattern replaces the rule. The pending event is handed on
//! when the next start line arrives, or after about 5 s without a new line (the caller passes the
//! clock). An event never grows past `max_event_bytes`: the line that would overflow it starts a
//! new event instead, so nothing is dropped or cut silently. Pieces of an over-long line (from
//! the line reader) are events of their own. Parts are kept as `Bytes` slices of the read buffer;
//! joining them with `\n` happens once, when the request body is written.

use std::time::{Duration, Instant};

use bytes::Bytes;
use regex::bytes::Regex;
use smallvec::{SmallVec, smallvec};

/// The stock agent flushes a pending multi-line event after about five seconds of quiet.
pub const MULTI_LINE_IDLE: Duration = Duration::from_secs(5);

/// How a line is recognised as the start of an event.
#[derive(Debug, Clone)]
pub enum StartRule {
    /// The stock default `^[\S]` (Go's ASCII `\S`), checked on the first byte without a regex.
    NonSpace,
    /// A configured pattern (already translated from Go syntax), or the timestamp regex.
    /// Shared, not cloned, for the same reason as `TimestampFormat`'s.
    Pattern(std::sync::Arc<Regex>),
}

impl StartRule {
    /// Whether `text` starts a new event.
    pub fn is_start(&self, text: &[u8]) -> bool {
        match self {
            StartRule::NonSpace => text
                .first()
                .is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0C)),
            StartRule::Pattern(regex) => regex.is_match(text),
        }
    }
}

/// A line ready for grouping: valid UTF-8 text and its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLine {
    /// UTF-8 text without terminator.
    pub text: Bytes,
    /// File offset of the line's first byte.
    pub start_offset: u64,
    /// File offset just past the line's terminator.
    pub end_offset: u64,
    /// A piece of an over-long line, more to follow.
    pub continues: bool,
}

/// An event's lines. Most events are one line, kept inline: a heap allocation per event,
/// made by the tailer and freed by a shipper thread, cost one contended malloc-arena lock per
/// line in the bulk profile.
pub type Parts = SmallVec<[Bytes; 1]>;

/// One assembled event: its lines (to be joined with `\n`) and the file range it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The lines, in order.
    pub parts: Parts,
    /// Length of the joined message in bytes.
    pub len: usize,
    /// File offset of the first byte.
    pub start_offset: u64,
    /// File offset just past the last line.
    pub end_offset: u64,
}

impl RawEvent {
    fn new(line: TextLine) -> Self {
        Self {
            len: line.text.len(),
            parts: smallvec![line.text],
            start_offset: line.start_offset,
            end_offset: line.end_offset,
        }
    }

    /// The message as one buffer (a copy only when the event has several lines).
    pub fn joined(&self) -> Bytes {
        if self.parts.len() == 1 {
            return self.parts[0].clone();
        }
        let mut out = Vec::with_capacity(self.len);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(part);
        }
        out.into()
    }
}

/// Groups lines into events.
#[derive(Debug)]
pub struct Assembler {
    rule: StartRule,
    max_event_bytes: usize,
    pending: Option<RawEvent>,
    last_line_at: Option<Instant>,
    /// Inside the pieces of one over-long line.
    in_long_line: bool,
}

impl Assembler {
    /// An assembler with the same rule and nothing pending (the rule's compiled pattern is
    /// shared, not compiled again).
    pub fn fresh(&self) -> Self {
        Self::new(self.rule.clone(), self.max_event_bytes)
    }

    /// An assembler with `rule`, emitting events of at most `max_event_bytes`.
    pub fn new(rule: StartRule, max_event_bytes: usize) -> Self {
        Self {
            rule,
            max_event_bytes,
            pending: None,
            last_line_at: None,
            in_long_line: false,
        }
    }

    /// Adds a line; returns the events it completed (at most two: the pending one, and the line
    /// itself when it is a piece of an over-long line).
    pub fn push(&mut self, line: TextLine, now: Instant, out: &mut Vec<RawEvent>) {
        self.last_line_at = Some(now);
        if line.continues || self.in_long_line {
            // A piece of an over-long line is an event by itself; its last piece ends the run.
            out.extend(self.pending.take());
            self.in_long_line = line.continues;
            out.push(RawEvent::new(line));
            return;
        }
        // The rule matches bytes: callers hand valid UTF-8 (see `TextLine`), so there is nothing
        // to check again per line.
        let is_start = self.pending.is_none() || self.rule.is_start(&line.text);
        match &mut self.pending {
            Some(pending)
                if !is_start && pending.len + 1 + line.text.len() <= self.max_event_bytes =>
            {
                pending.len += 1 + line.text.len();
                pending.end_offset = line.end_offset;
                pending.parts.push(line.text);
            }
            _ => {
                out.extend(self.pending.take());
                self.pending = Some(RawEvent::new(line));
            }
        }
    }

    /// Hands on the pending event if no line came for `idle`.
    pub fn flush_idle(&mut self, now: Instant, idle: Duration) -> Option<RawEvent> {
        match self.last_line_at {
            Some(at) if now.duration_since(at) >= idle => self.pending.take(),
            _ => None,
        }
    }

    /// Hands on the pending event now (shutdown, file end after rotation).
    pub fn flush(&mut self) -> Option<RawEvent> {
        self.pending.take()
    }

    /// Whether an event is waiting for more lines.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Bytes of the event waiting for more lines.
    pub fn pending_bytes(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<TextLine> {
        let mut offset = 0;
        text.split_inclusive('\n')
            .map(|l| {
                let start = offset;
                offset += l.len() as u64;
                TextLine {
                    text: Bytes::copy_from_slice(l.trim_end_matches('\n').as_bytes()),
                    start_offset: start,
                    end_offset: offset,
                    continues: false,
                }
            })
            .collect()
    }

    fn assemble(rule: StartRule, text: &str, max: usize) -> Vec<String> {
        let mut assembler = Assembler::new(rule, max);
        let mut out = Vec::new();
        let now = Instant::now();
        for line in lines(text) {
            assembler.push(line, now, &mut out);
        }
        out.extend(assembler.flush());
        out.iter()
            .map(|e| String::from_utf8(e.joined().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn the_default_rule_joins_indented_and_empty_lines() {
        let text = "Exception in thread main\n  at a.b(C.java:1)\n\tat d.e(F.java:2)\n\nNext event\nThird\n";
        assert_eq!(
            assemble(StartRule::NonSpace, text, 1 << 20),
            [
                "Exception in thread main\n  at a.b(C.java:1)\n\tat d.e(F.java:2)\n",
                "Next event",
                "Third"
            ]
        );
    }

    #[test]
    fn a_continuation_first_line_still_makes_an_event() {
        assert_eq!(
            assemble(StartRule::NonSpace, "  orphan\nstart\n", 1 << 20),
            ["  orphan", "start"]
        );
    }

    #[test]
    fn a_configured_pattern_decides_what_starts_an_event() {
        let rule = StartRule::Pattern(std::sync::Arc::new(
            Regex::new(r"^\d{4}-\d{2}-\d{2}").unwrap(),
        ));
        let text = "2026-11-25 first\nnot indented but continued\n2026-11-25 second\n";
        assert_eq!(
            assemble(rule, text, 1 << 20),
            [
                "2026-11-25 first\nnot indented but continued",
                "2026-11-25 second"
            ]
        );
    }

    #[test]
    fn events_cover_their_file_range() {
        let mut assembler = Assembler::new(StartRule::NonSpace, 1 << 20);
        let mut out = Vec::new();
        for line in lines("a\n b\nc\n") {
            assembler.push(line, Instant::now(), &mut out);
        }
        assert_eq!(
            (out[0].start_offset, out[0].end_offset, out[0].len),
            (0, 5, 4)
        );
        let last = assembler.flush().unwrap();
        assert_eq!((last.start_offset, last.end_offset), (5, 7));
    }

    #[test]
    fn an_event_at_its_size_limit_continues_as_a_new_event() {
        let text = "start\n 123456789\n 123456789\n";
        // "start\n 123456789" is 16 bytes; adding the third line would make 27.
        assert_eq!(
            assemble(StartRule::NonSpace, text, 20),
            ["start\n 123456789", " 123456789"]
        );
    }

    #[test]
    fn pieces_of_an_over_long_line_are_events_of_their_own() {
        let mut assembler = Assembler::new(StartRule::NonSpace, 10);
        let mut out = Vec::new();
        let now = Instant::now();
        let piece = |text: &str, start, end, continues| TextLine {
            text: Bytes::copy_from_slice(text.as_bytes()),
            start_offset: start,
            end_offset: end,
            continues,
        };
        assembler.push(piece("head", 0, 5, false), now, &mut out);
        assembler.push(piece("xxxxxxxxxx", 5, 15, true), now, &mut out);
        assembler.push(piece(" tail", 15, 21, false), now, &mut out);
        assembler.push(piece(" more", 21, 27, false), now, &mut out);
        out.extend(assembler.flush());
        let texts: Vec<_> = out
            .iter()
            .map(|e| String::from_utf8(e.joined().to_vec()).unwrap())
            .collect();
        assert_eq!(texts, ["head", "xxxxxxxxxx", " tail", " more"]);
    }

    #[test]
    fn a_pending_event_is_flushed_after_quiet() {
        let mut assembler = Assembler::new(StartRule::NonSpace, 1 << 20);
        let mut out = Vec::new();
        let start = Instant::now();
        for line in lines("one\n two\n") {
            assembler.push(line, start, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            assembler.flush_idle(start + Duration::from_secs(4), MULTI_LINE_IDLE),
            None
        );
        let event = assembler
            .flush_idle(start + MULTI_LINE_IDLE, MULTI_LINE_IDLE)
            .unwrap();
        assert_eq!(&event.joined()[..], b"one\n two");
        assert!(!assembler.has_pending());
    }

    #[test]
    fn the_fast_default_rule_matches_the_translated_go_pattern() {
        let go = crate::config::go_regex::GoRegex::new(r"^[\S]").unwrap();
        for text in ["", " a", "\ta", "a", "\u{a0}x", "\x0Bx", "é", "\r"] {
            assert_eq!(
                StartRule::NonSpace.is_start(text.as_bytes()),
                go.is_match(text),
                "{text:?}"
            );
        }
    }
}
