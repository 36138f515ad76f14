//! `timestamp_format`: the stock agent's strftime-like directives, turned into a regex that finds
//! the timestamp anywhere in an event, and a parser for what it found.
//!
//! Owns the directive table of the stock agent (reference §4.6), including its quirks: `%B`
//! matches exactly seven word characters, `%m` and `%d` accept a leading space, a leading
//! `\s{0,1}` is dropped, fractions are cut or padded to milliseconds. A year-less timestamp gets
//! the current year, or the previous one when that would put it more than 30 days ahead. Times
//! without an offset are read in the configured zone (`Local` or `UTC`).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use regex::bytes::Regex;

use crate::config::Timezone;

/// A compiled `timestamp_format`.
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    /// Shared, not cloned: a cloned `Regex` gets its own match caches, which a glob over
    /// thousands of files would multiply.
    regex: std::sync::Arc<Regex>,
    /// The same pattern anchored at the start of the text, tried first: most logs begin with
    /// their timestamp, and an anchored search takes its captures with a one-pass DFA instead
    /// of the backtracker an unanchored one needs (a fifth of the bulk profile). A match at
    /// offset 0 is the leftmost match, so the result is the same.
    anchored: std::sync::Arc<Regex>,
    /// For each capture group after the whole match, which directive it holds.
    fields: Vec<char>,
    zone: TimeZone,
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

/// The number in a captured field: ASCII digits, with the leading space `%d` and `%m` allow.
fn ascii_number(value: &[u8]) -> Option<i32> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0i32, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
    })
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl TimestampFormat {
    /// Compiles `format` for `timezone`.
    ///
    /// # Errors
    /// The resulting regex does not compile (an unknown `%` is kept as a literal, as in the stock
    /// agent, so this only fails on pathological input).
    pub fn new(format: &str, timezone: Timezone) -> Result<Self, String> {
        let mut pattern = String::new();
        let mut fields = Vec::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                if "^.*?+|[](){}$\\".contains(c) {
                    pattern.push('\\');
                }
                pattern.push(c);
                continue;
            }
            let padded = chars.peek() != Some(&'-');
            if !padded {
                chars.next();
            }
            let Some(directive) = chars.next() else {
                pattern.push('%');
                break;
            };
            // Go's `\d`, `\w` and `\s` are ASCII, and so are these (Rust's would also take
            // other scripts' digits and letters, and make the automata larger and slower).
            let regex = match (directive, padded) {
                ('B', _) => r"([0-9A-Za-z_]{7})",
                ('b', _) => r"([0-9A-Za-z_]{3})",
                ('m', _) | ('d', _) => r"[\t\n\x0C\r ]{0,1}([0-9]{1,2})",
                ('A', _) => r"([0-9A-Za-z_]{6,9})",
                ('a', _) => r"([0-9A-Za-z_]{3})",
                ('H', _) => r"([0-9]{2})",
                ('I', true) => r"([0-9]{2})",
                ('I', false) => r"([0-9]{1,2})",
                ('M', true) | ('S', true) => r"([0-9]{2})",
                ('M', false) | ('S', false) => r"([0-9]{1,2})",
                ('Y', _) => r"([0-9]{4})",
                ('y', _) => r"([0-9]{2})",
                ('p', _) => r"([0-9A-Za-z_]{2})",
                ('Z', _) => r"([0-9A-Za-z_]{3})",
                ('z', _) => r"([+-][0-9]{4})",
                ('f', _) => r"([0-9]{1,9})",
                (other, _) => {
                    // Not a directive: the stock translator leaves it as written.
                    pattern.push('%');
                    if !padded {
                        pattern.push('-');
                    }
                    pattern.push_str(&regex::escape(&other.to_string()));
                    continue;
                }
            };
            pattern.push_str(regex);
            fields.push(directive);
        }
        let pattern = pattern
            .strip_prefix(r"[\t\n\x0C\r ]{0,1}")
            .unwrap_or(&pattern)
            .to_owned();
        let compile = |pattern: String| {
            Regex::new(&pattern)
                .map_err(|e| format!("timestamp_format gives an invalid pattern: {e}"))
        };
        let regex = compile(format!("({pattern})"))?;
        let anchored = compile(format!("^({pattern})"))?;
        let zone = match timezone {
            Timezone::Utc => TimeZone::UTC,
            Timezone::Local => TimeZone::system(),
        };
        Ok(Self {
            regex: std::sync::Arc::new(regex),
            anchored: std::sync::Arc::new(anchored),
            fields,
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
        let captures = self
            .anchored
            .captures(text)
            .or_else(|| self.regex.captures(text))?;
        let whole = captures.get(1)?;
        let mut year: Option<i16> = None;
        let mut month: Option<i8> = None;
        let (mut day, mut hour, mut minute, mut second, mut millis) = (1i8, 0i8, 0i8, 0i8, 0i32);
        let mut pm: Option<bool> = None;
        let mut offset_seconds: Option<i32> = None;
        for (i, directive) in self.fields.iter().enumerate() {
            // Every group matches ASCII only (see `new`).
            let value = std::str::from_utf8(captures.get(i + 2)?.as_bytes()).ok()?;
            let number = || ascii_number(value.as_bytes());
            match directive {
                'Y' => year = Some(number()? as i16),
                'y' => year = Some(2000 + number()? as i16),
                'm' => month = Some(number()? as i8),
                'b' | 'B' => {
                    let lower = value.to_ascii_lowercase();
                    month = Some(MONTHS.iter().position(|m| lower.starts_with(m))? as i8 + 1);
                }
                'd' => day = number()? as i8,
                'H' | 'I' => hour = number()? as i8,
                'M' => minute = number()? as i8,
                'S' => second = number()? as i8,
                'f' => {
                    // Cut or padded to milliseconds.
                    let digits = value.as_bytes();
                    millis = (0..3).try_fold(0i32, |ms, k| match digits.get(k) {
                        Some(d) if d.is_ascii_digit() => Some(ms * 10 + i32::from(d - b'0')),
                        Some(_) => None,
                        None => Some(ms * 10),
                    })?;
                }
                'p' => pm = Some(value.eq_ignore_ascii_case("pm")),
                'z' => {
                    let sign = if value.starts_with('-') { -1 } else { 1 };
                    let hours: i32 = value[1..3].parse().ok()?;
                    let minutes: i32 = value[3..5].parse().ok()?;
                    offset_seconds = Some(sign * (hours * 3600 + minutes * 60));
                }
                'Z' if value.eq_ignore_ascii_case("UTC") || value.eq_ignore_ascii_case("GMT") => {
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
        let zone = match offset_seconds {
            Some(seconds) => TimeZone::fixed(jiff::tz::Offset::from_seconds(seconds).ok()?),
            None => self.zone.clone(),
        };
        let now = jiff::Timestamp::from_millisecond(now_ms).ok()?;
        let month = month.unwrap_or(1);
        let resolve = |year: i16| -> Option<jiff::Timestamp> {
            let civil =
                DateTime::new(year, month, day, hour, minute, second, millis * 1_000_000).ok()?;
            zone.to_ambiguous_timestamp(civil).compatible().ok()
        };
        let timestamp = match year {
            Some(year) => resolve(year)?,
            None => {
                let this_year = zone.to_datetime(now).year();
                let candidate = resolve(this_year)?;
                // "Dec 31" read on Jan 1 belongs to last year.
                if candidate.as_millisecond() - now_ms > 30 * 24 * 3600 * 1000 {
                    resolve(this_year - 1)?
                } else {
                    candidate
                }
            }
        };
        Some(Found {
            timestamp_ms: timestamp.as_millisecond(),
            start: whole.start(),
            end: whole.end(),
        })
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
}
