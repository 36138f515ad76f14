//! The two log sources beside files: `logs_collected.journald` and `metrics_collected.emf`,
//! from raw JSON to [`JournaldConfig`] and [`EmfConfig`].
//!
//! Owns their rules as the stock translator reads them (`translator/translate/otel/pipeline/
//! journald` and `emf_logs`, see `docs/stock-agent-issue21.md`): which keys are read, their
//! defaults, and what stops the stock agent (a match field that is not `^[_A-Z]+$`, a filter
//! type other than include or exclude) against what it silently drops (non-string units or
//! match values, a filter missing a key), which cwlite drops with a warning. It touches no
//! journal and binds no socket.

use std::path::PathBuf;

use serde_json::Value;

use super::diag::{Collector, JsonPath};
use super::expand::Placeholders;
use super::model::{
    DEFAULT_EMF_ADDRESS, DEFAULT_EMF_GROUP, EmfConfig, JOURNAL_PRIORITIES, JournalStart,
    JournaldConfig,
};
use super::validate::{
    check_length, filters, group_class, is_host_port, is_valid_log_group_name,
    is_valid_log_stream_name, retention, warn_unknown_keys,
};

/// Keys of a journald `collect_list` entry: the stock ones, then cwlite's own.
const JOURNALD_ENTRY_KEYS: &[&str] = &[
    "log_group_name",
    "log_stream_name",
    "retention_in_days",
    "log_group_class",
    "units",
    "priority",
    "matches",
    "filters",
    "directory",
    "start_at",
];

/// Most journald entries: each runs its own journalctl, and the unit allows 64 tasks
/// (`TasksMax=`) for them and cwlite's own threads.
pub const MAX_JOURNALD_ENTRIES: usize = 16;

/// `logs.logs_collected.journald`.
pub(super) fn validate_journald(
    value: &Value,
    path: &JsonPath,
    hostname: &str,
    placeholders: &Placeholders,
    diagnostics: &mut Collector,
) -> Vec<JournaldConfig> {
    let Some(section) = value.as_object() else {
        diagnostics.error(path, "must be an object with a collect_list");
        return Vec::new();
    };
    warn_unknown_keys(
        value,
        path,
        &["collect_list"],
        "the stock agent reads only collect_list here",
        diagnostics,
    );
    let list_path = path.key("collect_list");
    let Some(list) = section.get("collect_list").and_then(Value::as_array) else {
        diagnostics.error(&list_path, "required: an array of entries");
        return Vec::new();
    };
    if list.is_empty() || list.len() > MAX_JOURNALD_ENTRIES {
        diagnostics.error(
            &list_path,
            format!(
                "{} entries, must be 1 to {MAX_JOURNALD_ENTRIES}",
                list.len()
            ),
        );
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            validate_entry(
                entry,
                &list_path.index(i),
                hostname,
                placeholders,
                diagnostics,
            )
        })
        .collect()
}

fn validate_entry(
    entry: &Value,
    at: &JsonPath,
    hostname: &str,
    placeholders: &Placeholders,
    diagnostics: &mut Collector,
) -> Option<JournaldConfig> {
    let Some(map) = entry.as_object() else {
        diagnostics.error(at, "must be an object");
        return None;
    };
    warn_unknown_keys(
        entry,
        at,
        JOURNALD_ENTRY_KEYS,
        "not a journald key",
        diagnostics,
    );
    let string = |key: &str, diagnostics: &mut Collector| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => {
                diagnostics.error(&at.key(key), "empty: leave the key out instead");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                diagnostics.error(&at.key(key), "must be a string");
                None
            }
        }
    };
    let Some(group) = string("log_group_name", diagnostics) else {
        if !map.contains_key("log_group_name") {
            diagnostics.error(&at.key("log_group_name"), "required");
        }
        return None;
    };
    let log_group_name = placeholders.resolve(&group);
    if !is_valid_log_group_name(&log_group_name) {
        diagnostics.error(
            &at.key("log_group_name"),
            format!("\"{log_group_name}\" is not a valid log group name: 1 to 512 of letters, digits and . - _ / #"),
        );
    }
    let log_stream_name = string("log_stream_name", diagnostics)
        .map_or_else(|| hostname.to_owned(), |s| placeholders.resolve(&s));
    if !is_valid_log_stream_name(&log_stream_name) {
        diagnostics.error(
            &at.key("log_stream_name"),
            format!(
                "\"{log_stream_name}\" is not a valid log stream name: 1 to 512 characters without : or *"
            ),
        );
    }
    let log_group_class = group_class(
        string("log_group_class", diagnostics).as_deref(),
        at,
        diagnostics,
    );
    let retention_in_days = match map.get("retention_in_days") {
        None => None,
        Some(Value::Number(n)) if n.is_i64() => retention(n.as_i64(), at, diagnostics),
        Some(_) => {
            diagnostics.error(&at.key("retention_in_days"), "must be an integer");
            None
        }
    };
    let units = strings(map.get("units"), &at.key("units"), diagnostics);
    for (i, unit) in units.iter().enumerate() {
        if unit.is_empty() || unit.contains(char::is_whitespace) {
            diagnostics.error(
                &at.key("units").index(i),
                format!("\"{unit}\" is not a unit name"),
            );
        }
    }
    let priority = string("priority", diagnostics).unwrap_or_else(|| "info".to_owned());
    if !is_priority(&priority) {
        diagnostics.error(
            &at.key("priority"),
            format!(
                "\"{priority}\" is not a priority: one of {}, 0 to 7, or a range like err..info",
                JOURNAL_PRIORITIES.join(", ")
            ),
        );
    }
    let matches = matches(map.get("matches"), &at.key("matches"), diagnostics);
    let filters = match map.get("filters") {
        None => Vec::new(),
        Some(Value::Array(list)) => {
            // The stock translator skips an entry missing its type or expression.
            let complete: Vec<Value> = list
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    let complete = f.get("type").is_some() && f.get("expression").is_some();
                    if !complete {
                        diagnostics.warn(
                            &at.key("filters").index(*i),
                            "ignored: a filter needs both type and expression",
                        );
                    }
                    complete
                })
                .map(|(_, f)| f.clone())
                .collect();
            filters(&complete, at, diagnostics)
        }
        Some(_) => {
            diagnostics.error(&at.key("filters"), "must be an array");
            Vec::new()
        }
    };
    let directory = string("directory", diagnostics).map(PathBuf::from);
    if let Some(directory) = &directory
        && !directory.is_absolute()
    {
        diagnostics.error(&at.key("directory"), "must be an absolute path");
    }
    let start_at = match string("start_at", diagnostics).as_deref() {
        None | Some("end") => JournalStart::End,
        Some("beginning") => JournalStart::Beginning,
        Some(other) => {
            diagnostics.error(
                &at.key("start_at"),
                format!("\"{other}\" is neither end nor beginning"),
            );
            JournalStart::End
        }
    };
    Some(JournaldConfig {
        log_group_name,
        log_stream_name,
        log_group_class,
        retention_in_days,
        units,
        priority,
        matches,
        filters,
        directory,
        start_at,
    })
}

/// An array of strings; other members are dropped with a warning, as the stock translator
/// drops them silently.
fn strings(value: Option<&Value>, at: &JsonPath, diagnostics: &mut Collector) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                Value::String(s) => Some(s.clone()),
                _ => {
                    diagnostics.warn(&at.index(i), "ignored: not a string");
                    None
                }
            })
            .collect(),
        Some(_) => {
            diagnostics.error(at, "must be an array of strings");
            Vec::new()
        }
    }
}

/// `matches`: an array of `{FIELD: value}` objects.
fn matches(
    value: Option<&Value>,
    at: &JsonPath,
    diagnostics: &mut Collector,
) -> Vec<Vec<(String, String)>> {
    let list = match value {
        None => return Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => {
            diagnostics.error(at, "must be an array of objects");
            return Vec::new();
        }
    };
    let mut groups = Vec::new();
    for (i, group) in list.iter().enumerate() {
        let Some(fields) = group.as_object() else {
            diagnostics.error(&at.index(i), "must be an object of FIELD: value");
            continue;
        };
        let mut pairs = Vec::new();
        for (field, value) in fields {
            // `buildMatchConfig` refuses the receiver for any other field name.
            if field.is_empty() || !field.bytes().all(|b| b == b'_' || b.is_ascii_uppercase()) {
                diagnostics.error(
                    &at.index(i).key(field),
                    format!("\"{field}\" is not a journal field name the stock agent takes: A to Z and _ only"),
                );
                continue;
            }
            match value {
                Value::String(v) => pairs.push((field.clone(), v.clone())),
                _ => diagnostics.warn(&at.index(i).key(field), "ignored: not a string"),
            }
        }
        pairs.sort();
        if !pairs.is_empty() {
            groups.push(pairs);
        }
    }
    groups
}

/// journalctl's `--priority`: a level by name or number, or `from..to`.
fn is_priority(text: &str) -> bool {
    let level = |t: &str| {
        JOURNAL_PRIORITIES.contains(&t) || (t.len() == 1 && matches!(t.as_bytes()[0], b'0'..=b'7'))
    };
    match text.split_once("..") {
        Some((from, to)) => level(from) && level(to),
        None => level(text),
    }
}

/// `logs.metrics_collected.emf`: with no `service_address`, TCP and UDP on
/// [`DEFAULT_EMF_ADDRESS`]; with one, UDP if it names udp, else TCP (the stock OpenTelemetry
/// translator's rule).
pub(super) fn validate_emf(
    value: &Value,
    path: &JsonPath,
    default_stream: &str,
    diagnostics: &mut Collector,
) -> Option<EmfConfig> {
    if !value.is_object() {
        diagnostics.error(path, "must be an object");
        return None;
    }
    warn_unknown_keys(
        value,
        path,
        &["service_address"],
        "the emf listener reads only service_address",
        diagnostics,
    );
    let (tcp, udp) = match value.get("service_address") {
        None => (
            Some(DEFAULT_EMF_ADDRESS.to_owned()),
            Some(DEFAULT_EMF_ADDRESS.to_owned()),
        ),
        Some(Value::String(address)) => {
            let at = path.key("service_address");
            check_length(address, 1, 255, &at, diagnostics);
            let udp = address.contains("udp");
            let bare = address
                .strip_prefix("udp://")
                .or_else(|| address.strip_prefix("tcp://"))
                .or_else(|| address.strip_prefix("udp:"))
                .or_else(|| address.strip_prefix("tcp:"))
                .unwrap_or(address);
            if !is_host_port(bare) {
                diagnostics.error(
                    &at,
                    format!("\"{address}\" is not udp://host:port, tcp://host:port or host:port"),
                );
                return None;
            }
            if udp {
                (None, Some(bare.to_owned()))
            } else {
                (Some(bare.to_owned()), None)
            }
        }
        Some(_) => {
            diagnostics.error(&path.key("service_address"), "must be a string");
            return None;
        }
    };
    Some(EmfConfig {
        tcp,
        udp,
        default_group: DEFAULT_EMF_GROUP.to_owned(),
        default_stream: default_stream.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_journalctls_names_numbers_and_ranges() {
        for ok in ["info", "err", "0", "7", "emerg..err", "3..6", "debug"] {
            assert!(is_priority(ok), "{ok}");
        }
        for bad in ["", "error", "INFO", "8", "info..", "..info", "warn", "1..9"] {
            assert!(!is_priority(bad), "{bad}");
        }
    }

    #[test]
    fn journald_entries_leave_room_for_cwlites_own_threads_under_the_units_task_limit() {
        assert_eq!(MAX_JOURNALD_ENTRIES, 16);
        let unit = include_str!("../../systemd/cwlite.service");
        assert!(unit.lines().any(|l| l == "TasksMax=64"), "the unit's limit");
    }

    #[test]
    fn there_are_eight_priorities_in_level_order() {
        assert_eq!(JOURNAL_PRIORITIES.len(), 8);
        assert_eq!(JOURNAL_PRIORITIES[3], "err");
        assert_eq!(JOURNAL_PRIORITIES[6], "info");
    }
}
