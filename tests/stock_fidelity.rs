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
    try_load(json).unwrap_or_else(|err| panic!("{err}"))
}

fn try_load(json: &Value) -> Result<(Config, Vec<String>), config::LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_json(dir.path(), "config.json", json);
    let host = HostFacts {
        hostname: "web-01".into(),
        ip_address: Some(Ipv4Addr::new(10, 0, 0, 7)),
        date: "2026-12-05".into(),
    };
    let loaded = config::load(
        &[path],
        None,
        &Environment::fixed(&[("AWS_REGION", "eu-west-1")], host),
        RegionPolicy::Optional,
    )?;
    let warnings = loaded
        .warnings
        .iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    Ok((loaded.config, warnings))
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

/// `encoding`, looked up as `plugins/inputs/logfile/fileconfig.go` (`FileConfig.init`) looks it
/// up: `utf-8`, `utf_8`, `utf8` and `ascii` exactly mean no decoding, then a WHATWG label
/// (`x/net/html/charset.Lookup`), then any IANA name or alias `x/text` decodes
/// (`ianaindex.IANA.Encoding`), else the agent stops. Before issue 19 cwlite read `ascii` as
/// windows-1252 and refused every IANA-only name.
#[test]
fn encodings_are_looked_up_as_the_stock_agent_looks_them_up() {
    let entry = |encoding: &str| {
        files(
            json!({"file_path": "/var/log/app.log", "log_group_name": "g", "encoding": encoding}),
            json!({}),
        )
    };
    // (encoding, the character set read)
    let rows = [
        ("ascii", "UTF-8"),
        ("utf_8", "UTF-8"),
        ("ISO-8859-1", "windows-1252"),
        ("Latin-9", "ISO-8859-15"),
        ("ISO_8859-16:2001", "ISO-8859-16"),
        ("windows-936", "GBK"),
        ("csUTF16LE", "UTF-16LE"),
        ("IBM850", "IBM850"),
        ("cp437", "IBM437"),
        ("CCSID00858", "IBM00858"),
    ];
    for (encoding, read_as) in rows {
        let (config, warnings) = load(&entry(encoding));
        let files = config.logs.expect("logs").files;
        assert_eq!(files.len(), 1, "{encoding}: {warnings:?}");
        assert_eq!(files[0].encoding.name(), read_as, "{encoding}");
    }

    // EBCDIC: the stock agent accepts the name and splits lines at 0x0A, which EBCDIC text does
    // not use; cwlite skips that entry alone, with a warning.
    let (config, warnings) = load(&entry("IBM037"));
    assert!(config.logs.is_none_or(|l| l.files.is_empty()));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("collect_list[0].encoding") && w.contains("EBCDIC")),
        "{warnings:?}"
    );

    // A name that is neither: the stock agent stops ("the encoding ... is not supported").
    let err = try_load(&entry("klingon")).unwrap_err();
    assert!(
        err.to_string()
            .contains("collect_list[0].encoding: unknown encoding \"klingon\""),
        "{err}"
    );
}

/// What the stock schema (`translator/config/schema.json`, checked on the merged
/// configuration by `translator/cmdutil/translatorutil.go`, `checkSchema`) refuses, cwlite
/// refuses, at the same place. Each row: why the schema refuses, the configuration, the path
/// the error names.
#[test]
fn what_the_stock_schema_refuses_cwlite_refuses_at_the_same_place() {
    let mem = json!({"mem": {"measurement": ["used_percent"]}});
    let metrics = |extra: Value| {
        let mut m = json!({"metrics_collected": mem});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        json!({"metrics": m})
    };
    let plugin = |name: &str, body: Value| json!({"metrics": {"metrics_collected": {name: body}}});
    let entry = |extra: Value| {
        let mut e = json!({"file_path": "/var/log/app.log", "log_group_name": "g"});
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        json!({"logs": {"logs_collected": {"files": {"collect_list": [e]}}}})
    };
    let thirty_one: serde_json::Map<String, Value> =
        (0..31).map(|i| (format!("k{i}"), json!("v"))).collect();
    let rows: Vec<(&str, Value, &str)> = vec![
        (
            "a plugin the schema does not name must have measurement (basicMetricDefinition)",
            plugin("my_plugin", json!({"metrics_collection_interval": 10})),
            "metrics.metrics_collected.my_plugin",
        ),
        (
            "a named plugin must have measurement (basicMetricDefinition)",
            plugin("cpu", json!({"totalcpu": true})),
            "metrics.metrics_collected.cpu",
        ),
        (
            "cpu resources may only be [\"*\"] (cpuDefinitions)",
            plugin(
                "cpu",
                json!({"resources": ["0"], "measurement": ["usage_idle"]}),
            ),
            "metrics.metrics_collected.cpu.resources",
        ),
        (
            "measurement items are unique (metricsMeasurementDefinition)",
            plugin(
                "mem",
                json!({"measurement": ["used_percent", "used_percent"]}),
            ),
            "metrics.metrics_collected.mem.measurement",
        ),
        (
            "a measurement object's name is not empty",
            plugin("mem", json!({"measurement": [{"name": ""}]})),
            "metrics.metrics_collected.mem.measurement[0]",
        ),
        (
            "intervals are 1 to 172800 s (timeIntervalDefinition)",
            json!({"agent": {"metrics_collection_interval": 0}, "metrics": {"metrics_collected": mem}}),
            "agent.metrics_collection_interval",
        ),
        (
            "intervals are 1 to 172800 s (timeIntervalDefinition)",
            plugin(
                "mem",
                json!({"measurement": ["used_percent"], "metrics_collection_interval": 172801}),
            ),
            "metrics.metrics_collected.mem.metrics_collection_interval",
        ),
        (
            "intervals are 1 to 172800 s (timeIntervalDefinition)",
            metrics(json!({"force_flush_interval": 0})),
            "metrics.force_flush_interval",
        ),
        (
            "namespace is 1 to 255 characters",
            metrics(json!({"namespace": ""})),
            "metrics.namespace",
        ),
        (
            "aggregation_dimensions has at least one item",
            metrics(json!({"aggregation_dimensions": []})),
            "metrics.aggregation_dimensions",
        ),
        (
            "a dimension set's names are unique",
            metrics(json!({"aggregation_dimensions": [["host", "host"]]})),
            "metrics.aggregation_dimensions[0]",
        ),
        (
            "append_dimensions has at most 30 keys",
            metrics(json!({"append_dimensions": thirty_one})),
            "metrics.append_dimensions",
        ),
        (
            "an appended dimension's value is not empty",
            plugin(
                "mem",
                json!({"measurement": ["used_percent"], "append_dimensions": {"team": ""}}),
            ),
            "metrics.metrics_collected.mem.append_dimensions.team",
        ),
        (
            "metrics_destinations names at least one destination",
            metrics(json!({"metrics_destinations": {}})),
            "metrics.metrics_destinations",
        ),
        (
            "metrics_destinations knows only cloudwatch and amp",
            metrics(json!({"metrics_destinations": {"datadog": {}}})),
            "metrics.metrics_destinations.datadog",
        ),
        (
            "amp needs workspace_id (ampDefinition)",
            metrics(json!({"metrics_destinations": {"amp": {}}})),
            "metrics.metrics_destinations.amp",
        ),
        (
            "credentials has only role_arn (credentialsDefinition)",
            metrics(json!({"credentials": {"profile": "x"}})),
            "metrics.credentials.profile",
        ),
        (
            "role_arn is at least 20 characters",
            json!({"agent": {"credentials": {"role_arn": "arn:aws:iam::1:r"}}, "metrics": {"metrics_collected": mem}}),
            "agent.credentials.role_arn",
        ),
        (
            "endpoint_override is at least 4 characters",
            metrics(json!({"endpoint_override": "a:1"})),
            "metrics.endpoint_override",
        ),
        (
            "statsd is strict (statsdDefinitions)",
            plugin("statsd", json!({"service_adress": ":8125"})),
            "metrics.metrics_collected.statsd.service_adress",
        ),
        (
            "collectd is strict (collectdDefinitions)",
            plugin("collectd", json!({"security_level": "sign"})),
            "metrics.metrics_collected.collectd.security_level",
        ),
        (
            "ethtool is strict (ethtoolDefinitions)",
            plugin("ethtool", json!({"interfaces": ["eth0"]})),
            "metrics.metrics_collected.ethtool.interfaces",
        ),
        (
            "procstat is a non-empty list (procstatDefinitions)",
            plugin("procstat", json!([])),
            "metrics.metrics_collected.procstat",
        ),
        (
            "a procstat entry names pid_file, exe or pattern",
            plugin("procstat", json!([{"measurement": ["pid_count"]}])),
            "metrics.metrics_collected.procstat[0]",
        ),
        (
            "logs needs logs_collected or metrics_collected",
            json!({"logs": {"log_stream_name": "s"}}),
            "logs",
        ),
        (
            "logs_collected names at least one section",
            json!({"logs": {"logs_collected": {}}}),
            "logs.logs_collected",
        ),
        (
            "files needs collect_list",
            json!({"logs": {"logs_collected": {"files": {}}}}),
            "logs.logs_collected.files: missing field `collect_list`",
        ),
        (
            "logs.concurrency is at least 1",
            json!({"logs": {"concurrency": 0, "logs_collected": {"files": {"collect_list": [{"file_path": "/a", "log_group_name": "g"}]}}}}),
            "logs.concurrency",
        ),
        (
            "logs.force_flush_interval is 1 to 172800 s",
            json!({"logs": {"force_flush_interval": 0, "logs_collected": {"files": {"collect_list": [{"file_path": "/a", "log_group_name": "g"}]}}}}),
            "logs.force_flush_interval",
        ),
        (
            "collect_list items are unique",
            json!({"logs": {"logs_collected": {"files": {"collect_list": [
                {"file_path": "/a", "log_group_name": "g"},
                {"file_path": "/a", "log_group_name": "g"},
            ]}}}}),
            "logs.logs_collected.files.collect_list[1]",
        ),
        (
            "timezone is Local, LOCAL or UTC",
            entry(json!({"timezone": "Europe/Paris"})),
            "collect_list[0].timezone",
        ),
        (
            "retention_in_days is one of CloudWatch's values",
            entry(json!({"retention_in_days": 2})),
            "collect_list[0].retention_in_days",
        ),
        (
            "backpressure_mode is fd_release",
            entry(json!({"backpressure_mode": "drop"})),
            "collect_list[0].backpressure_mode",
        ),
        (
            "a filter's type is include or exclude",
            entry(json!({"filters": [{"type": "maybe", "expression": "x"}]})),
            "collect_list[0].filters[0].type",
        ),
        (
            "encoding is not empty",
            entry(json!({"encoding": ""})),
            "collect_list[0].encoding",
        ),
        (
            "multi_line_start_pattern is not empty",
            entry(json!({"multi_line_start_pattern": ""})),
            "collect_list[0].multi_line_start_pattern",
        ),
        (
            "timestamp_format is not empty",
            entry(json!({"timestamp_format": ""})),
            "collect_list[0].timestamp_format",
        ),
        (
            "log_stream_name is not empty",
            entry(json!({"log_stream_name": ""})),
            "collect_list[0].log_stream_name",
        ),
        (
            "log_group_class is not empty",
            entry(json!({"log_group_class": ""})),
            "collect_list[0].log_group_class",
        ),
        (
            "an entry needs file_path",
            json!({"logs": {"logs_collected": {"files": {"collect_list": [{"log_group_name": "g"}]}}}}),
            "collect_list[0]",
        ),
        (
            "region is not empty",
            json!({"agent": {"region": ""}, "metrics": {"metrics_collected": mem}}),
            "agent.region",
        ),
    ];
    let mut accepted = Vec::new();
    for (why, json, at) in &rows {
        match try_load(json) {
            Ok((_, warnings)) => accepted.push(format!("{why}: accepted ({warnings:?})")),
            Err(err) => {
                let text = err.to_string();
                if !text.lines().any(|l| l.contains(at)) {
                    accepted.push(format!("{why}: refused, but not at {at}: {text}"));
                }
            }
        }
    }
    assert!(accepted.is_empty(), "{}", accepted.join("\n"));
}

/// The other side of the rows above: the same shapes, as the stock schema accepts them, start
/// cwlite (with warnings for what it does not run).
#[test]
fn what_the_stock_schema_accepts_next_to_those_rows_starts_cwlite() {
    let rows = [
        json!({"metrics": {"metrics_collected": {"my_plugin": {"measurement": ["x"]}}}}),
        json!({"metrics": {"metrics_collected": {"cpu": {"resources": ["*"], "measurement": ["usage_idle"]}}}}),
        json!({"metrics": {"metrics_collected": {"mem": {"measurement": []}}}}),
        json!({"metrics": {"metrics_collected": {"statsd": {"service_address": ":8125", "metric_separator": "_"}}}}),
        json!({"metrics": {"metrics_collected": {"procstat": [{"exe": "nginx", "measurement": ["pid_count"]}]}}}),
        json!({"metrics": {"aggregation_dimensions": [["a", "b"], ["b", "a"]], "metrics_destinations": {"cloudwatch": {}, "amp": {"workspace_id": "ws-1"}}, "metrics_collected": {"mem": {"measurement": ["used_percent"]}}}}),
        json!({"logs": {"metrics_collected": {"emf": {}}}}),
        json!({"logs": {"concurrency": 1, "logs_collected": {"files": {"collect_list": [
            {"file_path": "/a", "log_group_name": "g", "timezone": "LOCAL", "retention_in_days": -1, "backpressure_mode": "fd_release"},
        ]}}}}),
    ];
    for json in rows {
        if let Err(err) = try_load(&json) {
            panic!("{json}: {err}");
        }
    }
}
