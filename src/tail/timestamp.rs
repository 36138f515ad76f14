//! `timestamp_format`: the stock agent's strftime-like directives, turned into a regex that finds
//! the timestamp anywhere in an event, and a parser for what it found.
//!
//! Owns the directive table of the stock agent (reference §4.6), including its quirks: `%B`
//! matches exactly seven word characters, `%m` and `%d` accept a leading space, a leading
//! `\s{0,1}` is dropped, fractions are cut or padded to milliseconds. A year-less timestamp gets
//! the current year, or the previous one when that would put it more than 30 days ahead. Times
//! without an offset are read in the configured zone (`Local` or `UTC`).
//!
//! The table is written once, as [`Atom`]s; the regex and a direct parser for a timestamp at
//! the start of the text are both generated from it, so they cannot disagree.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use regex::bytes::Regex;
use smallvec::SmallVec;

use crate::config::Timezone;

/// A compiled `timestamp_format`.
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    /// Shared, not cloned: a cloned `Regex` gets its own match caches, which a glob over
    /// thousands of files would multiply.
    regex: std::sync::Arc<Regex>,
    /// The same pattern as ops for [`parse_at_start`], tried first: most logs begin with their
    /// timestamp, and reading it directly costs a fraction of the regex's captures (which were
    /// a quarter of the bulk profile, even anchored on a one-pass DFA).
    ops: std::sync::Arc<[Op]>,
    /// The literal bytes of the format, which the ops point into.
    literals: std::sync::Arc<[u8]>,
    /// For each capture group after the whole match, which directive it holds.
    fields: Vec<char>,
    zone: TimeZone,
    /// `zone` as a fixed offset when it is one (UTC, or a system zone without rules).
    fixed: Option<jiff::tz::Offset>,
    /// Where the seconds start, when a [`Memo`] applies to this format.
    split: Option<Split>,
}

/// Which bytes an [`Atom`] takes. Go's `\d`, `\w` and `\s` are ASCII, and so are these (Rust's
/// would also take other scripts' digits and letters, and make the automata larger and slower).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit,
    Word,
    Space,
    Sign,
    /// One byte of a literal.
    Byte(u8),
}

impl Class {
    #[inline]
    fn takes(self, b: u8) -> bool {
        match self {
            Class::Digit => b.is_ascii_digit(),
            Class::Word => b.is_ascii_alphanumeric() || b == b'_',
            Class::Space => matches!(b, b'\t' | b'\n' | b'\x0C' | b'\r' | b' '),
            Class::Sign => matches!(b, b'+' | b'-'),
            Class::Byte(want) => b == want,
        }
    }

    fn regex(self) -> String {
        match self {
            Class::Digit => "[0-9]".into(),
            Class::Word => "[0-9A-Za-z_]".into(),
            Class::Space => r"[\t\n\x0C\r ]".into(),
            Class::Sign => "[+-]".into(),
            // Above ASCII, `\xNN` would be a code point; a literal is matched byte by byte.
            Class::Byte(b) if b.is_ascii() => format!(r"\x{b:02X}"),
            Class::Byte(b) => format!(r"(?-u:\x{b:02X})"),
        }
    }
}

/// `class{min,max}`, greedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Atom {
    class: Class,
    min: u8,
    max: u8,
}

const fn atom(class: Class, min: u8, max: u8) -> Atom {
    Atom { class, min, max }
}

/// One step of a compiled format: an atom, or the edge of a directive's capture group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Atom(Atom),
    Open,
    Close,
}

/// What a directive matches: atoms before its capture group, and inside it.
fn directive(directive: char, padded: bool) -> Option<(&'static [Atom], &'static [Atom])> {
    use Class::*;
    const NONE: &[Atom] = &[];
    const SPACE: &[Atom] = const { &[atom(Space, 0, 1)] };
    Some(match (directive, padded) {
        ('B', _) => (NONE, const { &[atom(Word, 7, 7)] }),
        ('b', _) | ('a', _) | ('Z', _) => (NONE, const { &[atom(Word, 3, 3)] }),
        ('m', _) | ('d', _) => (SPACE, const { &[atom(Digit, 1, 2)] }),
        ('A', _) => (NONE, const { &[atom(Word, 6, 9)] }),
        ('H', _) | ('I', true) | ('M', true) | ('S', true) | ('y', _) => {
            (NONE, const { &[atom(Digit, 2, 2)] })
        }
        ('I', false) | ('M', false) | ('S', false) => (NONE, const { &[atom(Digit, 1, 2)] }),
        ('Y', _) => (NONE, const { &[atom(Digit, 4, 4)] }),
        ('p', _) => (NONE, const { &[atom(Word, 2, 2)] }),
        ('z', _) => (NONE, const { &[atom(Sign, 1, 1), atom(Digit, 4, 4)] }),
        ('f', _) => (NONE, const { &[atom(Digit, 1, 9)] }),
        _ => return None,
    })
}

/// The regex for `steps`, the whole match as group 1 and each directive as a group after it.
fn pattern(steps: &[Step]) -> String {
    let mut pattern = String::from("(");
    for step in steps {
        match step {
            Step::Open => pattern.push('('),
            Step::Close => pattern.push(')'),
            Step::Atom(Atom { class, min, max }) => {
                pattern.push_str(&class.regex());
                match (min, max) {
                    (1, 1) => {}
                    (min, max) if min == max => pattern.push_str(&format!("{{{min}}}")),
                    (min, max) => pattern.push_str(&format!("{{{min},{max}}}")),
                }
            }
        }
    }
    pattern.push(')');
    pattern
}

/// Byte ranges of the whole match and of each directive's group.
type Spans = SmallVec<[(usize, usize); 10]>;

/// How many bytes at the start of `window` `takes` accepts.
#[inline(always)]
fn run(window: &[u8], takes: impl Fn(u8) -> bool) -> usize {
    window
        .iter()
        .position(|&b| !takes(b))
        .unwrap_or(window.len())
}

/// One step of [`parse_at_start`]: the steps of a format with each run of literal bytes joined
/// into one, and the edges of capture groups folded into the atoms beside them, so a
/// timestamp takes a dozen steps rather than thirty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Op {
    what: OpKind,
    min: u8,
    max: u8,
    /// A directive's group starts before this op.
    opens: bool,
    /// A directive's group ends after this op.
    closes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    /// `len` bytes of the format's literals, from `start`.
    Literal {
        start: usize,
        len: usize,
    },
    Class(Class),
}

/// The ops for `steps`, and the literal bytes they point into.
fn compile(steps: &[Step]) -> (Vec<Op>, Vec<u8>) {
    let mut ops: Vec<Op> = Vec::new();
    let mut literals = Vec::new();
    let mut opens = false;
    for step in steps {
        match *step {
            Step::Open => opens = true,
            Step::Close => ops.last_mut().expect("a group holds an atom").closes = true,
            Step::Atom(Atom { class, min, max }) => {
                if let Class::Byte(b) = class {
                    literals.push(b);
                    if let Some(Op {
                        what: OpKind::Literal { len, .. },
                        closes: false,
                        ..
                    }) = ops.last_mut()
                        && !opens
                    {
                        *len += 1;
                        continue;
                    }
                    let start = literals.len() - 1;
                    ops.push(Op {
                        what: OpKind::Literal { start, len: 1 },
                        min: 1,
                        max: 1,
                        opens,
                        closes: false,
                    });
                } else {
                    ops.push(Op {
                        what: OpKind::Class(class),
                        min,
                        max,
                        opens,
                        closes: false,
                    });
                }
                opens = false;
            }
        }
    }
    (ops, literals)
}

/// Reads `ops` at the start of `text`, each atom taking as many bytes as it can, into `spans`
/// (the whole match first). This is the first path a leftmost-first regex engine tries for the
/// same pattern anchored at 0, so when it succeeds its answer is the regex's; when it fails, a
/// shorter take might still have matched, and the caller asks the regex.
fn parse_at_start(ops: &[Op], literals: &[u8], text: &[u8], spans: &mut Spans) -> bool {
    spans.clear();
    spans.push((0, 0));
    match read_ops(ops, literals, text, 0, spans, usize::MAX) {
        Some((end, _)) => {
            spans[0] = (0, end);
            true
        }
        None => false,
    }
}

/// Reads `ops` from byte `at` of `text` as [`parse_at_start`] describes, pushing each closed
/// group's span; returns where the read ended, or `None` when an op does not match. Also
/// returns where op `split` started when the bytes before that decided every op before it on
/// their own, i.e. no class op before `split` stopped short of its maximum on a byte at or past
/// there (see [`Memo`]).
fn read_ops(
    ops: &[Op],
    literals: &[u8],
    text: &[u8],
    mut at: usize,
    spans: &mut Spans,
    split: usize,
) -> Option<(usize, Option<usize>)> {
    let mut open = at;
    // Where the last class op before `split` that stopped short of its maximum stopped: the
    // byte there, which it refused, decided its take.
    let mut short_stop = None;
    let mut prefix_end = None;
    for (i, op) in ops.iter().enumerate() {
        if i == split {
            prefix_end = Some(at).filter(|&end| short_stop.is_none_or(|stop| stop < end));
        }
        if op.opens {
            open = at;
        }
        let rest = &text[at..];
        let taken = match op.what {
            OpKind::Literal { start, len } => {
                let want = &literals[start..start + len];
                // A byte loop: the runs are a few bytes, too short for a `memcmp` call.
                if rest.len() < len || want.iter().zip(rest).any(|(w, r)| w != r) {
                    return None;
                }
                len
            }
            OpKind::Class(class) => {
                let window = &rest[..rest.len().min(usize::from(op.max))];
                // The class is matched outside the byte loop (each arm's `takes` folds to its
                // test): this runs for every event.
                let taken = match class {
                    Class::Digit => run(window, |b| Class::Digit.takes(b)),
                    Class::Word => run(window, |b| Class::Word.takes(b)),
                    _ => run(window, |b| class.takes(b)),
                };
                if taken < usize::from(op.min) {
                    return None;
                }
                if i < split && taken < usize::from(op.max) {
                    short_stop = Some(at + taken);
                }
                taken
            }
        };
        at += taken;
        if op.closes {
            spans.push((open, at));
        }
    }
    Some((at, prefix_end))
}

/// What one file's last timestamp leaves for its next (see [`TimestampFormat::find_next`]).
///
/// Consecutive lines of a log mostly share their timestamp up to the minute. When a line starts
/// with the same bytes before the seconds as the last timestamp read, and those bytes decided
/// the read of everything before the seconds on their own, the read of those bytes and the
/// calendar arithmetic would repeat the last line's: only the seconds and the fraction are read,
/// and added to the instant the prefix named. Reading a timestamp was a tenth of the CPU of
/// live tailing.
#[derive(Debug, Clone, Default)]
pub struct Memo {
    /// The bytes before the seconds of the last timestamp read; empty when there is none to
    /// go on from.
    prefix: Vec<u8>,
    /// The instant of `prefix` with the seconds and fraction at zero, in milliseconds.
    base_ms: i64,
}

/// Where a format's seconds start: a [`Memo`] applies to formats whose directives from the
/// seconds on are only seconds and fractions, with a year before them and a fixed offset (so
/// that the instant is the prefix's plus the seconds).
#[derive(Debug, Clone, Copy)]
struct Split {
    /// Index of the op that opens the seconds' group.
    op: usize,
    /// Index of the seconds in the format's fields.
    field: usize,
}

/// The [`Split`] of a format with the fields `fields`, compiled to `ops`, if a [`Memo`]
/// applies to it.
fn split(ops: &[Op], fields: &[char]) -> Option<Split> {
    let before = fields.iter().rposition(|f| !matches!(f, 'S' | 'f'))?;
    let field = before + 1;
    if fields.get(field) != Some(&'S') || !fields[..field].iter().any(|f| matches!(f, 'Y' | 'y')) {
        return None;
    }
    // The group of field n is opened by the (n+1)th op that opens one.
    let op = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.opens)
        .nth(field)?
        .0;
    Some(Split { op, field })
}

/// The milliseconds of a `%f` fraction: cut or padded to three digits.
fn fraction_ms(value: &[u8]) -> Option<i32> {
    (0..3).try_fold(0i32, |ms, k| match value.get(k) {
        Some(d) if d.is_ascii_digit() => Some(ms * 10 + i32::from(d - b'0')),
        Some(_) => None,
        None => Some(ms * 10),
    })
}

/// A timestamp found in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Byte range of the matched text, for `trim_timestamp`.
    pub start: usize,
    /// End of the matched text.
    pub end: usize,
}

/// The number in a captured field: one to nine ASCII digits (the space `%d` and `%m` allow is
/// outside their groups).
fn ascii_number(digits: &[u8]) -> Option<i32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0i32, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
    })
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// The steps of `format` and, in order, the directive each group holds.
fn steps(format: &str) -> (Vec<Step>, Vec<char>) {
    let mut steps = Vec::new();
    let mut fields = Vec::new();
    let literal = |steps: &mut Vec<Step>, text: &str| {
        steps.extend(text.bytes().map(|b| Step::Atom(atom(Class::Byte(b), 1, 1))));
    };
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal(&mut steps, c.encode_utf8(&mut [0; 4]));
            continue;
        }
        let padded = chars.peek() != Some(&'-');
        if !padded {
            chars.next();
        }
        let Some(name) = chars.next() else {
            literal(&mut steps, "%");
            break;
        };
        let Some((before, inside)) = directive(name, padded) else {
            // Not a directive: the stock translator leaves it as written.
            literal(&mut steps, if padded { "%" } else { "%-" });
            literal(&mut steps, name.encode_utf8(&mut [0; 4]));
            continue;
        };
        steps.extend(before.iter().copied().map(Step::Atom));
        steps.push(Step::Open);
        steps.extend(inside.iter().copied().map(Step::Atom));
        steps.push(Step::Close);
        fields.push(name);
    }
    // The stock translator drops a leading `\s{0,1}` (a format opening with `%m` or `%d`).
    if steps.first() == Some(&Step::Atom(atom(Class::Space, 0, 1))) {
        steps.remove(0);
    }
    (steps, fields)
}

impl TimestampFormat {
    /// Compiles `format` for `timezone`.
    ///
    /// # Errors
    /// The resulting regex does not compile (an unknown `%` is kept as a literal, as in the stock
    /// agent, so this only fails on pathological input).
    pub fn new(format: &str, timezone: Timezone) -> Result<Self, String> {
        let (steps, fields) = steps(format);
        let regex = Regex::new(&pattern(&steps))
            .map_err(|e| format!("timestamp_format gives an invalid pattern: {e}"))?;
        let zone = match timezone {
            Timezone::Utc => TimeZone::UTC,
            Timezone::Local => TimeZone::system(),
        };
        let (ops, literals) = compile(&steps);
        let fixed = zone.to_fixed_offset().ok();
        let split = fixed.and_then(|_| split(&ops, &fields));
        Ok(Self {
            regex: std::sync::Arc::new(regex),
            ops: ops.into(),
            literals: literals.into(),
            fields,
            fixed,
            split,
            zone,
        })
    }

    /// The regex finding the timestamp (also the start rule for `{timestamp_format}`).
    pub fn regex(&self) -> &std::sync::Arc<Regex> {
        &self.regex
    }

    /// Finds and parses the first timestamp in `text`; `now_ms` decides the year when the format
    /// has none.
    pub fn find(&self, text: &[u8], now_ms: i64) -> Option<Found> {
        let mut spans = Spans::new();
        if !parse_at_start(&self.ops, &self.literals, text, &mut spans) {
            return self.find_by_regex(text, now_ms, &mut spans);
        }
        self.found(text, &spans, now_ms)
    }

    /// The regex's answer, where the direct read at the start of `text` failed.
    fn find_by_regex(&self, text: &[u8], now_ms: i64, spans: &mut Spans) -> Option<Found> {
        let captures = self.regex.captures(text)?;
        spans.clear();
        // Group 0 is the same as group 1, the whole match.
        for group in captures.iter().skip(1) {
            let group = group?;
            spans.push((group.start(), group.end()));
        }
        self.found(text, spans, now_ms)
    }

    /// The timestamp that `spans` (the whole match, then each directive) of `text` name.
    fn found(&self, text: &[u8], spans: &[(usize, usize)], now_ms: i64) -> Option<Found> {
        let (start, end) = spans[0];
        let timestamp_ms = self.resolve(text, &spans[1..], now_ms)?;
        Some(Found {
            timestamp_ms,
            start,
            end,
        })
    }

    /// [`find`](Self::find) for the next text of a file, going on from the last timestamp that
    /// `memo` remembers: the same answer, mostly without reading the date and time again.
    pub fn find_next(&self, text: &[u8], now_ms: i64, memo: &mut Memo) -> Option<Found> {
        let Some(split) = self.split else {
            return self.find(text, now_ms);
        };
        let mut spans = Spans::new();
        let known = memo.prefix.len();
        if known > 0
            && text.get(..known) == Some(&memo.prefix[..])
            && let Some((end, _)) = read_ops(
                &self.ops[split.op..],
                &self.literals,
                text,
                known,
                &mut spans,
                usize::MAX,
            )
            && let Some(ms) = self.seconds_ms(text, &spans, split)
        {
            return Some(Found {
                timestamp_ms: memo.base_ms + ms,
                start: 0,
                end,
            });
        }
        memo.prefix.clear();
        spans.clear();
        spans.push((0, 0));
        let Some((end, prefix_end)) =
            read_ops(&self.ops, &self.literals, text, 0, &mut spans, split.op)
        else {
            return self.find_by_regex(text, now_ms, &mut spans);
        };
        spans[0] = (0, end);
        let timestamp_ms = self.resolve(text, &spans[1..], now_ms)?;
        if let Some(prefix_end) = prefix_end
            && let Some(ms) = self.seconds_ms(text, &spans[1 + split.field..], split)
        {
            let base_ms = timestamp_ms - ms;
            // The last minute jiff can hold may not have all its seconds: no shortcut there.
            if base_ms + 59_999 <= jiff::Timestamp::MAX.as_millisecond() {
                memo.prefix.extend_from_slice(&text[..prefix_end]);
                memo.base_ms = base_ms;
            }
        }
        Some(Found {
            timestamp_ms,
            start: 0,
            end,
        })
    }

    /// The milliseconds that the seconds and fraction `spans` (the groups from the seconds on)
    /// add to the instant before them; `None` for a second a date cannot have.
    fn seconds_ms(&self, text: &[u8], spans: &[(usize, usize)], split: Split) -> Option<i64> {
        let (mut second, mut millis) = (0, 0);
        for (directive, &(start, end)) in self.fields[split.field..].iter().zip(spans) {
            let value = &text[start..end];
            match directive {
                'S' => second = ascii_number(value)?,
                _ => millis = fraction_ms(value)?,
            }
        }
        (second < 60).then(|| i64::from(second) * 1000 + i64::from(millis))
    }

    /// The instant the directives' matched `spans` of `text` name.
    fn resolve(&self, text: &[u8], spans: &[(usize, usize)], now_ms: i64) -> Option<i64> {
        let mut year: Option<i16> = None;
        let mut month: Option<i8> = None;
        let (mut day, mut hour, mut minute, mut second, mut millis) = (1i8, 0i8, 0i8, 0i8, 0i32);
        let mut pm: Option<bool> = None;
        let mut offset_seconds: Option<i32> = None;
        for (directive, &(start, end)) in self.fields.iter().zip(spans) {
            // Every group matches ASCII only (see `directive`).
            let value = &text[start..end];
            let number = || ascii_number(value);
            match directive {
                'Y' => year = Some(number()? as i16),
                'y' => year = Some(2000 + number()? as i16),
                'm' => month = Some(number()? as i8),
                'b' | 'B' => {
                    let name = value.get(..3)?;
                    month =
                        Some(MONTHS.iter().position(|m| name.eq_ignore_ascii_case(m))? as i8 + 1);
                }
                'd' => day = number()? as i8,
                'H' | 'I' => hour = number()? as i8,
                'M' => minute = number()? as i8,
                'S' => second = number()? as i8,
                'f' => millis = fraction_ms(value)?,
                'p' => pm = Some(value.eq_ignore_ascii_case(b"pm")),
                'z' => {
                    let sign = if value.first() == Some(&b'-') { -1 } else { 1 };
                    let hours = ascii_number(value.get(1..3)?)?;
                    let minutes = ascii_number(value.get(3..5)?)?;
                    offset_seconds = Some(sign * (hours * 3600 + minutes * 60));
                }
                'Z' if value.eq_ignore_ascii_case(b"UTC") || value.eq_ignore_ascii_case(b"GMT") => {
                    offset_seconds = Some(0)
                }
                _ => {}
            }
        }
        if let Some(pm) = pm {
            hour = match (hour, pm) {
                (12, false) => 0,
                (h, true) if h < 12 => h + 12,
                (h, _) => h,
            };
        }
        // A fixed offset is plain arithmetic; only a zone with rules (`Local`) needs a lookup.
        let offset = match offset_seconds {
            Some(seconds) => Some(jiff::tz::Offset::from_seconds(seconds).ok()?),
            None => self.fixed,
        };
        let month = month.unwrap_or(1);
        let resolve = |year: i16| -> Option<jiff::Timestamp> {
            let civil =
                DateTime::new(year, month, day, hour, minute, second, millis * 1_000_000).ok()?;
            match offset {
                Some(offset) => offset.to_timestamp(civil).ok(),
                None => self.zone.to_ambiguous_timestamp(civil).compatible().ok(),
            }
        };
        let timestamp = match year {
            Some(year) => resolve(year)?,
            None => {
                let now = jiff::Timestamp::from_millisecond(now_ms).ok()?;
                let this_year = match offset {
                    Some(offset) => offset.to_datetime(now).year(),
                    None => self.zone.to_datetime(now).year(),
                };
                let candidate = resolve(this_year)?;
                // "Dec 31" read on Jan 1 belongs to last year.
                if candidate.as_millisecond() - now_ms > 30 * 24 * 3600 * 1000 {
                    resolve(this_year - 1)?
                } else {
                    candidate
                }
            }
        };
        Some(timestamp.as_millisecond())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn find(format: &str, text: &str, now: &str) -> Option<i64> {
        TimestampFormat::new(format, Timezone::Utc)
            .unwrap()
            .find(text.as_bytes(), ms(now))
            .map(|f| f.timestamp_ms)
    }

    const NOW: &str = "2026-11-25T12:00:00Z";

    #[test]
    fn syslog_style_without_a_year_gets_this_year() {
        assert_eq!(
            find("%b %d %H:%M:%S", "Nov 25 18:44:12 web-01 sshd[1]: hi", NOW),
            Some(ms("2026-11-25T18:44:12Z"))
        );
        assert_eq!(
            find("%b %d %H:%M:%S", "Nov  5 08:04:02 host x", NOW),
            Some(ms("2026-11-05T08:04:02Z")),
            "space-padded day"
        );
    }

    #[test]
    fn a_date_more_than_30_days_ahead_belongs_to_last_year() {
        assert_eq!(
            find(
                "%b %d %H:%M:%S",
                "Dec 31 23:59:59 x",
                "2027-01-01T00:00:10Z"
            ),
            Some(ms("2026-12-31T23:59:59Z"))
        );
        assert_eq!(
            find(
                "%b %d %H:%M:%S",
                "Dec 20 10:00:00 x",
                "2026-11-25T00:00:00Z"
            ),
            Some(ms("2026-12-20T10:00:00Z")),
            "25 days ahead stays"
        );
    }

    #[test]
    fn numeric_dates_zones_and_fractions() {
        assert_eq!(
            find(
                "%Y-%m-%dT%H:%M:%S.%f%z",
                "at 2026-11-25T18:44:12.123456+0900 start",
                NOW
            ),
            Some(ms("2026-11-25T09:44:12.123Z"))
        );
        assert_eq!(
            find("%Y-%m-%d %H:%M:%S,%f", "2026-01-02 03:04:05,7 INFO", NOW),
            Some(ms("2026-01-02T03:04:05.700Z"))
        );
        assert_eq!(
            find("%y/%m/%d %H:%M:%S %Z", "26/11/25 18:44:12 UTC x", NOW),
            Some(ms("2026-11-25T18:44:12Z"))
        );
        assert_eq!(
            find("%d/%-m/%Y %-H:%-M:%-S", "25/1/2026 7:3:9", NOW),
            None,
            "%H is always two digits"
        );
        assert_eq!(
            find("%d/%-m/%Y %H:%-M:%-S", "25/1/2026 07:3:9", NOW),
            Some(ms("2026-01-25T07:03:09Z"))
        );
    }

    #[test]
    fn twelve_hour_clocks_and_names() {
        assert_eq!(
            find(
                "%a, %d %b %Y %I:%M:%S %p",
                "Wed, 25 Nov 2026 06:44:12 PM",
                NOW
            ),
            Some(ms("2026-11-25T18:44:12Z"))
        );
        assert_eq!(
            find("%I:%M %p %Y-%m-%d", "12:30 AM 2026-11-25", NOW),
            Some(ms("2026-11-25T00:30:00Z"))
        );
        assert_eq!(
            find("%A %B %d %Y", "Tuesday January 06 2026", NOW),
            Some(ms("2026-01-06T00:00:00Z"))
        );
        assert_eq!(
            find("%B %d %Y", "May 06 2026", NOW),
            None,
            "%B matches exactly seven letters, as in the stock agent"
        );
    }

    #[test]
    fn the_match_range_is_reported_for_trimming() {
        let format = TimestampFormat::new("[%Y-%m-%d %H:%M:%S]", Timezone::Utc).unwrap();
        let text = "[2026-11-25 18:44:12] message";
        let found = format.find(text.as_bytes(), ms(NOW)).unwrap();
        assert_eq!(&text[found.start..found.end], "[2026-11-25 18:44:12]");
    }

    #[test]
    fn no_match_or_an_impossible_date_is_none() {
        assert_eq!(find("%Y-%m-%d", "no date here", NOW), None);
        assert_eq!(find("%Y-%m-%d", "2026-02-30", NOW), None);
    }

    #[test]
    fn local_time_uses_the_system_zone() {
        let local = TimestampFormat::new("%Y-%m-%d %H:%M:%S", Timezone::Local).unwrap();
        let found = local.find(b"2026-06-01 12:00:00", ms(NOW)).unwrap();
        let expected = TimeZone::system()
            .to_ambiguous_timestamp(DateTime::new(2026, 6, 1, 12, 0, 0, 0).unwrap())
            .compatible()
            .unwrap()
            .as_millisecond();
        assert_eq!(found.timestamp_ms, expected);
    }
    #[test]
    fn the_leftmost_timestamp_wins_at_the_start_or_further_in() {
        let format = "%Y-%m-%d %H:%M:%S";
        assert_eq!(
            find(format, "2026-01-02 03:04:05 then 2026-09-09 09:09:09", NOW),
            Some(ms("2026-01-02T03:04:05Z")),
            "anchored at the start"
        );
        assert_eq!(
            find(
                format,
                "[x] 2026-01-02 03:04:05 then 2026-09-09 09:09:09",
                NOW
            ),
            Some(ms("2026-01-02T03:04:05Z")),
            "not at the start: the first one further in"
        );
    }

    #[test]
    fn digits_are_ascii_as_in_go() {
        // Arabic-Indic digits are `\d` to Rust's Unicode classes, not to Go's.
        let arabic_year = "\u{0662}\u{0660}\u{0662}\u{0666}";
        assert_eq!(find("%Y-%m-%d", &format!("{arabic_year}-01-02"), NOW), None);
        assert_eq!(
            find("%Y-%m-%d", &format!("{arabic_year}-01-02 2026-01-03"), NOW),
            Some(ms("2026-01-03T00:00:00Z"))
        );
    }

    /// The direct parser gives the anchored regex's answer whenever it gives one, over formats
    /// with every directive and texts near a timestamp (digits, letters, spaces, cuts).
    #[test]
    fn the_direct_parser_agrees_with_the_anchored_regex() {
        use proptest::prelude::*;
        let formats = [
            "%Y-%m-%dT%H:%M:%S.%f%z",
            "%b %d %H:%M:%S",
            "%d/%-m/%Y %-I:%-M:%-S %p",
            "%m%d%H%M%S%f",
            "%A, %B %d %y %Z",
            "%a %b %-d é %% %q %-q",
            "[%Y-%m-%d %H:%M:%S,%f]",
        ];
        let alphabet: Vec<u8> = "0123456789 -+:/.,TZé%abAPMmnqx\t".bytes().collect();
        let parsed = std::cell::Cell::new(0);
        for format in formats {
            let compiled = TimestampFormat::new(format, Timezone::Utc).unwrap();
            let steps = super::steps(format).0;
            let anchored = Regex::new(&format!("^{}", pattern(&steps))).unwrap();
            // Byte strings that follow the format's steps most of the time, with counts one short or
            // one over and a stray character now and then, so both outcomes are common.
            let alphabet = alphabet.clone();
            let text = proptest::collection::vec(any::<u32>(), 64).prop_map(move |random| {
                let mut random = random.into_iter().cycle();
                let mut text = Vec::new();
                for step in steps.iter() {
                    let Step::Atom(Atom { class, min, max }) = *step else {
                        continue;
                    };
                    let r = random.next().unwrap();
                    let count = if r.is_multiple_of(32) {
                        (r / 32) as u8 % (max + 2)
                    } else {
                        min + (r / 32) as u8 % (max - min + 1)
                    };
                    for _ in 0..count {
                        let r = random.next().unwrap() as usize;
                        let members: Vec<u8> = alphabet
                            .iter()
                            .copied()
                            .filter(|&b| class.takes(b))
                            .collect();
                        if r.is_multiple_of(64) || members.is_empty() {
                            text.push(alphabet[r / 64 % alphabet.len()]);
                        } else {
                            text.push(members[r / 64 % members.len()]);
                        }
                    }
                }
                text
            });
            proptest!(ProptestConfig::with_cases(3000), |(text in text)| {
                let mut spans = Spans::new();
                if parse_at_start(&compiled.ops, &compiled.literals, &text, &mut spans) {
                    parsed.set(parsed.get() + 1);
                    let captures = anchored.captures(&text);
                    prop_assert!(captures.is_some(), "{format:?} on {text:?}: parsed, regex says none");
                    let regex_spans: Vec<(usize, usize)> = captures
                        .unwrap()
                        .iter()
                        .skip(1)
                        .map(|g| g.map_or((0, 0), |g| (g.start(), g.end())))
                        .collect();
                    prop_assert_eq!(spans.to_vec(), regex_spans, "{:?} on {:?}", format, text);
                }
            });
        }
        let parsed = parsed.get();
        assert!(
            parsed > 5000,
            "only {parsed} texts parsed: the property says little"
        );
    }

    #[test]
    fn texts_the_direct_parser_reads_are_most_texts_with_a_leading_timestamp() {
        let format = TimestampFormat::new("%Y-%m-%dT%H:%M:%S.%f%z", Timezone::Utc).unwrap();
        let mut spans = Spans::new();
        assert!(parse_at_start(
            &format.ops,
            &format.literals,
            b"2026-11-25T18:44:12.123456+0900 start",
            &mut spans
        ));
        assert_eq!(spans[0], (0, 31));
        assert_eq!(spans[7], (20, 26), "the fraction, greedy");
        // `%d` takes "12" and leaves no digit for `%m`: the greedy read fails where the regex
        // backtracks to "1" and "2", and `find` falls back to it.
        let tricky = TimestampFormat::new("%d%m", Timezone::Utc).unwrap();
        assert!(!parse_at_start(
            &tricky.ops,
            &tricky.literals,
            b"12",
            &mut spans
        ));
        assert_eq!(
            tricky.find(b"12", ms(NOW)).map(|f| (f.start, f.end)),
            Some((0, 2))
        );
    }

    /// A file's texts read one after another with a [`Memo`] get exactly the answers each
    /// gets alone: timestamps a few milliseconds to hours apart (so prefixes are often shared),
    /// fractions of one to nine digits, seconds past 59, digits and junk right after, and a
    /// byte changed now and then.
    #[test]
    fn reading_on_from_the_last_timestamp_gives_what_reading_afresh_gives() {
        use proptest::prelude::*;
        type Render = fn(&jiff::civil::DateTime, u8, &str) -> String;
        let formats: [(&str, Render); 6] = [
            ("%Y-%m-%dT%H:%M:%S.%f", |t, s, f| {
                format!("{}:{s:02}.{f}", t.strftime("%Y-%m-%dT%H:%M"))
            }),
            ("[%Y-%m-%d %H:%M:%S,%f]", |t, s, f| {
                format!("[{}:{s:02},{f}]", t.strftime("%Y-%m-%d %H:%M"))
            }),
            ("%y%m%d %-H:%-M:%-S", |t, s, _| {
                format!("{}:{s}", t.strftime("%y%m%d %-H:%-M"))
            }),
            ("%Y %b %-d %H:%M:%S", |t, s, _| {
                format!("{}:{s:02}", t.strftime("%Y %b %-d %H:%M"))
            }),
            ("%d/%b/%Y:%H:%M:%S %z", |t, s, _| {
                format!("{}:{s:02} +0130", t.strftime("%d/%b/%Y:%H:%M"))
            }),
            ("%H:%M:%S %Y", |t, s, _| {
                format!("{}:{s:02} {}", t.strftime("%H:%M"), t.year())
            }),
        ];
        let junk: Vec<u8> = "0123456789 -:.,+TZxé\t".bytes().collect();
        let memoised = std::cell::Cell::new(0);
        for (format, render) in formats {
            let compiled = TimestampFormat::new(format, Timezone::Utc).unwrap();
            let junk = junk.clone();
            proptest!(ProptestConfig::with_cases(300), |(seed in any::<u64>())| {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut at = jiff::Timestamp::from_second(rng.i64(946_684_800..2_000_000_000))
                    .unwrap();
                let mut memo = Memo::default();
                for _ in 0..40 {
                    let step_ms = match rng.u8(..10) {
                        0..=5 => rng.i64(0..3_000),
                        6 | 7 => rng.i64(0..120_000),
                        8 => rng.i64(0..90_000_000),
                        _ => -rng.i64(0..120_000),
                    };
                    at = at.checked_add(jiff::SignedDuration::from_millis(step_ms)).unwrap();
                    let civil = jiff::tz::Offset::UTC.to_datetime(at);
                    let second = if rng.u8(..20) == 0 { rng.u8(60..100) } else { civil.second() as u8 };
                    let digits = rng.usize(1..10);
                    let fraction: String = (0..digits).map(|_| char::from(b'0' + rng.u8(..10))).collect();
                    let mut text = render(&civil, second, &fraction).into_bytes();
                    for _ in 0..rng.usize(0..3) {
                        text.push(junk[rng.usize(..junk.len())]);
                    }
                    text.extend_from_slice(b" app[1]: line");
                    if rng.u8(..15) == 0 {
                        let i = rng.usize(..text.len());
                        text[i] = junk[rng.usize(..junk.len())];
                    }
                    let now_ms = at.as_millisecond();
                    let known = memo.prefix.len();
                    if known > 0 && text.starts_with(&memo.prefix) {
                        memoised.set(memoised.get() + 1);
                    }
                    let alone = compiled.find(&text, now_ms);
                    let next = compiled.find_next(&text, now_ms, &mut memo);
                    prop_assert_eq!(next, alone, "{:?} on {:?}", format, String::from_utf8_lossy(&text));
                }
            });
        }
        // Each case of the four formats it applies to has 40 texts, most of them sharing the
        // last one's minute.
        let memoised = memoised.get();
        assert!(
            memoised > 4 * 300 * 10,
            "only {memoised} texts went on from a memo"
        );
    }

    #[test]
    fn a_memo_applies_only_with_a_year_before_the_seconds_and_a_fixed_offset() {
        let split = |format: &str, timezone| {
            TimestampFormat::new(format, timezone)
                .unwrap()
                .split
                .map(|s| s.field)
        };
        assert_eq!(split("%Y-%m-%dT%H:%M:%S.%f", Timezone::Utc), Some(5));
        assert_eq!(split("%y%m%d %H:%M:%S", Timezone::Utc), Some(5));
        assert_eq!(
            split("%b %d %H:%M:%S", Timezone::Utc),
            None,
            "no year: it depends on now"
        );
        assert_eq!(
            split("%Y-%m-%d %H:%M:%S %z", Timezone::Utc),
            None,
            "an offset after the seconds"
        );
        assert_eq!(
            split("%I:%M:%S %p %Y", Timezone::Utc),
            None,
            "the hour's half after the seconds"
        );
        assert_eq!(split("%Y-%m-%d %H:%M", Timezone::Utc), None, "no seconds");
        let local = TimestampFormat::new("%Y-%m-%dT%H:%M:%S", Timezone::Local).unwrap();
        assert_eq!(
            local.split.is_some(),
            local.fixed.is_some(),
            "a zone with rules is looked up every time"
        );

        let format = TimestampFormat::new("%Y-%m-%dT%H:%M:%S.%f", Timezone::Utc).unwrap();
        let mut memo = Memo::default();
        let found = format
            .find_next(b"2026-11-25T18:44:12.123 a", 0, &mut memo)
            .unwrap();
        assert_eq!(found.timestamp_ms, ms("2026-11-25T18:44:12.123Z"));
        assert_eq!(memo.prefix, b"2026-11-25T18:44:");
        assert_eq!(memo.base_ms, ms("2026-11-25T18:44:00Z"));
        let next = format
            .find_next(b"2026-11-25T18:44:59.5 b", 0, &mut memo)
            .unwrap();
        assert_eq!(
            (next.timestamp_ms, next.start, next.end),
            (ms("2026-11-25T18:44:59.500Z"), 0, 21)
        );
        assert_eq!(
            format.find_next(b"2026-11-25T18:44:60.5 c", 0, &mut memo),
            None,
            "no 60th second"
        );
        assert!(
            memo.prefix.is_empty(),
            "the memo went with the line that had no timestamp"
        );
    }
}
