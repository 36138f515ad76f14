//! The configuration rules of the stock agent, as cwlite applies them: defaults, bounds, errors
//! with their place, warnings for what cwlite does not do, merging, `${ENV}` and placeholders.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cwlite::config::expand::HostFacts;
use cwlite::config::{self, Config, Environment, LoadError, Loaded, RegionPolicy};
use serde_json::{Value, json};

fn host() -> HostFacts {
    HostFacts {
        hostname: "web-01".into(),
        ip_address: Some(Ipv4Addr::new(10, 0, 0, 7)),
        date: "2026-11-25".into(),
    }
}

fn load_with(json: &Value, vars: &[(&str, &str)]) -> Result<Loaded, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_json(dir.path(), "config.json", json);
    config::load(
        &[path],
        None,
        &Environment::fixed(vars, host()),
        RegionPolicy::Optional,
    )
}

fn load(json: Value) -> Config {
    match load_with(&json, &[("AWS_REGION", "eu-west-1")]) {
        Ok(loaded) => loaded.config,
        Err(err) => panic!("{err}"),
    }
}

/// Each diagnostic as `path: message` (the file prefix is tested elsewhere).
fn errors(json: Value) -> Vec<String> {
    match load_with(&json, &[("AWS_REGION", "eu-west-1")]) {
        Ok(_) => panic!("expected errors"),
        Err(err) => err
            .errors
            .0
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
    }
}

fn warnings(json: Value) -> Vec<String> {
    match load_with(&json, &[("AWS_REGION", "eu-west-1")]) {
        Ok(loaded) => loaded
            .warnings
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
        Err(err) => panic!("{err}"),
    }
}

fn file_entry(entry: Value) -> Value {
    json!({"logs": {"logs_collected": {"files": {"collect_list": [entry]}}}})
}

fn plugins(collected: Value) -> Value {
    json!({"metrics": {"metrics_collected": collected}})
}

fn assert_has(list: &[String], wanted: &str) {
    assert!(
        list.iter().any(|l| l.contains(wanted)),
        "no {wanted:?} in {list:#?}"
    );
}

// --- the shipped configuration files -------------------------------------------------------

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_shipped_seed_config_is_the_seed_scenario() {
    let loaded = config::load(
        &[repo("config/cwlite.json")],
        None,
        &Environment::fixed(&[], host()),
        RegionPolicy::Optional,
    )
    .unwrap();
    let metrics = loaded.config.metrics.unwrap();
    assert_eq!(metrics.namespace, "CWAgent");
    let names: Vec<_> = metrics.plugins.iter().map(|p| p.kind.name()).collect();
    assert_eq!(names, ["cpu", "mem", "disk"]);
    assert!(
        metrics
            .plugins
            .iter()
            .all(|p| p.interval_secs == 60 && !p.high_resolution)
    );
    let logs = loaded.config.logs.unwrap();
    assert_eq!(logs.files[0].file_path, "/var/log/syslog");
    assert_eq!(
        logs.files[0].log_group_name,
        config::LogGroupName::Named("syslog".into())
    );
    assert_eq!(logs.files[0].log_stream_name, "web-01");
}

#[test]
fn the_shipped_common_config_names_the_on_premises_profile() {
    let loaded = config::load(
        &[repo("config/cwlite.json")],
        Some(&repo("config/common-config.toml")),
        &Environment::fixed(&[], host()),
        RegionPolicy::Optional,
    )
    .unwrap();
    assert_eq!(
        loaded.config.common.credentials,
        config::CredentialsSource::Profile {
            profile: "AmazonCloudWatchAgent".into(),
            file: "/etc/cwlite/credentials".into()
        }
    );
}

#[test]
fn the_shipped_demo_config_runs_without_any_environment() {
    let loaded = config::load(
        &[repo("config/demo.json")],
        None,
        &Environment::fixed(&[], host()),
        RegionPolicy::Required,
    )
    .unwrap();
    assert_eq!(loaded.config.region.unwrap().name, "ap-northeast-1");
    assert!(
        loaded
            .config
            .metrics
            .unwrap()
            .plugins
            .iter()
            .all(|p| p.high_resolution)
    );
}

// --- errors name their file and path ------------------------------------------------------

#[test]
fn an_unknown_measurement_is_an_error_with_file_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_json(
        dir.path(),
        "a.json",
        &plugins(json!({"cpu": {"measurement": ["usage_idle", "usage_user", "usage_foo"]}})),
    );
    let err = config::load(
        std::slice::from_ref(&path),
        None,
        &Environment::fixed(&[("AWS_REGION", "x")], host()),
        RegionPolicy::Optional,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: metrics.metrics_collected.cpu.measurement[2]: unknown measurement \"usage_foo\" for cpu",
            path.display()
        )
    );
}

#[test]
fn all_errors_are_collected_in_one_pass() {
    let found = errors(json!({
        "agent": {"metrics_collection_interval": 0},
        "metrics": {"namespace": "", "metrics_collected": {"mem": {"measurement": ["nope"]}, "cpu": {"measurement": ["usage_idle"], "resources": ["cpu0"]}}},
        "logs": {"logs_collected": {"files": {"collect_list": [
            {"file_path": "/a", "timezone": "PST"},
            {"file_path": "/b", "encoding": "klingon", "filters": [{"type": "include", "expression": "(unclosed"}]}
        ]}}}
    }));
    assert_has(
        &found,
        "agent.metrics_collection_interval: 0 is out of range",
    );
    assert_has(&found, "metrics.namespace: length 0 is out of range");
    assert_has(
        &found,
        "metrics.metrics_collected.mem.measurement[0]: unknown measurement \"nope\" for mem",
    );
    assert_has(
        &found,
        "metrics.metrics_collected.cpu.resources: cpu accepts only [\"*\"]",
    );
    assert_has(
        &found,
        "collect_list[0].timezone: \"PST\" is not one of Local, LOCAL, UTC",
    );
    assert_has(
        &found,
        "collect_list[1].encoding: unknown encoding \"klingon\"",
    );
    assert_has(
        &found,
        "collect_list[1].filters[0].expression: invalid regular expression",
    );
    assert_eq!(found.len(), 7, "{found:#?}");
}

#[test]
fn a_wrong_json_type_is_located() {
    let found = errors(json!({"agent": {"metrics_collection_interval": "60"}}));
    assert_has(
        &found,
        "agent.metrics_collection_interval: invalid type: string \"60\", expected i64",
    );
}

#[test]
fn unknown_keys_where_the_stock_schema_forbids_them_are_errors() {
    assert_has(
        &errors(file_entry(json!({"file_path": "/a", "log_group": "x"}))),
        "collect_list[0].log_group: unknown field `log_group`, expected one of `file_path`",
    );
    assert_has(
        &errors(json!({"metrics": {"metrics_collected": {}, "flush": 1}})),
        "metrics.flush: unknown field `flush`",
    );
    assert_has(
        &errors(json!({"metrics": {"namespace": "x"}})),
        "metrics.metrics_collected: required",
    );
}

/// Issue 19: the stock schema refuses exact duplicates in one file (`uniqueItems`, checked on
/// the merged configuration); merging several files drops an entry another file already has.
#[test]
fn a_duplicate_collect_list_entry_in_one_file_is_refused() {
    let entry = json!({"file_path": "/var/log/a", "log_group_name": "a"});
    let json = json!({"logs": {"logs_collected": {"files": {"collect_list": [entry, entry]}}}});
    assert_has(
        &errors(json),
        "collect_list[1]: the same entry as collect_list[0]: the stock agent refuses duplicates too",
    );
}

// --- measurements -------------------------------------------------------------------------

#[test]
fn measurements_accept_short_prefixed_and_object_forms() {
    let config = load(plugins(json!({
        "cpu": {"measurement": ["usage_idle", "cpu_usage_user", {"name": "usage_system", "rename": "CPU_SYSTEM", "unit": "percent"}]},
        "diskio": {"measurement": [{"name": "io_time", "unit": "Seconds"}]}
    })));
    let metrics = config.metrics.unwrap();
    let cpu: Vec<_> = metrics.plugins[0]
        .measurements
        .iter()
        .map(|m| (m.metric_name.as_str(), m.unit))
        .collect();
    assert_eq!(
        cpu,
        [
            ("cpu_usage_idle", "Percent"),
            ("cpu_usage_user", "Percent"),
            ("CPU_SYSTEM", "Percent")
        ]
    );
    assert_eq!(metrics.plugins[1].measurements[0].unit, "Seconds");
}

#[test]
fn an_unknown_unit_degrades_to_none_with_a_warning() {
    let json = plugins(json!({"mem": {"measurement": [{"name": "used_percent", "unit": "unit"}]}}));
    assert_has(
        &warnings(json.clone()),
        "measurement[0].unit: unknown unit \"unit\"; sent as None",
    );
    assert_eq!(
        load(json).metrics.unwrap().plugins[0].measurements[0].unit,
        "None"
    );
}

#[test]
fn intervals_fall_back_to_the_agent_and_drive_storage_resolution() {
    let config = load(json!({
        "agent": {"metrics_collection_interval": 30},
        "metrics": {"metrics_collected": {
            "cpu": {"measurement": ["usage_idle"]},
            "mem": {"measurement": ["used_percent"], "metrics_collection_interval": 60}
        }}
    }));
    let plugins = config.metrics.unwrap().plugins;
    assert_eq!(
        (plugins[0].interval_secs, plugins[0].high_resolution),
        (30, true)
    );
    assert_eq!(
        (plugins[1].interval_secs, plugins[1].high_resolution),
        (60, false)
    );
    assert_has(
        &errors(plugins_with_interval(172_801)),
        "metrics_collection_interval: 172801 is out of range",
    );
}

fn plugins_with_interval(seconds: i64) -> Value {
    plugins(
        json!({"mem": {"measurement": ["used_percent"], "metrics_collection_interval": seconds}}),
    )
}

#[test]
fn plugin_options_follow_the_stock_defaults() {
    let config = load(plugins(json!({
        "cpu": {"measurement": ["usage_idle"], "resources": ["*"]},
        "disk": {"measurement": ["used_percent"], "resources": ["/", "/data"], "ignore_file_system_types": ["tmpfs"], "drop_device": true},
        "net": {"measurement": ["bytes_sent"], "resources": ["eth*"]},
        "diskio": {"measurement": ["reads"]}
    })));
    use config::{PluginOptions, Resources};
    let options: Vec<_> = config
        .metrics
        .unwrap()
        .plugins
        .into_iter()
        .map(|p| p.options)
        .collect();
    assert_eq!(
        options[0],
        PluginOptions::Cpu {
            per_cpu: true,
            total_cpu: true
        }
    );
    assert_eq!(
        options[1],
        PluginOptions::Disk {
            mount_points: Resources::Only(vec!["/".into(), "/data".into()]),
            ignore_file_system_types: vec!["tmpfs".into()],
            drop_device: true
        }
    );
    assert_eq!(
        options[2],
        PluginOptions::Net {
            interfaces: Resources::Only(vec!["eth*".into()])
        }
    );
    assert_eq!(
        options[3],
        PluginOptions::Diskio {
            devices: Resources::All
        }
    );
}

#[test]
fn plugin_dimensions_resolve_aws_placeholders_the_on_premises_way() {
    let json = plugins(
        json!({"mem": {"measurement": ["used_percent"], "append_dimensions": {
            "InstanceId": "${aws:InstanceId}", "ImageId": "${aws:ImageId}", "InstanceType": "${aws:InstanceType}",
            "AutoScalingGroupName": "${aws:AutoScalingGroupName}", "team": "ops", "aws:StorageResolution": "true"
        }}}),
    );
    let dimensions = load(json.clone()).metrics.unwrap().plugins[0]
        .append_dimensions
        .clone();
    let pairs: Vec<_> = dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(
        pairs,
        [
            "ImageId=UNKNOWN-AMI",
            "InstanceId=i-UNKNOWN",
            "InstanceType=UNKNOWN-TYPE",
            "team=ops"
        ]
    );
    let found = warnings(json);
    assert_has(&found, "append_dimensions.AutoScalingGroupName: dropped");
    assert_has(
        &found,
        "append_dimensions.aws:StorageResolution: ignored: a reserved key",
    );
}

#[test]
fn metrics_level_append_dimensions_warn_and_keep_the_host() {
    let found = warnings(
        json!({"metrics": {"append_dimensions": {"InstanceId": "${aws:InstanceId}"}, "metrics_collected": {"mem": {"measurement": ["used_percent"]}}}}),
    );
    assert_has(
        &found,
        "metrics.append_dimensions: ignored: ${aws:…} values need ec2 instance metadata; cwlite keeps the host dimension",
    );
}

#[test]
fn aggregation_dimensions_are_sorted_and_deduplicated() {
    let config = load(
        json!({"metrics": {"aggregation_dimensions": [["path", "device"], ["device", "path"], []], "metrics_collected": {"mem": {"measurement": ["used_percent"]}}}}),
    );
    assert_eq!(
        config.metrics.unwrap().aggregation_dimensions,
        vec![vec!["device".to_owned(), "path".to_owned()], vec![]]
    );
    let too_many: Vec<String> = (0..31).map(|i| format!("d{i}")).collect();
    assert_has(
        &errors(
            json!({"metrics": {"aggregation_dimensions": [too_many], "metrics_collected": {"mem": {"measurement": ["used_percent"]}}}}),
        ),
        "aggregation_dimensions[0]: 31 dimensions, at most 30 allowed",
    );
}

/// `credentials.role_arn` as the stock translator reads it: a section's own role wins over the
/// agent's, and a section without one takes the agent's.
#[test]
fn a_sections_role_wins_over_the_agents() {
    let agent_role = "arn:aws:iam::123456789012:role/agent";
    let logs_role = "arn:aws:iam::123456789012:role/logs";
    let loaded = load_with(
        &json!({
            "agent": {"credentials": {"role_arn": agent_role}},
            "metrics": {"metrics_collected": {"mem": {"measurement": ["used_percent"]}}},
            "logs": {"credentials": {"role_arn": logs_role}, "logs_collected": {"files": {"collect_list": [{"file_path": "/a"}]}}}
        }),
        &[("AWS_REGION", "eu-west-1")],
    )
    .unwrap();
    assert_eq!(loaded.config.agent.role_arn.as_deref(), Some(agent_role));
    assert_eq!(
        loaded.config.metrics.unwrap().role_arn.as_deref(),
        Some(agent_role)
    );
    assert_eq!(
        loaded.config.logs.unwrap().role_arn.as_deref(),
        Some(logs_role)
    );
    assert_has(
        &errors(
            json!({"metrics": {"credentials": {"role_arn": "arn:short"}, "metrics_collected": {"mem": {"measurement": ["used_percent"]}}}}),
        ),
        "metrics.credentials.role_arn",
    );
}

#[test]
fn unsupported_plugins_and_sections_are_warnings_naming_what_cwlite_does() {
    let found = warnings(json!({
        "agent": {"credentials": {"role_arn": "arn:aws:iam::123456789012:role/cw"}, "aws_sdk_log_level": "LogDebug", "flush_interval": "1s", "some_new_key": 1},
        "metrics": {"metrics_collected": {
            "procstat": [{"exe": "nginx", "measurement": ["cpu_usage"]}],
            "ethtool": {},
            "my_custom": {"measurement": ["x"]},
            "mem": {"measurement": ["used_percent"], "totalcpu": true}
        }, "metrics_destinations": {"amp": {"workspace_id": "ws"}}},
        "logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/a", "backpressure_mode": "fd_release"}]}},
                 "metrics_collected": {"prometheus": {}}},
        "traces": {}
    }));
    assert!(
        !found.iter().any(|w| w.contains("credentials")),
        "role_arn is used (issue 22): {found:#?}"
    );
    assert_has(&found, "agent.aws_sdk_log_level: ignored: set RUST_LOG");
    assert_has(&found, "agent.flush_interval: ignored");
    assert_has(&found, "agent.some_new_key: ignored: unknown agent key");
    assert!(
        !found.iter().any(|w| w.contains("procstat")),
        "procstat is collected (issue 20): {found:#?}"
    );
    assert_has(
        &found,
        "metrics_collected.ethtool: ignored: cwlite does not support the ethtool plugin; ethtool metrics are not collected",
    );
    assert_has(
        &found,
        "metrics_collected.my_custom: ignored: unknown plugin",
    );
    assert_has(
        &found,
        "metrics_collected.mem.totalcpu: ignored: totalcpu does not apply to mem",
    );
    assert_has(
        &found,
        "metrics_destinations.amp: ignored: cwlite sends metrics to cloudwatch only",
    );
    assert_has(
        &found,
        "collect_list[0].backpressure_mode: ignored: cwlite never drops while blocked",
    );
    assert_has(
        &found,
        "logs.metrics_collected.prometheus: ignored: cwlite does not collect prometheus",
    );
    assert_has(&found, "traces: ignored");
}

// --- logs -----------------------------------------------------------------------------------

#[test]
fn log_defaults_match_the_stock_agent() {
    let config = load(file_entry(json!({"file_path": "/tmp/app.log"})));
    let logs = config.logs.unwrap();
    assert_eq!(logs.force_flush_interval_secs, 5);
    let file = &logs.files[0];
    assert_eq!(
        file.log_group_name,
        config::LogGroupName::Named("/tmp/app".into())
    );
    assert_eq!(file.log_stream_name, "web-01");
    assert_eq!(file.retention_in_days, None);
    assert_eq!(file.timezone, config::Timezone::Local);
    assert_eq!(file.encoding, cwlite::config::Charset::UTF_8);
    match &file.multi_line_start {
        config::MultiLineStart::Pattern(p) => assert_eq!(p.as_str(), r"^[\S]"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn placeholders_are_resolved_in_group_and_stream_names() {
    let config = load(json!({
        "agent": {"region": "ap-northeast-1"},
        "logs": {"log_stream_name": "{hostname}-{ip_address}", "logs_collected": {"files": {"collect_list": [
            {"file_path": "/a", "log_group_name": "/app/{aws_region}/{date}", "log_stream_name": "{local_hostname}_{instance_id}_{account_id}"},
            {"file_path": "/b", "log_group_name": "b"}
        ]}}}
    }));
    let files = config.logs.unwrap().files;
    assert_eq!(
        files[0].log_group_name,
        config::LogGroupName::Named("/app/ap-northeast-1/2026-11-25".into())
    );
    assert_eq!(files[0].log_stream_name, "web-01_i-UNKNOWN_UNKNOWN-ACCOUNT");
    assert_eq!(files[1].log_stream_name, "web-01-10.0.0.7");
}

#[test]
fn env_variables_are_expanded_in_string_values() {
    let json = json!({"agent": {"region": "${CW_REGION}"}, "logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "${LOG_DIR}/app.log", "log_group_name": "${GROUP:-fallback}"}
    ]}}}});
    let loaded = load_with(
        &json,
        &[("CW_REGION", "eu-central-1"), ("LOG_DIR", "/srv/logs")],
    )
    .unwrap();
    assert_eq!(loaded.config.region.unwrap().name, "eu-central-1");
    let file = &loaded.config.logs.unwrap().files[0];
    assert_eq!(file.file_path, "/srv/logs/app.log");
    assert_eq!(
        file.log_group_name,
        config::LogGroupName::Named("fallback".into())
    );
}

/// An invalid name that was configured is an error. One derived from a glob skips its entry
/// alone (tests/stock_fidelity.rs).
#[test]
fn invalid_group_and_stream_names_are_errors() {
    assert_has(
        &errors(file_entry(
            json!({"file_path": "/a", "log_group_name": "bad name"}),
        )),
        "is not a valid log group name",
    );
    assert_has(
        &errors(file_entry(
            json!({"file_path": "/a", "log_stream_name": "a:b"}),
        )),
        "is not a valid log stream name",
    );
    let multi = load(file_entry(
        json!({"file_path": "/var/log/*.log", "publish_multi_logs": true}),
    ));
    assert_eq!(
        multi.logs.unwrap().files[0].log_group_name,
        config::LogGroupName::FromEachFilePath
    );
}

#[test]
fn retention_must_be_an_allowed_value() {
    assert_has(
        &errors(file_entry(
            json!({"file_path": "/a", "retention_in_days": 8}),
        )),
        "retention_in_days: 8 is not an allowed retention",
    );
    assert_eq!(
        load(file_entry(
            json!({"file_path": "/a", "retention_in_days": 3653})
        ))
        .logs
        .unwrap()
        .files[0]
            .retention_in_days,
        Some(3653)
    );
    assert_eq!(
        load(file_entry(
            json!({"file_path": "/a", "retention_in_days": -1})
        ))
        .logs
        .unwrap()
        .files[0]
            .retention_in_days,
        None
    );
}

#[test]
fn one_group_with_two_retentions_or_classes_is_an_error() {
    let list = json!([
        {"file_path": "/a", "log_group_name": "App", "retention_in_days": 7, "log_group_class": "standard"},
        {"file_path": "/b", "log_group_name": "app", "retention_in_days": 30, "log_group_class": "INFREQUENT_ACCESS"},
        {"file_path": "/c", "log_group_name": "app"}
    ]);
    let found = errors(json!({"logs": {"logs_collected": {"files": {"collect_list": list}}}}));
    assert_has(
        &found,
        "collect_list[1].retention_in_days: log group \"app\" is given retention 30 here and 7 at logs.logs_collected.files.collect_list[0]",
    );
    assert_has(
        &found,
        "collect_list[1].log_group_class: log group \"app\" is given class InfrequentAccess here and Standard at",
    );
    assert_eq!(found.len(), 2);
}

#[test]
fn an_unknown_group_class_is_ignored_with_a_warning() {
    let json = file_entry(json!({"file_path": "/a", "log_group_class": "GLACIER"}));
    assert_has(
        &warnings(json.clone()),
        "log_group_class: ignored: \"GLACIER\" is neither STANDARD nor INFREQUENT_ACCESS",
    );
    assert_eq!(load(json).logs.unwrap().files[0].log_group_class, None);
}

#[test]
fn patterns_and_encodings_are_compiled() {
    let config = load(file_entry(json!({
        "file_path": "/a", "encoding": "UTF-16LE", "blacklist": "\\.(gz|zip)$", "timestamp_format": "%b %d %H:%M:%S",
        "multi_line_start_pattern": "{timestamp_format}",
        "filters": [{"type": "exclude", "expression": "DEBUG{"}, {"type": "include", "expression": "\\d{3}"}]
    })));
    let file = &config.logs.unwrap().files[0];
    assert_eq!(
        file.encoding,
        cwlite::config::Charset::Standard(encoding_rs::UTF_16LE)
    );
    assert_eq!(
        file.multi_line_start,
        config::MultiLineStart::TimestampFormat
    );
    assert!(file.blacklist.as_ref().unwrap().is_match("syslog.1.gz"));
    assert!(
        file.filters[0].expression.is_match("DEBUG{x"),
        "a Go literal brace"
    );
    assert!(
        file.filters[1].expression.is_match("code 404")
            && !file.filters[1].expression.is_match("code ٤٠٤")
    );
    assert_has(
        &errors(file_entry(
            json!({"file_path": "/a", "multi_line_start_pattern": "{timestamp_format}"}),
        )),
        "multi_line_start_pattern: {timestamp_format} needs timestamp_format to be set",
    );
    assert_has(
        &errors(file_entry(
            json!({"file_path": "/a", "filters": [{"type": "keep", "expression": "x"}]}),
        )),
        "filters[0].type: \"keep\" is neither include nor exclude",
    );
    assert_has(
        &errors(file_entry(
            json!({"file_path": "/a", "blacklist": "(?x) a"}),
        )),
        "blacklist: invalid or unsupported perl syntax",
    );
}

// --- endpoints, region, merge -------------------------------------------------------------

#[test]
fn endpoint_overrides_accept_a_hostname_or_a_url() {
    let endpoint = |value: &str| json!({"logs": {"endpoint_override": value, "logs_collected": {"files": {"collect_list": [{"file_path": "/a"}]}}}});
    let host = "vpce-0abc-xyz.logs.ap-northeast-1.vpce.amazonaws.com";
    assert_eq!(
        load(endpoint(host))
            .logs
            .unwrap()
            .endpoint_override
            .unwrap()
            .url,
        format!("https://{host}")
    );
    assert_eq!(
        load(endpoint("https://logs-fips.us-west-2.amazonaws.com/"))
            .logs
            .unwrap()
            .endpoint_override
            .unwrap()
            .url,
        "https://logs-fips.us-west-2.amazonaws.com"
    );
    assert_has(
        &warnings(endpoint("http://10.0.0.5:4566")),
        "logs.endpoint_override: http://10.0.0.5:4566 is plain http",
    );
    assert_has(
        &errors(endpoint("ftp://logs.example")),
        "logs.endpoint_override: unsupported scheme \"ftp\"",
    );
    assert_has(&errors(endpoint("a b")), "is not a hostname or url");
}

#[test]
fn the_region_comes_from_agent_then_profile_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let credentials =
        common::write_credentials(dir.path(), &[("AmazonCloudWatchAgent", "AKID", "s")]);
    std::fs::write(
        dir.path().join("config"),
        "[profile AmazonCloudWatchAgent]\nregion = ap-southeast-2\n",
    )
    .unwrap();
    let common_config =
        common::write_common_config(dir.path(), &credentials, "AmazonCloudWatchAgent", "");
    let region_of = |json: Value, vars: &[(&str, &str)]| {
        let path = common::write_json(dir.path(), "c.json", &json);
        let loaded = config::load(
            &[path],
            Some(&common_config),
            &Environment::fixed(vars, host()),
            RegionPolicy::Required,
        )
        .unwrap();
        loaded.config.region.unwrap()
    };
    let mem = json!({"metrics": {"metrics_collected": {"mem": {"measurement": ["used_percent"]}}}});
    let mut with_agent = mem.clone();
    with_agent["agent"] = json!({"region": "eu-north-1"});
    assert_eq!(
        region_of(with_agent, &[("AWS_REGION", "us-east-2")]).name,
        "eu-north-1"
    );
    let from_profile = region_of(mem.clone(), &[("AWS_REGION", "us-east-2")]);
    assert_eq!(from_profile.name, "ap-southeast-2");
    assert!(from_profile.source.contains("AmazonCloudWatchAgent"));
    std::fs::remove_file(dir.path().join("config")).unwrap();
    assert_eq!(
        region_of(mem, &[("AWS_REGION", "us-east-2")]).name,
        "us-east-2"
    );
}

#[test]
fn files_of_a_directory_merge_and_conflicts_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    common::write_json(
        dir.path(),
        "a.json",
        &json!({"agent": {"region": "eu-west-1"}, "logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/a"}]}}}}),
    );
    common::write_json(
        dir.path(),
        "b.json",
        &json!({"agent": {"region": "eu-west-1"}, "logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/a"}, {"file_path": "/b"}]}}}}),
    );
    let env = Environment::fixed(&[], host());
    let loaded =
        config::load(&[dir.path().to_owned()], None, &env, RegionPolicy::Required).unwrap();
    let paths: Vec<_> = loaded
        .config
        .logs
        .unwrap()
        .files
        .iter()
        .map(|f| f.file_path.clone())
        .collect();
    assert_eq!(paths, ["/a", "/b"]);

    let conflict = common::write_json(
        dir.path(),
        "c.json",
        &json!({"agent": {"region": "us-east-1"}}),
    );
    let err = config::load(&[dir.path().to_owned()], None, &env, RegionPolicy::Required)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent.region: different values are specified"),
        "{err}"
    );
    assert!(
        err.contains(&dir.path().join("a.json").display().to_string())
            && err.contains(&conflict.display().to_string()),
        "{err}"
    );
}

#[test]
fn errors_in_a_merged_list_name_the_file_that_brought_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    common::write_json(
        dir.path(),
        "a.json",
        &json!({"agent": {"region": "eu-west-1"}, "logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/a"}]}}}}),
    );
    let b = common::write_json(
        dir.path(),
        "b.json",
        &json!({"logs": {"logs_collected": {"files": {"collect_list": [{"file_path": "/b", "retention_in_days": 2}]}}}}),
    );
    let err = config::load(
        &[dir.path().to_owned()],
        None,
        &Environment::fixed(&[], host()),
        RegionPolicy::Required,
    )
    .unwrap_err();
    assert_eq!(err.errors.0.len(), 1);
    assert_eq!(err.errors.0[0].file.as_deref(), Some(b.as_path()));
    assert_eq!(
        err.errors.0[0].path.to_string(),
        "logs.logs_collected.files.collect_list[1].retention_in_days"
    );
}

#[test]
fn names_and_dimensions_cloudwatch_would_refuse_are_errors() {
    let found = errors(plugins(json!({"mem": {
        "measurement": [{"name": "used_percent", "rename": "mémoire"}],
        "append_dimensions": {":team": "ops", "site": "   "}
    }})));
    assert_has(
        &found,
        "measurement[0].rename: \"mémoire\": CloudWatch metric names are ASCII only",
    );
    assert_has(
        &found,
        "append_dimensions.:team: a dimension name must be 1 to 255 ASCII characters",
    );
    assert_has(
        &found,
        "append_dimensions.site: a dimension value must be 1 to 1024 characters and not blank",
    );
}

#[test]
fn an_empty_resources_list_means_every_instance() {
    let config = load(plugins(
        json!({"disk": {"measurement": ["used_percent"], "resources": []}, "net": {"measurement": ["bytes_sent"], "resources": []}}),
    ));
    use config::{PluginOptions, Resources};
    let options: Vec<_> = config
        .metrics
        .unwrap()
        .plugins
        .into_iter()
        .map(|p| p.options)
        .collect();
    assert!(matches!(
        &options[0],
        PluginOptions::Disk {
            mount_points: Resources::All,
            ..
        }
    ));
    assert_eq!(
        options[1],
        PluginOptions::Net {
            interfaces: Resources::All
        }
    );
}

#[test]
fn keys_honoured_only_in_part_are_warnings() {
    let found = warnings(
        json!({"agent": {"run_as_user": "cwagent", "logfile": "/var/log/cw.log"}, "metrics": {"metrics_collected": {"mem": {"measurement": ["used_percent"]}}}}),
    );
    assert_has(
        &found,
        "agent.run_as_user: honoured only when cwlite starts as root",
    );
    let found = warnings(file_entry(
        json!({"file_path": "/a*", "auto_removal": true, "publish_multi_logs": true}),
    ));
    assert_has(
        &found,
        "collect_list[0].auto_removal: ignored with publish_multi_logs",
    );
}

#[test]
fn an_unknown_key_does_not_hide_the_other_errors_of_its_section() {
    let found = errors(json!({
        "metrics": {"flush": 1, "namespace": "", "metrics_collected": {"cpu": {"measurement": [{"name": "usage_idle"}, "usage_foo"]}}},
        "logs": {"typo": true, "force_flush_interval": 0, "logs_collected": {"files": {"collect_list": [
            {"file_path": "/a", "log_group": "x", "retention_in_days": 8, "filters": [{"type": "include", "expr": "x"}]}
        ]}}}
    }));
    assert_has(&found, "metrics.flush: unknown field `flush`");
    assert_has(&found, "metrics.namespace: length 0 is out of range");
    assert_has(
        &found,
        "cpu.measurement[1]: unknown measurement \"usage_foo\" for cpu",
    );
    assert_has(&found, "logs.typo: unknown field `typo`");
    assert_has(&found, "logs.force_flush_interval: 0 is out of range");
    assert_has(
        &found,
        "collect_list[0].log_group: unknown field `log_group`",
    );
    assert_has(
        &found,
        "collect_list[0].retention_in_days: 8 is not an allowed retention",
    );
    assert_has(
        &found,
        "collect_list[0].filters[0].expr: unknown field `expr`",
    );
}

// --- procstat ----------------------------------------------------------------------------

/// Each `procstat` entry is a plugin of its own, named by its finder (issue 20).
#[test]
fn procstat_entries_become_one_plugin_each_with_their_finder() {
    let config = load(plugins(json!({"procstat": [
        {"exe": "^nginx$", "measurement": ["cpu_usage", "procstat_memory_rss", "pid_count"], "metrics_collection_interval": 10},
        {"pid_file": "/run/sshd.pid", "measurement": ["pid_count"], "append_dimensions": {"team": "ops"}},
        {"pattern": "java .*kafka", "measurement": ["rlimit_num_fds_soft"]},
    ]})));
    let plugins = config.metrics.unwrap().plugins;
    assert_eq!(plugins.len(), 3);
    let names: Vec<Vec<(&str, &str)>> = plugins
        .iter()
        .map(|p| {
            p.measurements
                .iter()
                .map(|m| (m.metric_name.as_str(), m.unit))
                .collect()
        })
        .collect();
    assert_eq!(
        names[0],
        [
            ("procstat_cpu_usage", "Percent"),
            ("procstat_memory_rss", "Bytes"),
            ("procstat_lookup_pid_count", "None"),
        ]
    );
    assert_eq!(plugins[0].interval_secs, 10);
    assert!(plugins[0].high_resolution);
    let finders: Vec<(&str, String)> = plugins
        .iter()
        .map(|p| match &p.options {
            config::PluginOptions::Procstat { finder } => (finder.dimension(), finder.configured()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        finders,
        [
            ("exe", "^nginx$".to_owned()),
            ("pidfile", "/run/sshd.pid".to_owned()),
            ("pattern", "java .*kafka".to_owned()),
        ]
    );
    assert_eq!(plugins[1].append_dimensions["team"], "ops");
}

#[test]
fn procstat_refuses_what_the_stock_schema_refuses() {
    let found = errors(plugins(json!({"procstat": [
        {"exe": "nginx", "measurement": [{"name": "cpu_usage", "rename": "x"}]},
        {"exe": "(", "measurement": ["pid_count"]},
        {"exe": "nginx", "measurement": ["memory_bogus"]},
    ]})));
    assert_has(
        &found,
        "procstat[0].measurement[0]: procstat measurements are names only",
    );
    assert_has(&found, "procstat[1].exe:");
    assert_has(
        &found,
        "procstat[2].measurement[0]: unknown measurement \"memory_bogus\"",
    );
    let found = warnings(plugins(json!({"procstat": [
        {"exe": "nginx", "pattern": "nginx: master", "measurement": ["pid_count"]},
    ]})));
    assert_has(
        &found,
        "procstat[0].pattern: ignored: exe is used (the stock agent uses only one of them too)",
    );
}

// --- statsd ------------------------------------------------------------------------------

/// `statsd` with the stock defaults, and its settings read (issue 20).
#[test]
fn statsd_takes_the_stock_defaults_and_settings() {
    let config = load(plugins(json!({"statsd": {}})));
    let statsd = config.metrics.unwrap().statsd.unwrap();
    assert_eq!(
        statsd,
        config::StatsdConfig {
            service_address: ":8125".into(),
            collection_interval_secs: 10,
            aggregation_interval_secs: Some(60),
            metric_separator: "_".into(),
            allowed_pending_messages: 10_000,
        }
    );
    let config = load(plugins(json!({"statsd": {
        "service_address": "127.0.0.1:9125", "metrics_collection_interval": 5,
        "metrics_aggregation_interval": 0, "metric_separator": ".", "allowed_pending_messages": 50
    }})));
    let statsd = config.metrics.unwrap().statsd.unwrap();
    assert_eq!(
        statsd.aggregation_interval_secs, None,
        "0 sends every window"
    );
    assert_eq!(
        (
            statsd.service_address.as_str(),
            statsd.collection_interval_secs
        ),
        ("127.0.0.1:9125", 5)
    );
    assert_eq!(
        (
            statsd.metric_separator.as_str(),
            statsd.allowed_pending_messages
        ),
        (".", 50)
    );
    let found = warnings(plugins(json!({"statsd": {"drop_original_metrics": ["x"]}})));
    assert_has(
        &found,
        "statsd.drop_original_metrics: ignored: the stock agent ignores it for statsd too",
    );
}

#[test]
fn statsd_refuses_what_the_stock_schema_refuses() {
    for (body, at) in [
        (json!({"service_address": "8125"}), "statsd.service_address"),
        (
            json!({"allowed_pending_messages": 0}),
            "statsd.allowed_pending_messages",
        ),
        (
            json!({"metrics_aggregation_interval": -1}),
            "statsd.metrics_aggregation_interval",
        ),
        (
            json!({"metrics_collection_interval": 0}),
            "statsd.metrics_collection_interval",
        ),
        (json!({"metric_separator": ""}), "statsd.metric_separator"),
        (json!({"templates": ["x"]}), "statsd.templates"),
    ] {
        assert_has(&errors(plugins(json!({"statsd": body}))), at);
    }
}

// --- collectd ----------------------------------------------------------------------------

/// `collectd` with the stock translator's defaults (security level `encrypt`) and its
/// settings read; a `types.db` that cannot be read is an error, as it stops the stock agent.
#[test]
fn collectd_takes_the_stock_defaults_and_refuses_an_unreadable_types_db() {
    let dir = tempfile::tempdir().unwrap();
    let types = dir.path().join("types.db");
    std::fs::write(
        &types,
        "load shortterm:GAUGE:0:5000, midterm:GAUGE:0:5000, longterm:GAUGE:0:5000\n",
    )
    .unwrap();
    let config = load(plugins(json!({"collectd": {"collectd_typesdb": [types]}})));
    let collectd = config.metrics.unwrap().collectd.unwrap();
    assert_eq!(collectd.service_address, "udp://127.0.0.1:25826");
    assert_eq!(collectd.name_prefix, "collectd_");
    assert_eq!(collectd.security_level, config::CollectdSecurity::Encrypt);
    assert_eq!(
        collectd.auth_file,
        std::path::PathBuf::from("/etc/collectd/auth_file")
    );
    assert_eq!(collectd.aggregation_interval_secs, Some(60));
    let config = load(plugins(json!({"collectd": {
        "collectd_typesdb": [types], "collectd_security_level": "none",
        "metrics_aggregation_interval": 0, "name_prefix": "cd_", "service_address": ":25826",
        "append_dimensions": {"team": "ops"}
    }})));
    let collectd = config.metrics.unwrap().collectd.unwrap();
    assert_eq!(collectd.security_level, config::CollectdSecurity::None);
    assert_eq!(collectd.aggregation_interval_secs, None);
    assert_eq!(collectd.append_dimensions["team"], "ops");

    assert_has(
        &errors(plugins(
            json!({"collectd": {"collectd_typesdb": ["/nonexistent/types.db"]}}),
        )),
        "collectd.collectd_typesdb[0]: cannot read /nonexistent/types.db",
    );
    for (body, at) in [
        (
            json!({"collectd_security_level": "paranoid"}),
            "collectd.collectd_security_level",
        ),
        (
            json!({"service_address": "tcp://127.0.0.1:1"}),
            "collectd.service_address",
        ),
        (json!({"security_level": "sign"}), "collectd.security_level"),
    ] {
        let mut body = body;
        body["collectd_typesdb"] = json!([types]);
        assert_has(&errors(plugins(json!({"collectd": body}))), at);
    }
}

// --- journald and EMF (issue 21) --------------------------------------------------------------

fn journald(list: Value) -> Value {
    json!({"logs": {"logs_collected": {"journald": {"collect_list": list}}}})
}

/// The stock translator's sample configurations (`translator/tocwconfig/sampleConfig/
/// journaldlogs_*.json` and `emf_only_config.json`) load with the stock meaning.
#[test]
fn the_stock_journald_and_emf_samples_load_with_the_stock_defaults() {
    let config = load(journald(json!([
        {"log_group_name": "units", "units": ["sshd", "cron.service"], "priority": "warning"},
        {"log_group_name": "matches", "log_stream_name": "{hostname}-m",
         "matches": [{"_UID": "0", "_TRANSPORT": "syslog"}, {"_TRANSPORT": "kernel"}]},
        {"log_group_name": "filtered", "retention_in_days": 7, "log_group_class": "INFREQUENT_ACCESS",
         "filters": [{"type": "exclude", "expression": "DEBUG"}, {"type": "include", "expression": "sshd|kernel"}]}
    ])));
    let logs = config.logs.unwrap();
    assert!(logs.files.is_empty() && logs.emf.is_none());
    let [units, matches, filtered] = &logs.journald[..] else {
        panic!("{:?}", logs.journald)
    };
    assert_eq!(units.units, ["sshd", "cron.service"]);
    assert_eq!(units.priority, "warning");
    assert_eq!(
        units.log_stream_name, "web-01",
        "the host name, never logs.log_stream_name"
    );
    assert_eq!(units.start_at, config::JournalStart::End, "from now on");
    assert_eq!(matches.priority, "info", "the stock default");
    assert_eq!(matches.log_stream_name, "web-01-m");
    assert_eq!(
        matches.matches,
        [
            vec![
                ("_TRANSPORT".into(), "syslog".into()),
                ("_UID".into(), "0".into())
            ],
            vec![("_TRANSPORT".into(), "kernel".into())],
        ]
    );
    assert_eq!(filtered.retention_in_days, Some(7));
    assert_eq!(
        filtered.log_group_class,
        Some(config::LogGroupClass::InfrequentAccess)
    );
    assert_eq!(filtered.filters.len(), 2);

    let emf = load(json!({"logs": {"metrics_collected": {"emf": {}}}}))
        .logs
        .unwrap()
        .emf
        .unwrap();
    assert_eq!(emf.tcp.as_deref(), Some("127.0.0.1:25888"));
    assert_eq!(emf.udp.as_deref(), Some("127.0.0.1:25888"));
    assert_eq!(emf.default_group, "emf/logs/default");
    assert_eq!(emf.default_stream, "web-01");
    let one = |address: &str| {
        let emf = load(json!({"logs": {"log_stream_name": "s", "metrics_collected": {"emf": {"service_address": address}}}}))
            .logs
            .unwrap()
            .emf
            .unwrap();
        (emf.tcp, emf.udp, emf.default_stream)
    };
    assert_eq!(
        one("udp://127.0.0.1:25889"),
        (None, Some("127.0.0.1:25889".into()), "s".into())
    );
    assert_eq!(
        one("tcp://:25889"),
        (Some(":25889".into()), None, "s".into())
    );
    assert_eq!(
        one("localhost:9"),
        (Some("localhost:9".into()), None, "s".into())
    );
}

#[test]
fn journald_and_emf_mistakes_are_errors_at_their_place() {
    let found = errors(journald(json!([
        {"units": ["a"]},
        {"log_group_name": "g", "priority": "error"},
        {"log_group_name": "g", "matches": [{"_systemd_unit": "x"}, {"FIELD2": "y"}]},
        {"log_group_name": "g", "filters": [{"type": "keep", "expression": "x"}]},
        {"log_group_name": "g", "filters": [{"type": "include", "expression": "("}]},
        {"log_group_name": "bad group!"},
        {"log_group_name": "g", "log_stream_name": "a:b"},
        {"log_group_name": "g", "retention_in_days": 2},
        {"log_group_name": "g", "directory": "relative/dir"},
        {"log_group_name": "g", "start_at": "middle"},
        {"log_group_name": "g", "units": "sshd"}
    ])));
    let at = "logs.logs_collected.journald.collect_list";
    for wanted in [
        format!("{at}[0].log_group_name: required"),
        format!("{at}[1].priority: \"error\" is not a priority"),
        format!("{at}[2].matches[0]._systemd_unit: \"_systemd_unit\" is not a journal field name"),
        format!("{at}[2].matches[1].FIELD2: \"FIELD2\" is not a journal field name"),
        format!("{at}[3].filters[0].type: \"keep\" is neither include nor exclude"),
        format!("{at}[4].filters[0].expression:"),
        format!("{at}[5].log_group_name: \"bad group!\" is not a valid log group name"),
        format!("{at}[6].log_stream_name: \"a:b\" is not a valid log stream name"),
        format!("{at}[7].retention_in_days: 2 is not an allowed retention"),
        format!("{at}[8].directory: must be an absolute path"),
        format!("{at}[9].start_at: \"middle\" is neither end nor beginning"),
        format!("{at}[10].units: must be an array of strings"),
    ] {
        assert_has(&found, &wanted);
    }
    assert_has(
        &errors(journald(json!([]))),
        "logs.logs_collected.journald.collect_list: 0 entries, must be 1 to 16",
    );
    let emf = |value: Value| errors(json!({"logs": {"metrics_collected": {"emf": value}}}));
    assert_has(
        &emf(json!({"service_address": "udp://nohostport"})),
        "logs.metrics_collected.emf.service_address: \"udp://nohostport\" is not",
    );
    assert_has(
        &emf(json!({"service_address": 25888})),
        "logs.metrics_collected.emf.service_address: must be a string",
    );
    assert_has(
        &emf(json!([])),
        "logs.metrics_collected.emf: must be an object",
    );
}

#[test]
fn what_the_stock_agent_drops_from_a_journald_entry_is_dropped_with_a_warning() {
    let found = warnings(journald(json!([{
        "log_group_name": "g",
        "units": ["sshd", 7],
        "matches": [{"_UID": 0, "_COMM": "cron"}, {}],
        "filters": [{"type": "include"}],
        "follow": true
    }])));
    let at = "logs.logs_collected.journald.collect_list[0]";
    assert_has(&found, &format!("{at}.units[1]: ignored: not a string"));
    assert_has(
        &found,
        &format!("{at}.matches[0]._UID: ignored: not a string"),
    );
    assert_has(
        &found,
        &format!("{at}.filters[0]: ignored: a filter needs both type and expression"),
    );
    assert_has(&found, &format!("{at}.follow: ignored: not a journald key"));
    let config = load(journald(json!([{
        "log_group_name": "g", "units": ["sshd", 7], "matches": [{"_UID": 0, "_COMM": "cron"}, {}]
    }])));
    let entry = &config.logs.unwrap().journald[0];
    assert_eq!(entry.units, ["sshd"]);
    assert_eq!(
        entry.matches,
        [vec![("_COMM".to_owned(), "cron".to_owned())]],
        "an empty group is skipped, as the stock translator skips it"
    );
}
