//! The journalctl command line of one `journald` entry.
//!
//! Owns the arguments: the stock receiver's (`--utc --follow`, `--unit`, `--priority`,
//! `--directory`, matches as `K=V K=V + K=V`), and choices made against journalctl 252's
//! behaviour (`docs/stock-agent-issue21.md`, Q2) and cost:
//! - `--output=export` rather than the stock `json`: the same fields, at a quarter of
//!   journalctl's CPU (`benches/journal_read.rs`); `export` never shortens a field, which
//!   `json` does to `null` beyond 4,096 bytes without `--all`;
//! - `--merge`, because without it `--follow` stays on the newest boot (an empty directory
//!   even makes it exit) and the rest of an older boot after the cursor is lost;
//! - `--cursor C` and skipping the entry `C` itself, because `--after-cursor` drops one more
//!   entry when `C`'s own entry was vacuumed or does not match;
//! - `--no-tail` always, because `--follow` implies `--lines=10` and holds the rest of the
//!   backlog back until the next entry is written. "From now on" is not `--lines=0` either:
//!   on a journal that is empty at the start, the first file that appears is then read from
//!   where journalctl happens to notice it (three of five entries lost in a test here). It is
//!   the cursor of the journal's last entry at the start ([`tail_arguments`]), resumed from.

use std::ffi::OsString;

use crate::config::JournaldConfig;

/// `--directory=D` when the entry reads a directory rather than the system journal.
fn directory(config: &JournaldConfig) -> Option<OsString> {
    config.directory.as_ref().map(|directory| {
        let mut arg = OsString::from("--directory=");
        arg.push(directory);
        arg
    })
}

/// journalctl's arguments for the last entry of the journal `config` reads, whatever its
/// selection: its cursor is where "from now on" starts.
pub fn tail_arguments(config: &JournaldConfig) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["--output=json", "--merge", "--lines=1", "--no-pager"]
        .into_iter()
        .map(OsString::from)
        .collect();
    args.extend(directory(config));
    args
}

/// journalctl's arguments for `config`, going on from `resume` (a cursor whose own entry was
/// already read) when given, else from the oldest entry kept.
pub fn arguments(config: &JournaldConfig, resume: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--utc",
        "--output=export",
        "--follow",
        "--merge",
        "--no-pager",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push("--no-tail".into());
    if let Some(cursor) = resume {
        args.push(format!("--cursor={cursor}").into());
    }
    for unit in &config.units {
        args.push(format!("--unit={unit}").into());
    }
    args.push(format!("--priority={}", config.priority).into());
    args.extend(directory(config));
    for (i, group) in config.matches.iter().enumerate() {
        if i > 0 {
            args.push("+".into());
        }
        for (field, value) in group {
            args.push(format!("{field}={value}").into());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> JournaldConfig {
        JournaldConfig {
            log_group_name: "g".into(),
            log_stream_name: "s".into(),
            log_group_class: None,
            retention_in_days: None,
            units: vec!["sshd".into(), "cron.service".into()],
            priority: "warning".into(),
            matches: vec![
                vec![
                    ("_TRANSPORT".into(), "syslog".into()),
                    ("_UID".into(), "0".into()),
                ],
                vec![("_TRANSPORT".into(), "kernel".into())],
            ],
            filters: Vec::new(),
            directory: Some("/var/log/journal-test".into()),
            start_at: crate::config::JournalStart::End,
        }
    }

    fn text(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn every_selection_is_passed_and_the_backlog_is_never_held_back() {
        assert_eq!(
            text(&arguments(&entry(), None)),
            "--utc --output=export --follow --merge --no-pager --no-tail --unit=sshd --unit=cron.service --priority=warning --directory=/var/log/journal-test _TRANSPORT=syslog _UID=0 + _TRANSPORT=kernel"
        );
    }

    #[test]
    fn a_resume_reads_the_whole_backlog_from_the_cursor_itself() {
        let args = text(&arguments(&entry(), Some("s=1;i=2")));
        assert!(args.contains("--no-tail --cursor=s=1;i=2 "), "{args}");
        assert!(!args.contains("--after-cursor") && !args.contains("--lines"));
    }

    #[test]
    fn the_tail_is_the_last_entry_of_the_whole_journal_read() {
        assert_eq!(
            text(&tail_arguments(&entry())),
            "--output=json --merge --lines=1 --no-pager --directory=/var/log/journal-test"
        );
    }
}
