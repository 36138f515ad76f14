//! The shipped systemd unit: systemd's own exposure rating of it, and the lifecycle settings the
//! daemon relies on. `scripts/test` installs systemd's tools when they are missing.

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/cwlite.service");

fn analyze() -> String {
    std::env::var("CWLITE_TEST_SYSTEMD_ANALYZE").unwrap_or_else(|_| "systemd-analyze".into())
}

/// `systemd-analyze security --offline=true` must rate the unit at most 2.0 ("OK").
#[test]
fn the_unit_is_rated_at_most_2_0_by_systemd_analyze_security() {
    let out = Command::new(analyze())
        .args(["security", "--offline=true", "--no-pager"])
        .arg(UNIT)
        .output()
        .expect("systemd-analyze runs (scripts/test installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for cwlite.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}

/// What the daemon's lifecycle needs from the unit.
#[test]
fn the_unit_runs_cwlite_as_a_notify_service_with_watchdog_reload_and_credentials() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStartPre=/usr/bin/cwlite validate",
        "Restart=on-failure",
        "LoadCredential=aws-credentials:",
        "DynamicUser=yes",
        "SupplementaryGroups=adm",
        "StateDirectory=cwlite",
        "ConfigurationDirectory=cwlite",
        "MemoryMax=",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "{line} missing from the unit"
        );
    }
    // The stop timeout leaves room for the drain and the final checkpoints.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .unwrap();
    assert!(stop > cwlite::daemon::DRAIN_DEADLINE.as_secs() + 5);
}
