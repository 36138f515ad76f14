//! What the wizard decided ([`Answers`], with the stock wizard's defaults) and the stock-format
//! configuration it makes of them: the stock metric presets, the log and journald entries,
//! serialized as the stock wizard writes its file (tabs, keys sorted).
//!
//! Owns the presets and the JSON. It asks nothing (that is `prompt`'s) and writes no file.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// On EC2 or on premises (the stock wizard's first real question).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Host {
    /// EC2: instance dimensions may be added, streams default to `{instance_id}`.
    Ec2,
    /// On premises: streams default to `{hostname}`.
    OnPremise,
}

/// The stock metric sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The fewest metrics.
    Basic,
    /// Basic plus CPU wait and disk time.
    Standard,
    /// Standard plus CPU detail and TCP connections.
    Advanced,
    /// Chosen plugin by plugin (`plugins`).
    None,
}

/// The StatsD listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Statsd {
    /// UDP port.
    pub port: u16,
    /// Collection interval, seconds (10, 30 or 60).
    pub collection_interval: u64,
    /// Aggregation interval, seconds (0 for none, 10, 30 or 60).
    pub aggregation_interval: u64,
}

impl Default for Statsd {
    fn default() -> Self {
        Self {
            port: 8125,
            collection_interval: 10,
            aggregation_interval: 60,
        }
    }
}

/// Which plugins the `None` level collects (each with every measurement the wizard knows).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Plugins {
    /// cpu.
    pub cpu: bool,
    /// mem.
    pub memory: bool,
    /// disk and diskio.
    pub disk: bool,
    /// net and netstat.
    pub network: bool,
    /// swap.
    pub swap: bool,
}

impl Default for Plugins {
    fn default() -> Self {
        Self {
            cpu: true,
            memory: true,
            disk: true,
            network: true,
            swap: true,
        }
    }
}

/// Host metrics.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostMetrics {
    /// The preset.
    pub level: Level,
    /// CPU per core as well as in total.
    pub per_core: bool,
    /// Collection interval, seconds (1, 10, 30 or 60).
    pub interval: u64,
    /// EC2 only: `ImageId`, `InstanceId`, `InstanceType`, `AutoScalingGroupName` dimensions.
    pub ec2_dimensions: bool,
    /// EC2 only: aggregate by `InstanceId`.
    pub aggregate_instance_id: bool,
    /// For the `None` level.
    pub plugins: Plugins,
}

impl Default for HostMetrics {
    fn default() -> Self {
        Self {
            level: Level::Basic,
            per_core: true,
            interval: 60,
            ec2_dimensions: true,
            aggregate_instance_id: true,
            plugins: Plugins::default(),
        }
    }
}

/// One log file entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// `file_path`.
    pub path: String,
    /// `log_group_name`; the file's name (spaces made `_`) when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// `log_stream_name`; `{instance_id}` or `{hostname}` when absent.
    #[serde(default)]
    pub stream: Option<String>,
    /// `retention_in_days`, -1 for never.
    #[serde(default = "never")]
    pub retention: i64,
    /// `log_group_class`.
    #[serde(default = "standard")]
    pub class: String,
}

/// One regex filter of a journald entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JournalFilter {
    /// `include` or `exclude`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The Go regular expression.
    pub expression: String,
}

/// One journald entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Journald {
    /// `units`; empty for every unit.
    pub units: Vec<String>,
    /// `log_group_name`.
    pub group: String,
    /// `log_stream_name`; `{instance_id}` or `{hostname}` when absent.
    pub stream: Option<String>,
    /// `filters`.
    pub filters: Vec<JournalFilter>,
    /// `retention_in_days`.
    pub retention: i64,
}

impl Default for Journald {
    fn default() -> Self {
        Self {
            units: Vec::new(),
            group: "journald".into(),
            stream: None,
            filters: Vec::new(),
            retention: -1,
        }
    }
}

/// Where to store the result in Parameter Store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParameterStore {
    /// The parameter.
    pub name: String,
    /// The region; the profile's (or `AWS_REGION`) when absent.
    pub region: Option<String>,
}

impl Default for ParameterStore {
    fn default() -> Self {
        Self {
            name: DEFAULT_PARAMETER.into(),
            region: None,
        }
    }
}

/// The stock wizard's parameter name (`AmazonCloudWatch-` is what the managed policy allows).
pub const DEFAULT_PARAMETER: &str = "AmazonCloudWatch-linux";

/// The retention periods CloudWatch Logs accepts, as the stock wizard offers them.
pub const RETENTIONS: [i64; 23] = [
    -1, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
];

/// The log group classes.
pub const CLASSES: [&str; 2] = ["STANDARD", "INFREQUENT_ACCESS"];

fn never() -> i64 {
    -1
}

fn standard() -> String {
    CLASSES[0].into()
}

/// Everything the wizard decides. Absent keys of an answers file take the stock wizard's
/// defaults, except that nothing is stored in Parameter Store and no log file is added unless
/// named (neither has a default the stock wizard could take without asking).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Answers {
    /// EC2 or on premises; on premises unless said (cwlite reads no instance metadata).
    pub host: Host,
    /// `agent.run_as_user`.
    pub run_as_user: String,
    /// The StatsD listener, or none.
    pub statsd: Option<Statsd>,
    /// The collectd listener.
    pub collectd: bool,
    /// Host metrics, or none.
    pub host_metrics: Option<HostMetrics>,
    /// Log files.
    pub log_files: Vec<LogFile>,
    /// journald entries.
    pub journald: Vec<Journald>,
    /// Store the result in Parameter Store too.
    pub parameter_store: Option<ParameterStore>,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            host: Host::OnPremise,
            run_as_user: "cwagent".into(),
            statsd: Some(Statsd::default()),
            collectd: true,
            host_metrics: Some(HostMetrics::default()),
            log_files: Vec::new(),
            journald: vec![Journald::default()],
            parameter_store: None,
        }
    }
}

impl Answers {
    /// The stream a log entry gets unless it names one.
    pub fn default_stream(&self) -> &'static str {
        match self.host {
            Host::Ec2 => "{instance_id}",
            Host::OnPremise => "{hostname}",
        }
    }

    /// Checks what an answers file may get wrong; every problem, each naming its key.
    ///
    /// # Errors
    /// The problems found.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(statsd) = &self.statsd {
            if ![10, 30, 60].contains(&statsd.collection_interval) {
                problems.push(format!(
                    "statsd.collection_interval: {} is not 10, 30 or 60",
                    statsd.collection_interval
                ));
            }
            if ![0, 10, 30, 60].contains(&statsd.aggregation_interval) {
                problems.push(format!(
                    "statsd.aggregation_interval: {} is not 0, 10, 30 or 60",
                    statsd.aggregation_interval
                ));
            }
        }
        if let Some(metrics) = &self.host_metrics
            && ![1, 10, 30, 60].contains(&metrics.interval)
        {
            problems.push(format!(
                "host_metrics.interval: {} is not 1, 10, 30 or 60",
                metrics.interval
            ));
        }
        for (i, file) in self.log_files.iter().enumerate() {
            if file.path.trim().is_empty() {
                problems.push(format!("log_files[{i}].path: empty"));
            }
            if !RETENTIONS.contains(&file.retention) {
                problems.push(format!(
                    "log_files[{i}].retention: {} is not a retention CloudWatch Logs offers",
                    file.retention
                ));
            }
            if !CLASSES.contains(&file.class.as_str()) {
                problems.push(format!(
                    "log_files[{i}].class: {:?} is not STANDARD or INFREQUENT_ACCESS",
                    file.class
                ));
            }
        }
        for (i, entry) in self.journald.iter().enumerate() {
            if !RETENTIONS.contains(&entry.retention) {
                problems.push(format!(
                    "journald[{i}].retention: {} is not a retention CloudWatch Logs offers",
                    entry.retention
                ));
            }
            for (j, filter) in entry.filters.iter().enumerate() {
                if !["include", "exclude"].contains(&filter.kind.as_str()) {
                    problems.push(format!(
                        "journald[{i}].filters[{j}].type: {:?} is not include or exclude",
                        filter.kind
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The stock-format configuration for `answers`.
pub fn configuration(answers: &Answers) -> Value {
    let mut root = serde_json::Map::new();
    let mut agent = serde_json::Map::new();
    agent.insert("run_as_user".into(), json!(answers.run_as_user));
    let mut collected = serde_json::Map::new();
    let mut metrics = serde_json::Map::new();
    if let Some(statsd) = &answers.statsd {
        collected.insert(
            "statsd".into(),
            json!({
                "service_address": format!(":{}", statsd.port),
                "metrics_collection_interval": statsd.collection_interval,
                "metrics_aggregation_interval": statsd.aggregation_interval,
            }),
        );
    }
    if answers.collectd {
        let aggregation = answers
            .statsd
            .as_ref()
            .map_or(60, |s| s.aggregation_interval);
        collected.insert(
            "collectd".into(),
            json!({"metrics_aggregation_interval": aggregation}),
        );
    }
    if let Some(host) = &answers.host_metrics {
        agent.insert("metrics_collection_interval".into(), json!(host.interval));
        for (plugin, mut value) in host_plugins(answers.host, host) {
            value["metrics_collection_interval"] = json!(host.interval);
            collected.insert(plugin.into(), value);
        }
        if answers.host == Host::Ec2 {
            if host.ec2_dimensions {
                metrics.insert(
                    "append_dimensions".into(),
                    json!({
                        "ImageId": "${aws:ImageId}",
                        "InstanceId": "${aws:InstanceId}",
                        "InstanceType": "${aws:InstanceType}",
                        "AutoScalingGroupName": "${aws:AutoScalingGroupName}",
                    }),
                );
            }
            if host.aggregate_instance_id {
                metrics.insert("aggregation_dimensions".into(), json!([["InstanceId"]]));
            }
        }
    }
    root.insert("agent".into(), Value::Object(agent));
    if !collected.is_empty() {
        metrics.insert("metrics_collected".into(), Value::Object(collected));
        root.insert("metrics".into(), Value::Object(metrics));
    }
    let mut logs = serde_json::Map::new();
    if !answers.log_files.is_empty() {
        let list: Vec<Value> = answers
            .log_files
            .iter()
            .map(|file| {
                json!({
                    "file_path": file.path,
                    "log_group_name": file.group.clone().unwrap_or_else(|| default_group(&file.path)),
                    "log_stream_name": file.stream.clone().unwrap_or_else(|| answers.default_stream().into()),
                    "retention_in_days": file.retention,
                    "log_group_class": file.class,
                })
            })
            .collect();
        logs.insert("files".into(), json!({ "collect_list": list }));
    }
    if !answers.journald.is_empty() {
        let list: Vec<Value> = answers
            .journald
            .iter()
            .map(|entry| {
                let mut value = json!({
                    "log_group_name": entry.group,
                    "log_stream_name": entry.stream.clone().unwrap_or_else(|| answers.default_stream().into()),
                    "retention_in_days": entry.retention,
                });
                if !entry.units.is_empty() {
                    value["units"] = json!(entry.units);
                }
                if !entry.filters.is_empty() {
                    value["filters"] = json!(entry.filters);
                }
                value
            })
            .collect();
        logs.insert("journald".into(), json!({ "collect_list": list }));
    }
    if !logs.is_empty() {
        root.insert("logs".into(), json!({ "logs_collected": logs }));
    }
    Value::Object(root)
}

/// The stock wizard's group name for a file: its name, spaces made `_`.
pub fn default_group(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
        .replace(' ', "_")
}

/// The host plugins of a level, with the stock wizard's measurement lists and order.
fn host_plugins(host: Host, metrics: &HostMetrics) -> Vec<(&'static str, Value)> {
    const CPU_ALL: [&str; 6] = [
        "cpu_usage_idle",
        "cpu_usage_iowait",
        "cpu_usage_steal",
        "cpu_usage_guest",
        "cpu_usage_user",
        "cpu_usage_system",
    ];
    const DISKIO_ALL: [&str; 5] = ["io_time", "write_bytes", "read_bytes", "writes", "reads"];
    const NET: [&str; 4] = ["bytes_sent", "bytes_recv", "packets_sent", "packets_recv"];
    const NETSTAT: [&str; 2] = ["tcp_established", "tcp_time_wait"];
    let cpu = |measurements: &[&str], total: bool| {
        let mut value = json!({"measurement": measurements, "totalcpu": total});
        if metrics.per_core {
            value["resources"] = json!(["*"]);
        }
        ("cpu", value)
    };
    let mem = || ("mem", json!({"measurement": ["mem_used_percent"]}));
    let swap = || ("swap", json!({"measurement": ["swap_used_percent"]}));
    let disk = |m: &[&str]| ("disk", json!({"measurement": m, "resources": ["*"]}));
    let diskio = |m: &[&str]| ("diskio", json!({"measurement": m, "resources": ["*"]}));
    let net = || ("net", json!({"measurement": NET, "resources": ["*"]}));
    let netstat = || ("netstat", json!({"measurement": NETSTAT}));
    let writes = &DISKIO_ALL[1..];
    match (host, metrics.level) {
        (_, Level::None) => {
            let chosen = &metrics.plugins;
            let mut plugins = Vec::new();
            if chosen.cpu {
                plugins.push(cpu(&CPU_ALL, true));
            }
            if chosen.memory {
                plugins.push(mem());
            }
            if chosen.disk {
                plugins.push(disk(&["used_percent", "inodes_free"]));
                plugins.push(diskio(&DISKIO_ALL));
            }
            if chosen.network {
                plugins.push(net());
                plugins.push(netstat());
            }
            if chosen.swap {
                plugins.push(swap());
            }
            plugins
        }
        (Host::OnPremise, level) => {
            let mut plugins = vec![
                match level {
                    Level::Basic => cpu(&["cpu_usage_idle"], true),
                    Level::Standard => cpu(&["cpu_usage_idle", "cpu_usage_iowait"], true),
                    _ => cpu(&CPU_ALL, true),
                },
                match level {
                    Level::Basic => diskio(writes),
                    _ => diskio(&DISKIO_ALL),
                },
                disk(&["used_percent"]),
                mem(),
                net(),
                swap(),
            ];
            if level == Level::Advanced {
                plugins.push(netstat());
            }
            plugins
        }
        (Host::Ec2, Level::Basic) => vec![mem(), disk(&["used_percent"])],
        (Host::Ec2, level) => {
            let mut plugins = vec![
                mem(),
                disk(&["used_percent", "inodes_free"]),
                cpu(
                    &[
                        "cpu_usage_idle",
                        "cpu_usage_iowait",
                        "cpu_usage_user",
                        "cpu_usage_system",
                    ],
                    false,
                ),
                match level {
                    Level::Advanced => diskio(&DISKIO_ALL),
                    _ => diskio(&["io_time"]),
                },
                swap(),
            ];
            if level == Level::Advanced {
                plugins.push(netstat());
            }
            plugins
        }
    }
}

/// The file's text, as the stock wizard writes it: tab-indented, object keys sorted.
pub fn render(value: &Value) -> String {
    use serde::Serialize as _;
    let sorted = sort_keys(value.clone());
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    sorted
        .serialize(&mut serializer)
        .expect("a JSON value serializes");
    let mut text = String::from_utf8(out).expect("serde_json writes UTF-8");
    text.push('\n');
    text
}

fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurements(config: &Value, plugin: &str) -> Vec<String> {
        config["metrics"]["metrics_collected"][plugin]["measurement"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|m| m.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn with_level(host: Host, level: Level) -> Value {
        configuration(&Answers {
            host,
            host_metrics: Some(HostMetrics {
                level,
                ..HostMetrics::default()
            }),
            statsd: None,
            collectd: false,
            journald: Vec::new(),
            ..Answers::default()
        })
    }

    #[test]
    fn the_presets_are_the_stock_wizards() {
        let basic = with_level(Host::OnPremise, Level::Basic);
        assert_eq!(measurements(&basic, "cpu"), ["cpu_usage_idle"]);
        assert_eq!(
            basic["metrics"]["metrics_collected"]["cpu"]["totalcpu"],
            true
        );
        assert_eq!(
            measurements(&basic, "diskio"),
            ["write_bytes", "read_bytes", "writes", "reads"]
        );
        assert!(
            basic["metrics"]["metrics_collected"]
                .get("netstat")
                .is_none()
        );
        let standard = with_level(Host::OnPremise, Level::Standard);
        assert_eq!(
            measurements(&standard, "cpu"),
            ["cpu_usage_idle", "cpu_usage_iowait"]
        );
        assert_eq!(measurements(&standard, "diskio")[0], "io_time");
        let advanced = with_level(Host::OnPremise, Level::Advanced);
        assert_eq!(measurements(&advanced, "cpu").len(), 6);
        assert_eq!(
            measurements(&advanced, "netstat"),
            ["tcp_established", "tcp_time_wait"]
        );
        let ec2 = with_level(Host::Ec2, Level::Basic);
        let plugins: Vec<&String> = ec2["metrics"]["metrics_collected"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(plugins, ["mem", "disk"]);
        assert_eq!(
            ec2["metrics"]["aggregation_dimensions"],
            json!([["InstanceId"]])
        );
        let ec2 = with_level(Host::Ec2, Level::Standard);
        assert_eq!(
            ec2["metrics"]["metrics_collected"]["cpu"]["totalcpu"],
            false
        );
        assert_eq!(measurements(&ec2, "diskio"), ["io_time"]);
        assert!(basic["metrics"].get("append_dimensions").is_none());
        assert_eq!(basic["agent"]["metrics_collection_interval"], 60);
        assert_eq!(
            basic["metrics"]["metrics_collected"]["mem"]["metrics_collection_interval"],
            60
        );
    }

    #[test]
    fn log_entries_take_the_stock_defaults() {
        let answers = Answers {
            log_files: vec![LogFile {
                path: "/var/log/my app.log".into(),
                group: None,
                stream: None,
                retention: -1,
                class: "STANDARD".into(),
            }],
            ..Answers::default()
        };
        let config = configuration(&answers);
        let entry = &config["logs"]["logs_collected"]["files"]["collect_list"][0];
        assert_eq!(entry["log_group_name"], "my_app.log");
        assert_eq!(entry["log_stream_name"], "{hostname}");
        assert_eq!(entry["retention_in_days"], -1);
        assert_eq!(entry["log_group_class"], "STANDARD");
        let journal = &config["logs"]["logs_collected"]["journald"]["collect_list"][0];
        assert_eq!(journal["log_group_name"], "journald");
        assert!(journal.get("units").is_none());
        assert_eq!(
            config["metrics"]["metrics_collected"]["statsd"]["service_address"],
            ":8125"
        );
        assert_eq!(
            config["metrics"]["metrics_collected"]["collectd"]["metrics_aggregation_interval"],
            60
        );
    }

    #[test]
    fn the_file_is_tab_indented_with_sorted_keys() {
        let text = render(&json!({"b": 1, "a": {"d": [1], "c": true}}));
        assert_eq!(
            text,
            "{\n\t\"a\": {\n\t\t\"c\": true,\n\t\t\"d\": [\n\t\t\t1\n\t\t]\n\t},\n\t\"b\": 1\n}\n"
        );
    }

    #[test]
    fn an_answers_file_is_checked_key_by_key() {
        let answers: Answers = serde_json::from_value(json!({
            "statsd": {"collection_interval": 15},
            "log_files": [{"path": "/a", "retention": 8, "class": "COLD"}]
        }))
        .unwrap();
        let problems = answers.check().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("statsd.collection_interval"));
        assert!(serde_json::from_value::<Answers>(json!({"statds": {}})).is_err());
    }
}
