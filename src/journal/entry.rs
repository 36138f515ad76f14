//! One journal entry's fields (journalctl's export or JSON output) turned into the event the
//! stock agent sends.
//!
//! Owns the message format (`{"body":{…every field…}}`, keys sorted, `__REALTIME_TIMESTAMP`
//! taken out as the event's time, as the stock OpenTelemetry receiver and exporter do) and the
//! `filters` rule (excludes first and win, then any include, on the JSON text of the whole
//! entry). It reads no process and knows nothing of AWS.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{Filter, FilterKind};

/// Why a line is not an entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    /// Not a JSON object.
    #[error("not a journal entry in JSON: {0}")]
    Json(String),
    /// A field every entry has is missing or malformed.
    #[error("no valid {0}")]
    Missing(&'static str),
}

/// One journal entry, ready to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the journal.
    pub cursor: Box<str>,
    /// `__REALTIME_TIMESTAMP` in milliseconds (truncated, as the stock exporter does).
    pub timestamp_ms: i64,
    /// The JSON text of its fields (what filters look at).
    pub body: String,
}

impl Entry {
    /// Reads one line.
    ///
    /// # Errors
    /// The line is not a JSON object with `__CURSOR` and `__REALTIME_TIMESTAMP` (the two the
    /// stock receiver requires).
    pub fn parse(line: &[u8]) -> Result<Self, EntryError> {
        let fields: BTreeMap<String, Value> =
            serde_json::from_slice(line).map_err(|err| EntryError::Json(err.to_string()))?;
        Self::from_fields(fields)
    }

    /// An entry from its fields, as journalctl names them (`__CURSOR`,
    /// `__REALTIME_TIMESTAMP`, ... beside the entry's own).
    ///
    /// # Errors
    /// `__CURSOR` or `__REALTIME_TIMESTAMP` is missing or malformed.
    pub fn from_fields(mut fields: BTreeMap<String, Value>) -> Result<Self, EntryError> {
        let realtime = fields
            .remove("__REALTIME_TIMESTAMP")
            .and_then(|v| v.as_str().and_then(|s| s.parse::<i64>().ok()))
            .ok_or(EntryError::Missing("__REALTIME_TIMESTAMP"))?;
        let cursor = fields
            .get("__CURSOR")
            .and_then(Value::as_str)
            .filter(|c| crate::state::cursor::is_cursor(c))
            .ok_or(EntryError::Missing("__CURSOR"))?
            .into();
        let body =
            serde_json::to_string(&fields).map_err(|err| EntryError::Json(err.to_string()))?;
        Ok(Entry {
            cursor,
            timestamp_ms: realtime / 1000,
            body,
        })
    }

    /// The message sent to CloudWatch: the stock exporter's `{"body":…}` wrapping.
    pub fn message(&self) -> String {
        let mut message = String::with_capacity(self.body.len() + 9);
        message.push_str("{\"body\":");
        message.push_str(&self.body);
        message.push('}');
        message
    }

    /// Whether `filters` keep it: any matching exclude drops it, then, if there are includes,
    /// one of them must match (the stock translator's filterprocessor conditions).
    pub fn kept_by(&self, filters: &[Filter]) -> bool {
        let matching = |kind: FilterKind| {
            filters
                .iter()
                .filter(move |f| f.kind == kind)
                .map(|f| f.expression.is_match(&self.body))
        };
        if matching(FilterKind::Exclude).any(|m| m) {
            return false;
        }
        let mut includes = matching(FilterKind::Include).peekable();
        includes.peek().is_none() || includes.any(|m| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::go_regex::GoRegex;

    const LINE: &str = r#"{"__CURSOR":"s=1;i=2;b=3;m=4;t=5;x=6","__REALTIME_TIMESTAMP":"1764892800123456","__MONOTONIC_TIMESTAMP":"99","_BOOT_ID":"b","PRIORITY":"6","_SYSTEMD_UNIT":"cron.service","MESSAGE":"hello <world>","BIN":[1,2,255]}"#;

    fn filter(kind: FilterKind, expression: &str) -> Filter {
        Filter {
            kind,
            expression: GoRegex::new(expression).unwrap(),
        }
    }

    #[test]
    fn an_entry_is_sent_as_the_stock_body_with_sorted_fields_and_its_time_taken_out() {
        let entry = Entry::parse(LINE.as_bytes()).unwrap();
        assert_eq!(&*entry.cursor, "s=1;i=2;b=3;m=4;t=5;x=6");
        assert_eq!(entry.timestamp_ms, 1_764_892_800_123);
        assert_eq!(
            entry.message(),
            r#"{"body":{"BIN":[1,2,255],"MESSAGE":"hello <world>","PRIORITY":"6","_BOOT_ID":"b","_SYSTEMD_UNIT":"cron.service","__CURSOR":"s=1;i=2;b=3;m=4;t=5;x=6","__MONOTONIC_TIMESTAMP":"99"}}"#
        );
        let parsed: Value = serde_json::from_str(&entry.message()).unwrap();
        assert!(parsed["body"].get("__REALTIME_TIMESTAMP").is_none());
    }

    #[test]
    fn a_line_without_cursor_or_time_is_refused_by_name() {
        assert_eq!(
            Entry::parse(br#"{"__CURSOR":"s=1;i=2","MESSAGE":"x"}"#),
            Err(EntryError::Missing("__REALTIME_TIMESTAMP"))
        );
        assert_eq!(
            Entry::parse(br#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":"x"}"#),
            Err(EntryError::Missing("__CURSOR"))
        );
        assert!(matches!(
            Entry::parse(b"-- No entries --"),
            Err(EntryError::Json(_))
        ));
    }

    #[test]
    fn excludes_win_and_includes_are_ored_over_the_whole_entry() {
        let entry = Entry::parse(LINE.as_bytes()).unwrap();
        assert!(entry.kept_by(&[]));
        assert!(!entry.kept_by(&[filter(FilterKind::Exclude, "hello")]));
        assert!(
            entry.kept_by(&[filter(FilterKind::Include, "cron\\.service")]),
            "any field, not only MESSAGE"
        );
        assert!(entry.kept_by(&[
            filter(FilterKind::Include, "nothing"),
            filter(FilterKind::Include, "world"),
        ]));
        assert!(!entry.kept_by(&[filter(FilterKind::Include, "nothing")]));
        assert!(!entry.kept_by(&[
            filter(FilterKind::Include, "world"),
            filter(FilterKind::Exclude, "PRIORITY\":\"6"),
        ]));
    }
}
