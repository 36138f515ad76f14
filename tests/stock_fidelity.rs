//! Drop-in fidelity (issue 19): configurations the stock agent accepts mean the same in
//! cwlite. Each table row is one configuration and what the stock agent makes of it, with the
//! place in the stock agent's source (`aws/amazon-cloudwatch-agent`, or telegraf, which it
//! runs) that decides it. The rows fail on cwlite before issue 19 where it differed.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use cwlite::collect::Sample;
use cwlite::config::expand::HostFacts;
use cwlite::config::{self, Config, Environment, RegionPolicy};
use cwlite::metrics::DatumBuilder;
use serde_json::{Value, json};

fn load(json: &Value) -> (Config, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_json(dir.path(), "config.json", json);
    let host = HostFacts {
        hostname: "web-01".into(),
        ip_address: Some(Ipv4Addr::new(10, 0, 0, 7)),
        date: "2026-12-05".into(),
    };
    match config::load(
        &[path],
        None,
        &Environment::fixed(&[("AWS_REGION", "eu-west-1")], host),
        RegionPolicy::Optional,
    ) {
        Ok(loaded) => (
            loaded.config,
            loaded
                .warnings
                .iter()
                .map(|d| format!("{}: {}", d.path, d.message))
                .collect(),
        ),
        Err(err) => panic!("{err}"),
    }
}

/// The datums the first plugin of `json` sends for one sample of each of its fields, as
/// `name{dimensions}` (cpu samples carry `cpu=cpu-total`).
fn datums(json: &Value) -> Vec<String> {
    let (config, _) = load(json);
    let metrics = config.metrics.expect("a metrics section");
    let plugin = &metrics.plugins[0];
    let mut builder = DatumBuilder::new(plugin, &config.agent, &metrics.aggregation_dimensions);
    let tags: cwlite::collect::Tags = vec![("cpu", Arc::from("cpu-total"))].into();
    let samples: Vec<Sample> = plugin
        .measurements
        .iter()
        .map(|m| Sample {
            field: m.field,
            value: 1.0,
            tags: tags.clone(),
        })
        .collect();
    let mut out = Vec::new();
    builder.build(&samples, 0, &mut out);
    let mut shown: Vec<String> = out
        .iter()
        .map(|d| {
            let dims: Vec<String> = d
                .dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{}{{{}}}", d.metric_name, dims.join(","))
        })
        .collect();
    shown.sort();
    shown
}

fn cpu(plugin: Value) -> Value {
    json!({"metrics": {"metrics_collected": {"cpu": plugin}}})
}

/// `drop_original_metrics`, read as `translator/translate/otel/common/metrics.go`
/// `GetDropOriginalMetrics` reads it, and applied as `plugins/outputs/cloudwatch/cloudwatch.go`
/// `BuildMetricDatum`/`IsDropping` apply it: the datum with the original dimensions is not
/// sent, its roll-ups are.
#[test]
fn drop_original_metrics_drops_what_the_stock_agent_drops() {
    let rows: &[(&str, Value, &[&str])] = &[
        (
            "a short name gets the plugin prefix (strings.Contains(entry, category) is false)",
            json!({"measurement": ["time_active", "usage_idle"], "drop_original_metrics": ["time_active"]}),
            &["cpu_usage_idle{host=web-01,cpu=cpu-total}"],
        ),
        (
            "the full name is used as it is",
            json!({"measurement": ["time_active", "usage_idle"], "drop_original_metrics": ["cpu_usage_idle"]}),
            &["cpu_time_active{host=web-01,cpu=cpu-total}"],
        ),
        (
            "\"*\" is every measurement listed (dropOriginalWildcard)",
            json!({"measurement": ["time_active", {"name": "usage_idle", "rename": "IDLE"}], "drop_original_metrics": ["*"]}),
            &[],
        ),
        (
            "a renamed measurement named by its original name drops the renamed metric",
            json!({"measurement": [{"name": "usage_idle", "rename": "CPU_IDLE"}, "time_active"], "drop_original_metrics": ["usage_idle"]}),
            &["cpu_time_active{host=web-01,cpu=cpu-total}"],
        ),
        (
            "a rename string without the plugin's name is read as cpu_<rename> and drops nothing",
            json!({"measurement": [{"name": "usage_idle", "rename": "IDLE"}], "drop_original_metrics": ["IDLE"]}),
            &["IDLE{host=web-01,cpu=cpu-total}"],
        ),
        (
            "the original series goes, its roll-ups stay",
            json!({"measurement": ["usage_idle"], "drop_original_metrics": ["usage_idle"]}),
            &[],
        ),
    ];
    for (why, plugin, expected) in rows {
        assert_eq!(datums(&cpu(plugin.clone())), *expected, "{why}");
    }
    let mut with_rollup =
        cpu(json!({"measurement": ["usage_idle"], "drop_original_metrics": ["usage_idle"]}));
    with_rollup["metrics"]["aggregation_dimensions"] = json!([["host"]]);
    assert_eq!(
        datums(&with_rollup),
        ["cpu_usage_idle{host=web-01}"],
        "roll-ups are still sent (index 0 only is skipped)"
    );
    let (_, warnings) = load(&cpu(
        json!({"measurement": [{"name": "usage_idle", "rename": "IDLE"}], "drop_original_metrics": ["IDLE"]}),
    ));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("drop_original_metrics[0]") && w.contains("cpu_IDLE")),
        "{warnings:?}"
    );
}

/// Dimensions: telegraf adds a plugin's `tags` (the translator's name for plugin-level
/// `append_dimensions`, `translator/translate/metrics/util/commonconfigutil.go`) and then the
/// global tags (`host`) only where the metric has no such tag yet (telegraf
/// `models/makemetric.go`, `makemetric`).
#[test]
fn a_plugins_own_tags_win_over_append_dimensions_which_win_over_host() {
    let rows: &[(&str, Value, &[&str])] = &[
        (
            "append_dimensions cannot replace the plugin's own cpu tag",
            json!({"measurement": ["usage_idle"], "append_dimensions": {"cpu": "x"}}),
            &["cpu_usage_idle{host=web-01,cpu=cpu-total}"],
        ),
        (
            "append_dimensions' host comes before the global host",
            json!({"measurement": ["usage_idle"], "append_dimensions": {"host": "alias"}}),
            &["cpu_usage_idle{host=alias,cpu=cpu-total}"],
        ),
        (
            "other keys are added",
            json!({"measurement": ["usage_idle"], "append_dimensions": {"team": "ops"}}),
            &["cpu_usage_idle{host=web-01,cpu=cpu-total,team=ops}"],
        ),
    ];
    for (why, plugin, expected) in rows {
        assert_eq!(datums(&cpu(plugin.clone())), *expected, "{why}");
    }
}

fn files(entry: Value, section: Value) -> Value {
    let mut logs = section;
    logs["logs_collected"] = json!({"files": {"collect_list": [entry]}});
    json!({"logs": logs})
}

/// `collect_list` names, as `plugins/inputs/logfile/fileconfig.go` (`init`, `logGroupName`)
/// and `logfile.go` (`FindLogSrc`) derive them.
#[test]
fn log_group_and_stream_names_are_derived_as_the_stock_agent_derives_them() {
    let entry = |entry: Value, section: Value| {
        let (config, warnings) = load(&files(entry, section));
        let files = config.logs.map(|l| l.files).unwrap_or_default();
        (files, warnings)
    };
    let named = |file: &cwlite::config::FileConfig| match &file.log_group_name {
        cwlite::config::LogGroupName::Named(name) => name.clone(),
        cwlite::config::LogGroupName::FromEachFilePath => "<each path>".into(),
    };
    // (why, entry, logs section, group, stream)
    let rows: &[(&str, Value, Value, &str, &str)] = &[
        (
            "publish_multi_logs with a named group: the prefix is the entry's stream, empty when unset, never the section's or the host",
            json!({"file_path": "/var/log/*.log", "log_group_name": "g", "publish_multi_logs": true}),
            json!({"log_stream_name": "section"}),
            "g",
            "",
        ),
        (
            "publish_multi_logs with the entry's own stream",
            json!({"file_path": "/var/log/*.log", "log_group_name": "g", "log_stream_name": "web", "publish_multi_logs": true}),
            json!({}),
            "g",
            "web",
        ),
        (
            "without publish_multi_logs: the section's stream",
            json!({"file_path": "/var/log/app.log", "log_group_name": "g"}),
            json!({"log_stream_name": "section"}),
            "g",
            "section",
        ),
        (
            "the default group is file_path without Go's filepath.Ext: a dotfile loses its whole name",
            json!({"file_path": "/var/log/.hidden"}),
            json!({}),
            "/var/log/",
            "web-01",
        ),
        (
            "the default group of a dated file drops only the last extension",
            json!({"file_path": "/tmp/app.log.1"}),
            json!({}),
            "/tmp/app.log",
            "web-01",
        ),
    ];
    for (why, file, section, group, stream) in rows {
        let (files, warnings) = entry(file.clone(), section.clone());
        assert_eq!(files.len(), 1, "{why}: {warnings:?}");
        assert_eq!(
            (named(&files[0]).as_str(), files[0].log_stream_name.as_str()),
            (*group, *stream),
            "{why}"
        );
    }
}

/// A `collect_list` entry without `log_group_name` whose default from a glob is not a valid
/// group name. The stock agent starts, and CloudWatch refuses every batch of it, which the
/// stock agent drops without retry, moving the offset on (`internal/pusher/sender.go`, `Send`,
/// `InvalidParameterException`): the data is lost, one error per batch. cwlite skips that
/// entry alone, says so at start, and every other entry runs; it refused the whole
/// configuration before.
#[test]
fn an_entry_whose_default_group_is_invalid_is_skipped_and_the_others_run() {
    let json = json!({"logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "/var/log/app/*.log"},
        {"file_path": "/var/log/syslog", "log_group_name": "syslog"},
    ]}}}});
    let (config, warnings) = load(&json);
    let files = config.logs.expect("logs").files;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].file_path, "/var/log/syslog");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("collect_list[0].log_group_name")
                && w.contains("\"/var/log/app/*\"")
                && w.contains("skipped")),
        "{warnings:?}"
    );
}

/// `metrics_destinations`: the stock agent builds its CloudWatch pipelines only when the key is
/// absent or lists `cloudwatch` (`translator/translate/otel/pipeline/host/translators.go`,
/// `NewTranslators`). With only `amp`, nothing goes to CloudWatch; cwlite published there, and
/// CloudWatch bills custom metrics.
#[test]
fn metrics_destinations_without_cloudwatch_send_nothing_to_cloudwatch() {
    let with = |destinations: Value| {
        load(&json!({"metrics": {
            "metrics_destinations": destinations,
            "metrics_collected": {"cpu": {"measurement": ["usage_idle"]}}
        }}))
    };
    let (config, warnings) = with(json!({"amp": {"workspace_id": "ws-1"}}));
    assert!(config.metrics.is_none());
    assert!(
        warnings.iter().any(
            |w| w.contains("metrics.metrics_destinations") && w.contains("lists no cloudwatch")
        ),
        "{warnings:?}"
    );
    let (config, _) = with(json!({"cloudwatch": {}, "amp": {"workspace_id": "ws-1"}}));
    assert_eq!(config.metrics.expect("metrics").plugins.len(), 1);
}

/// `logs.concurrency`: unset, 0 and 1 send one PutLogEvents at a time per stream in the stock
/// agent; above 1 it is one pool of that many senders shared by all streams
/// (`plugins/outputs/cloudwatchlogs/cloudwatchlogs.go`, `getDest`; `internal/pusher/pool.go`).
/// cwlite keeps a few calls per stream by default (CloudWatch no longer limits a stream's rate,
/// and merged batches keep each file's order), bounded over all streams; a configured value is
/// the stock pool: it bounds the whole process.
#[test]
fn a_configured_logs_concurrency_is_a_pool_shared_by_all_streams() {
    let with = |concurrency: Option<i64>| {
        let mut logs = json!({"logs_collected": {"files": {"collect_list": [
            {"file_path": "/var/log/syslog", "log_group_name": "g"}
        ]}}});
        if let Some(n) = concurrency {
            logs["concurrency"] = json!(n);
        }
        let (config, _) = load(&json!({ "logs": logs }));
        let logs = config.logs.expect("logs");
        (logs.concurrency, logs.requests_in_flight)
    };
    use cwlite::config::{DEFAULT_LOGS_CONCURRENCY, DEFAULT_LOGS_REQUESTS_IN_FLIGHT};
    assert_eq!(
        with(None),
        (DEFAULT_LOGS_CONCURRENCY, DEFAULT_LOGS_REQUESTS_IN_FLIGHT)
    );
    assert_eq!(with(Some(1)), (1, DEFAULT_LOGS_REQUESTS_IN_FLIGHT));
    assert_eq!(with(Some(8)), (8, 8));
}

/// Sections the stock schema allows (`translator/config/schema.json`, `logs_collected`:
/// `files`, `windows_events`, `application_signals`) start cwlite with a warning, never
/// "unknown field".
#[test]
fn every_logs_collected_section_the_stock_schema_allows_is_accepted() {
    let (config, warnings) = load(&json!({"logs": {"logs_collected": {
        "files": {"collect_list": [{"file_path": "/var/log/syslog", "log_group_name": "g"}]},
        "application_signals": {},
        "windows_events": {"collect_list": []},
    }}}));
    assert_eq!(config.logs.expect("logs").files.len(), 1);
    for section in ["application_signals", "windows_events"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("logs.logs_collected.{section}"))
                    && w.contains("ignored")),
            "{section}: {warnings:?}"
        );
    }
}

/// diskio's EC2 NVMe measurements (`ebs_*`, `instance_store_*`; the stock agent routes them to
/// its `awsnvme` receiver, `translator/translate/otel/receiver/awsnvme`): accepted with a
/// warning, nothing sent for them on premises, the other measurements collected.
#[test]
fn diskio_ebs_and_instance_store_measurements_are_accepted_and_not_collected() {
    let (config, warnings) = load(&json!({"metrics": {"metrics_collected": {"diskio": {
        "measurement": ["io_time", "ebs_total_read_ops", "diskio_instance_store_volume_queue_length"]
    }}}}));
    let plugin = &config.metrics.expect("metrics").plugins[0];
    let names: Vec<&str> = plugin
        .measurements
        .iter()
        .map(|m| m.metric_name.as_str())
        .collect();
    assert_eq!(names, ["diskio_io_time"]);
    for (i, name) in [
        (1, "ebs_total_read_ops"),
        (2, "diskio_instance_store_volume_queue_length"),
    ] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("measurement[{i}]"))
                    && w.contains(name)
                    && w.contains("EC2 NVMe")),
            "{name}: {warnings:?}"
        );
    }
}

/// `file_path` globs: one implementation (`config::file_glob`) checks them at validation and
/// matches them in discovery, with the semantics of the stock agent's
/// `plugins/inputs/logfile/globpath` (gobwas/glob over a walk from the last component without
/// `*`, `?` or `[`). Before, validation accepted `{a,b}` and discovery read it literally, and
/// `/**/` also matched no directory at all.
#[test]
fn file_path_globs_select_what_the_stock_agent_selects() {
    use cwlite::tail::discovery::Pattern;
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "top.log",
        "nginx/access.log",
        "apache2/error.log",
        "app.log",
        "app.txt",
    ] {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "x\n").unwrap();
    }
    // (why, glob below the directory, files selected)
    let rows: &[(&str, &str, &[&str])] = &[
        (
            "`/**/` is one directory or more",
            "**/*.log",
            &["apache2/error.log", "nginx/access.log"],
        ),
        (
            "braces after the root are alternatives",
            "*/{access,error}.log",
            &["apache2/error.log", "nginx/access.log"],
        ),
        (
            "braces in the last component",
            "app.{log,txt}",
            &["app.log", "app.txt"],
        ),
        (
            "a brace before the first `*` is part of the literal root",
            "{nginx,apache2}/*.log",
            &[],
        ),
    ];
    for (why, glob, expected) in rows {
        let file_path = format!("{}/{glob}", dir.path().display());
        let (config, _) = load(
            &json!({"logs": {"logs_collected": {"files": {"collect_list": [
                {"file_path": file_path, "log_group_name": "g", "publish_multi_logs": true}
            ]}}}}),
        );
        let entry = &config.logs.expect("logs").files[0];
        let pattern = Pattern {
            file_path: entry.file_path.clone(),
            publish_multi_logs: true,
            blacklist: None,
        };
        let mut found: Vec<String> = pattern
            .discover()
            .iter()
            .map(|f| {
                f.path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        found.sort();
        assert_eq!(found, *expected, "{why}");
    }
}

/// A measurement object with a key of its own (`"units"` for `"unit"`, a comment key): the
/// stock schema accepts it, and cwlite refused the whole configuration. Now it is ignored with
/// a warning naming it, and the measurement is collected.
#[test]
fn an_extra_key_in_a_measurement_object_is_ignored_with_a_warning() {
    let (config, warnings) = load(&cpu(
        json!({"measurement": [{"name": "usage_idle", "units": "Percent", "_comment": "idle"}]}),
    ));
    assert_eq!(
        config.metrics.expect("metrics").plugins[0].measurements[0].metric_name,
        "cpu_usage_idle"
    );
    for key in ["units", "_comment"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&format!("cpu.measurement[0].{key}")) && w.contains("ignored")),
            "{key}: {warnings:?}"
        );
    }
}

/// A brace in a directory before the first `*`, `?` or `[` is part of the literal root for the
/// stock agent (`globpath.go`, `findRootDir`) as for cwlite, so the entry matches nothing:
/// both accept it, and cwlite says so.
#[test]
fn braces_in_the_literal_root_are_accepted_and_warned_about() {
    let (config, warnings) = load(
        &json!({"logs": {"logs_collected": {"files": {"collect_list": [
            {"file_path": "/var/log/{nginx,apache2}/*.log", "log_group_name": "web"}
        ]}}}}),
    );
    assert_eq!(config.logs.expect("logs").files.len(), 1);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("collect_list[0].file_path")
                && w.contains("matches nothing")
                && w.contains("{nginx,apache2}")),
        "{warnings:?}"
    );
}
