//! `credentials.role_arn` against moto's STS, through the bridge that records which access key
//! signed each request: the profile's keys sign only AssumeRole, through the `sts` endpoint the
//! common-config names; each section signs with its own role's keys; sessions are renewed
//! before they end.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Daemon;
use serde_json::json;

const METRICS_ROLE: &str = "arn:aws:iam::123456789012:role/cwlite-metrics";
const LOGS_ROLE: &str = "arn:aws:iam::123456789012:role/cwlite-logs";

/// The access keys of each role's sessions, from the daemon's "role session started" lines.
fn sessions(daemon: &Daemon) -> BTreeMap<String, Vec<String>> {
    let mut sessions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in daemon
        .stderr_seen
        .iter()
        .filter(|l| l.contains("role session started"))
    {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_owned()
        };
        sessions
            .entry(field("role"))
            .or_default()
            .push(field("access_key_id"));
    }
    sessions
}

fn keys_for(service: &str) -> BTreeSet<String> {
    common::access_keys_seen()
        .into_iter()
        .filter(|(s, _)| s == service)
        .map(|(_, key)| key)
        .collect()
}

/// A daemon whose profile holds `source_key`, reaching STS at `sts` through the
/// common-config's `[endpoints] sts`; role sessions of `session_secs` when given.
fn start(
    dir: &std::path::Path,
    config: &serde_json::Value,
    source_key: &str,
    session_secs: Option<u32>,
    sts: &str,
) -> Daemon {
    let mut command = common::run_command(dir, &dir.join("state"), config, source_key, "secret");
    std::fs::write(
        dir.join("common-config.toml"),
        format!(
            "[credentials]\nshared_credential_profile = \"AmazonCloudWatchAgent\"\nshared_credential_file = \"{}\"\n[endpoints]\nsts = \"{}\"\n",
            dir.join("credentials").display(),
            sts
        ),
    )
    .unwrap();
    if let Some(secs) = session_secs {
        command.env("CWLITE_ROLE_SESSION_SECS", secs.to_string());
    }
    let mut daemon = Daemon::spawn(&mut command);
    daemon.wait_stderr("started");
    daemon
}

#[test]
fn each_section_signs_with_its_role_and_the_profile_only_assumes_them() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    common::append(&log, "first\n");
    let source_key = common::unique("AKIDSOURCE");
    let config = json!({
        "agent": {
            "region": "eu-west-1",
            "metrics_collection_interval": 1,
            "credentials": {"role_arn": METRICS_ROLE}
        },
        "metrics": {
            "namespace": common::unique("CWLiteRole"),
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}
        },
        "logs": {
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "credentials": {"role_arn": LOGS_ROLE},
            "logs_collected": {"files": {"collect_list": [
                {"file_path": log.display().to_string(), "log_group_name": common::unique("role"), "log_stream_name": "s"}
            ]}}
        }
    });
    // Sessions of 6 s, renewed 2 s before their end.
    let mut daemon = start(dir.path(), &config, &source_key, Some(6), &endpoint);
    // Until each role has had a second session that signed requests of its service.
    let (logs_keys, metrics_keys) = common::eventually("renewed sessions signing requests", || {
        common::append(&log, "more\n");
        daemon.drain_stderr();
        let sessions = sessions(&daemon);
        let logs: Vec<String> = sessions.get(LOGS_ROLE)?.clone();
        let metrics: Vec<String> = sessions.get(METRICS_ROLE)?.clone();
        let (logs_seen, metrics_seen) = (keys_for("logs"), keys_for("monitoring"));
        let used = |keys: &[String], seen: &BTreeSet<String>| {
            keys.iter().filter(|k| seen.contains(*k)).count()
        };
        (used(&logs, &logs_seen) >= 2 && used(&metrics, &metrics_seen) >= 2)
            .then_some((logs, metrics))
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");

    let sts = keys_for("sts");
    let logs = keys_for("logs");
    let monitoring = keys_for("monitoring");
    assert!(
        sts.contains(&source_key),
        "AssumeRole is signed with the profile's keys"
    );
    assert!(
        !logs.contains(&source_key) && !monitoring.contains(&source_key),
        "the profile's keys sign nothing but AssumeRole"
    );
    for key in &logs_keys {
        assert!(
            !monitoring.contains(key),
            "a logs role key signed a metrics request"
        );
        assert!(key != &source_key);
    }
    for key in &metrics_keys {
        assert!(
            !logs.contains(key),
            "a metrics role key signed a logs request"
        );
    }
    let distinct: BTreeSet<&String> = logs_keys.iter().chain(&metrics_keys).collect();
    assert_eq!(
        distinct.len(),
        logs_keys.len() + metrics_keys.len(),
        "one session per role at a time"
    );
}

/// A role named once, at agent level, for both sections: one session, whose key signs both
/// the logs and the monitoring requests (not one AssumeRole per client).
#[test]
fn sections_sharing_a_role_share_one_session() {
    let endpoint = common::emulator_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    common::append(&log, "shared\n");
    let role = "arn:aws:iam::123456789012:role/cwlite-shared";
    let config = json!({
        "agent": {"region": "eu-west-1", "metrics_collection_interval": 1, "credentials": {"role_arn": role}},
        "metrics": {
            "namespace": common::unique("CWLiteSharedRole"),
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "metrics_collected": {"mem": {"measurement": ["mem_used_percent"]}}
        },
        "logs": {
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [
                {"file_path": log.display().to_string(), "log_group_name": common::unique("shared-role"), "log_stream_name": "s"}
            ]}}
        }
    });
    let source_key = common::unique("AKIDSHARED");
    let mut daemon = start(dir.path(), &config, &source_key, None, &endpoint);
    let key = common::eventually("one session's key on both services", || {
        daemon.drain_stderr();
        let keys = sessions(&daemon).get(role)?.clone();
        let key = keys.first()?.clone();
        (keys_for("logs").contains(&key) && keys_for("monitoring").contains(&key)).then_some(key)
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
    // Every line the daemon wrote, to its stop: one session, the one that signed both.
    let started: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains("role session started"))
        .collect();
    assert_eq!(
        started.len(),
        1,
        "one AssumeRole for both sections: {started:?}"
    );
    assert!(started[0].contains(&format!("access_key_id={key}")));
}

/// STS unreachable when the session is due for renewal: the failed renewal is a warning, the
/// current session keeps signing to its end (a line written after the failure arrives, signed
/// by it), and once STS answers again a new session takes over.
#[test]
fn a_failed_renewal_keeps_the_session_to_its_end_then_a_new_one_takes_over() {
    let endpoint = common::emulator_endpoint();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let relay = runtime.block_on(common::Relay::start(endpoint.trim_start_matches("http://")));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    common::append(&log, "first\n");
    let role = "arn:aws:iam::123456789012:role/cwlite-renewal";
    let config = json!({
        "agent": {"region": "eu-west-1", "credentials": {"role_arn": role}},
        "logs": {
            "endpoint_override": endpoint,
            "force_flush_interval": 1,
            "logs_collected": {"files": {"collect_list": [
                {"file_path": log.display().to_string(), "log_group_name": common::unique("renewal"), "log_stream_name": "s"}
            ]}}
        }
    });
    let source_key = common::unique("AKIDRENEW");
    // Sessions of 12 s, renewed 4 s before their end.
    let mut daemon = start(
        dir.path(),
        &config,
        &source_key,
        Some(12),
        &format!("http://127.0.0.1:{}", relay.port),
    );
    let first = daemon.wait_stderr_any("role session started");
    let signed = |key: &str| {
        common::access_keys_seen()
            .iter()
            .filter(|(service, k)| service == "logs" && k == key)
            .count()
    };
    let key = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("access_key_id="))
        .unwrap()
        .to_owned();
    runtime.block_on(relay.refuse());

    // Credentials are renewed when a request is signed: lines keep the shipper signing.
    common::eventually("the failed renewal", || {
        common::append(&log, "tick\n");
        daemon.drain_stderr();
        daemon
            .stderr_seen
            .iter()
            .any(|l| l.contains("cannot renew the role session"))
            .then_some(())
    });
    let before = signed(&key);
    common::append(&log, "after the failed renewal\n");
    common::eventually(
        "a request signed by the session after the failed renewal",
        || (signed(&key) > before).then_some(()),
    );
    daemon.drain_stderr();
    assert_eq!(
        sessions(&daemon)[role].len(),
        1,
        "no new session while STS is unreachable"
    );

    runtime.block_on(relay.restore());
    let second = common::eventually("a new session once STS answers", || {
        common::append(&log, "more\n");
        daemon.drain_stderr();
        sessions(&daemon)[role].get(1).cloned()
    });
    common::eventually("the new session signing", || {
        common::append(&log, "more\n");
        (signed(&second) > 0).then_some(())
    });
    let (status, stderr) = daemon.stop("TERM");
    assert!(status.success(), "{stderr:?}");
}
