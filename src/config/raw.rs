//! Stage one of the configuration: serde structs that mirror the stock agent's JSON as written.
//!
//! Owns only the shape of the input: field names, JSON types and which objects refuse unknown
//! keys (`metrics`, `logs` and `collect_list` entries, as the stock schema does). No defaults,
//! bounds or cross-field rules live here; `validate` turns these into the types runtime code
//! uses, and nothing outside `config` sees them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Keys of `agent` the stock schema knows. Others are accepted by the stock agent; cwlite warns.
pub const AGENT_KEYS: &[&str] = &[
    "metrics_collection_interval",
    "region",
    "credentials",
    "run_as_user",
    "logfile",
    "debug",
    "aws_sdk_log_level",
    "omit_hostname",
    "hostname",
    "usage_data",
    "user_agent",
    "use_dualstack_endpoint",
    "internal",
    "service.name",
    "deployment.environment",
    "collection_jitter",
    "flush_interval",
    "flush_jitter",
    "precision",
    "quiet",
    "round_interval",
    "metric_batch_size",
    "metric_buffer_limit",
    "logtarget",
];

/// The `agent` section. Some fields are decoded only so that a wrong JSON type is an error, as
/// in the stock schema; cwlite does not use them (validation warns that they are ignored).
#[derive(Debug, Default, Deserialize)]
#[allow(dead_code)]
pub struct RawAgent {
    pub metrics_collection_interval: Option<i64>,
    pub region: Option<String>,
    pub credentials: Option<RawCredentials>,
    pub run_as_user: Option<String>,
    pub logfile: Option<String>,
    pub debug: Option<bool>,
    pub aws_sdk_log_level: Option<String>,
    pub omit_hostname: Option<bool>,
    pub hostname: Option<String>,
    pub usage_data: Option<bool>,
    pub user_agent: Option<String>,
    pub use_dualstack_endpoint: Option<bool>,
    pub internal: Option<bool>,
}

/// Keys of `metrics`; the stock schema refuses any other (checked by `validate`, so that one
/// unknown key does not hide the other errors of the section).
pub const METRICS_KEYS: &[&str] = &[
    "namespace",
    "metrics_collected",
    "append_dimensions",
    "aggregation_dimensions",
    "force_flush_interval",
    "endpoint_override",
    "credentials",
    "metrics_destinations",
    "service.name",
    "deployment.environment",
];
/// Keys of `logs`.
pub const LOGS_KEYS: &[&str] = &[
    "logs_collected",
    "metrics_collected",
    "log_stream_name",
    "force_flush_interval",
    "endpoint_override",
    "credentials",
    "concurrency",
    "service.name",
    "deployment.environment",
];
/// Keys of `logs.logs_collected`.
/// What the stock schema allows under `logs.logs_collected` (`translator/config/schema.json`),
/// plus `journald`, which its translator reads.
pub const LOGS_COLLECTED_KEYS: &[&str] =
    &["files", "journald", "windows_events", "application_signals"];
/// Keys of `logs.logs_collected.files`.
pub const FILES_KEYS: &[&str] = &["collect_list"];
/// Keys of a `collect_list` entry.
pub const FILE_ENTRY_KEYS: &[&str] = &[
    "file_path",
    "log_group_name",
    "log_stream_name",
    "log_group_class",
    "retention_in_days",
    "timestamp_format",
    "timezone",
    "trim_timestamp",
    "multi_line_start_pattern",
    "encoding",
    "filters",
    "auto_removal",
    "publish_multi_logs",
    "blacklist",
    "backpressure_mode",
    "service.name",
    "deployment.environment",
];
/// Keys of a filter.
pub const FILTER_KEYS: &[&str] = &["type", "expression"];
/// Keys of a measurement in object form.
pub const MEASUREMENT_KEYS: &[&str] = &["name", "rename", "unit"];

/// `credentials` in any section: only `role_arn` exists. Decoded for its shape only.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub role_arn: String,
}

/// The `metrics` section.
#[derive(Debug, Deserialize)]
pub struct RawMetrics {
    pub namespace: Option<String>,
    /// Plugins by name; decoded one by one so that one bad plugin does not hide another's errors.
    pub metrics_collected: Option<serde_json::Map<String, Value>>,
    pub append_dimensions: Option<BTreeMap<String, String>>,
    pub aggregation_dimensions: Option<Vec<Vec<String>>>,
    pub force_flush_interval: Option<i64>,
    pub endpoint_override: Option<String>,
    pub credentials: Option<RawCredentials>,
    pub metrics_destinations: Option<serde_json::Map<String, Value>>,
    #[serde(rename = "service.name")]
    pub service_name: Option<String>,
    #[serde(rename = "deployment.environment")]
    pub deployment_environment: Option<String>,
}

/// Keys a host plugin may carry; anything else gets a warning.
pub const PLUGIN_KEYS: &[&str] = &[
    "measurement",
    "metrics_collection_interval",
    "append_dimensions",
    "drop_original_metrics",
    "resources",
    "totalcpu",
    "ignore_file_system_types",
    "drop_device",
    "pid_file",
    "exe",
    "pattern",
];

/// One host plugin under `metrics_collected`.
#[derive(Debug, Deserialize)]
pub struct RawPlugin {
    pub measurement: Vec<RawMeasurement>,
    pub metrics_collection_interval: Option<i64>,
    pub append_dimensions: Option<BTreeMap<String, String>>,
    pub drop_original_metrics: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub totalcpu: Option<bool>,
    pub ignore_file_system_types: Option<Vec<String>>,
    pub drop_device: Option<bool>,
    pub pid_file: Option<String>,
    pub exe: Option<String>,
    pub pattern: Option<String>,
}

/// `metrics_collected.statsd`.
#[derive(Debug, Deserialize)]
pub struct RawStatsd {
    pub service_address: Option<String>,
    pub metrics_collection_interval: Option<i64>,
    pub metrics_aggregation_interval: Option<i64>,
    pub metric_separator: Option<String>,
    pub allowed_pending_messages: Option<i64>,
    pub drop_original_metrics: Option<Vec<String>>,
}

/// `metrics_collected.collectd`.
#[derive(Debug, Deserialize)]
pub struct RawCollectd {
    pub service_address: Option<String>,
    pub name_prefix: Option<String>,
    pub collectd_auth_file: Option<String>,
    pub collectd_security_level: Option<String>,
    pub collectd_typesdb: Option<Vec<String>>,
    pub metrics_aggregation_interval: Option<i64>,
    pub drop_original_metrics: Option<Vec<String>>,
    pub append_dimensions: Option<BTreeMap<String, String>>,
}

/// A measurement: a name, or an object with `name` and optional `rename` and `unit`.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RawMeasurement {
    Name(String),
    Object(RawMeasurementObject),
}

/// The object form of a measurement.
#[derive(Debug, PartialEq, Deserialize)]
pub struct RawMeasurementObject {
    pub name: String,
    pub rename: Option<String>,
    pub unit: Option<String>,
}

/// The `logs` section.
#[derive(Debug, Deserialize)]
pub struct RawLogs {
    pub logs_collected: Option<RawLogsCollected>,
    pub metrics_collected: Option<serde_json::Map<String, Value>>,
    pub log_stream_name: Option<String>,
    pub force_flush_interval: Option<i64>,
    pub endpoint_override: Option<String>,
    pub credentials: Option<RawCredentials>,
    pub concurrency: Option<i64>,
    #[serde(rename = "service.name")]
    pub service_name: Option<String>,
    #[serde(rename = "deployment.environment")]
    pub deployment_environment: Option<String>,
}

/// `logs.logs_collected`.
#[derive(Debug, Deserialize)]
pub struct RawLogsCollected {
    pub files: Option<RawFiles>,
    pub journald: Option<Value>,
    pub windows_events: Option<Value>,
    pub application_signals: Option<Value>,
}

/// `logs.logs_collected.files`.
#[derive(Debug, Deserialize)]
pub struct RawFiles {
    /// Entries, decoded one by one for the same reason as plugins.
    pub collect_list: Vec<Value>,
}

/// One entry of `collect_list`.
#[derive(Debug, Deserialize)]
pub struct RawFileEntry {
    pub file_path: String,
    pub log_group_name: Option<String>,
    pub log_stream_name: Option<String>,
    pub log_group_class: Option<String>,
    pub retention_in_days: Option<i64>,
    pub timestamp_format: Option<String>,
    pub timezone: Option<String>,
    pub trim_timestamp: Option<bool>,
    pub multi_line_start_pattern: Option<String>,
    pub encoding: Option<String>,
    /// Decoded one by one, so one broken filter does not hide the entry's other errors.
    pub filters: Option<Vec<Value>>,
    pub auto_removal: Option<bool>,
    pub publish_multi_logs: Option<bool>,
    pub blacklist: Option<String>,
    pub backpressure_mode: Option<String>,
    #[serde(rename = "service.name")]
    pub service_name: Option<String>,
    #[serde(rename = "deployment.environment")]
    pub deployment_environment: Option<String>,
}

/// One include/exclude filter.
#[derive(Debug, Deserialize)]
pub struct RawFilter {
    #[serde(rename = "type")]
    pub kind: String,
    pub expression: String,
}
