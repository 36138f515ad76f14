//! The shipped systemd unit: systemd's own exposure rating of it, and the lifecycle settings the
//! daemon relies on. `scripts/test` installs systemd's tools when they are missing.

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/cwlite.service");

fn analyze() -> String {
    std::env::var("CWLITE_TEST_SYSTEMD_ANALYZE").unwrap_or_else(|_| "systemd-analyze".into())
}

/// systemd's exposure rating of a unit with `text`, named cwlite.service.
fn exposure(text: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("cwlite.service");
    std::fs::write(&unit, text).unwrap();
    let out = Command::new(analyze())
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs (scripts/test installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("Overall exposure level for cwlite.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"))
}

/// `systemd-analyze security --offline=true` must rate the unit at most 2.0 ("OK"), alone and
/// with each drop-in shipped beside it (`systemd/cwlite.service.d/`).
#[test]
fn the_unit_is_rated_at_most_2_0_by_systemd_analyze_security() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let score = exposure(&unit);
    assert!(score <= 2.0, "exposure {score}");
    let drop_ins = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/cwlite.service.d");
    let mut rated = 0;
    for drop_in in std::fs::read_dir(drop_ins).unwrap() {
        let path = drop_in.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let score = exposure(&format!("{unit}\n{text}"));
        assert!(score <= 2.0, "exposure {score} with {}", path.display());
        rated += 1;
    }
    assert!(rated > 0, "no drop-in in {drop_ins}");
}

/// `auto_removal` under the unit: the drop-in that opens a log directory for writing is
/// installed by the `.deb` where cwlite's start-up message says it is.
#[test]
fn the_auto_removal_drop_in_is_shipped_where_the_start_up_message_points() {
    let source = "systemd/cwlite.service.d/auto-removal.conf";
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + source)
            .unwrap();
    assert!(
        text.contains("[Service]\nReadWritePaths=/var/log/"),
        "{text}"
    );
    let files =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/files")).unwrap();
    let installed = cwlite::daemon::sandbox::AUTO_REMOVAL_EXAMPLE.trim_start_matches('/');
    assert!(
        files.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&source) && fields.get(2) == Some(&installed)
        }),
        "{files}"
    );
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
        "SupplementaryGroups=adm systemd-journal",
        "StateDirectory=cwlite",
        "ConfigurationDirectory=cwlite",
        "MemoryMax=",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "{line} missing from the unit"
        );
    }
    // `cwlite ctl` manages what the service reads, and finds the daemon's state where it is.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert_eq!(
        exec,
        format!(
            "/usr/bin/cwlite run --etc {} --state-dir {}",
            cwlite::config::layout::DEFAULT_ETC,
            cwlite::daemon::DEFAULT_STATE_DIR
        )
    );
    assert!(
        unit.lines().any(|l| l
            == format!(
                "ExecStartPre=/usr/bin/cwlite validate --etc {}",
                cwlite::config::layout::DEFAULT_ETC
            )),
        "ExecStartPre does not validate what ExecStart reads"
    );
    // The stop timeout leaves room for the drain and the final checkpoints.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .unwrap();
    assert!(stop > cwlite::daemon::DRAIN_DEADLINE.as_secs() + 5);
}
