//! Stage two of the configuration: the validated types that runtime code uses.
//!
//! Owns every default, bound and named constant that the stock agent's schema and translator
//! define, as documented types: nothing here is raw JSON, every value has been checked, every
//! placeholder resolved. Produced only by `validate`; printed by `cwlite validate` as the
//! effective configuration, which is why everything is `Serialize` and nothing secret is held.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::charset::Charset;
use super::common::CommonConfig;
use super::go_regex::GoRegex;

/// Default collection interval for every metrics plugin, in seconds (stock `60`).
pub const DEFAULT_COLLECTION_INTERVAL_SECS: u64 = 60;
/// The largest interval the stock schema allows (`timeIntervalDefinition`: 2 days).
pub const MAX_INTERVAL_SECS: u64 = 172_800;
/// Plugins sampled more often than this are sent with `StorageResolution` 1.
pub const HIGH_RESOLUTION_BELOW_SECS: u64 = 60;
/// Default PutMetricData namespace.
pub const DEFAULT_NAMESPACE: &str = "CWAgent";
/// Default metrics publish interval, in seconds (stock `60`).
pub const DEFAULT_METRICS_FORCE_FLUSH_SECS: u64 = 60;
/// Default longest wait of a partial PutLogEvents batch, in seconds (stock `5`).
pub const DEFAULT_LOGS_FORCE_FLUSH_SECS: u64 = 5;
/// PutLogEvents calls in flight per stream when `concurrency` is not set. The stock agent sends
/// one at a time; CloudWatch no longer limits per-stream rate, so a few in parallel hide latency.
pub const DEFAULT_LOGS_CONCURRENCY: u32 = 4;
/// PutLogEvents calls in flight over all streams unless `concurrency` (above 1, the stock
/// agent's pool shared by every stream) says otherwise: each may hold a connection, and a glob
/// matching thousands of files with `publish_multi_logs` makes as many streams.
pub const DEFAULT_LOGS_REQUESTS_IN_FLIGHT: u32 = 32;
/// CloudWatch's limit on dimensions per metric.
pub const MAX_DIMENSIONS: usize = 30;
/// The stock schema's limit on `aggregation_dimensions` sets.
pub const MAX_AGGREGATION_SETS: usize = 1024;
/// The stock schema's limit on `collect_list` entries.
pub const MAX_COLLECT_LIST: usize = 16_384;
/// The start pattern the stock agent installs when none is configured: a line that does not
/// start with white space starts a new event.
pub const DEFAULT_MULTI_LINE_START_PATTERN: &str = r"^[\S]";
/// Values `retention_in_days` may take (`-1` means "leave the group's retention alone").
pub const ALLOWED_RETENTION_DAYS: [i64; 23] = [
    -1, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
];
/// Longest log group and stream names CloudWatch accepts.
pub const MAX_LOG_NAME_LEN: usize = 512;

/// Everything cwlite runs from.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The JSON files merged into this configuration, in order.
    pub sources: Vec<PathBuf>,
    /// Credentials, proxy and CA settings.
    pub common: CommonConfig,
    /// The region clients talk to; `None` only when `validate` could not find one.
    pub region: Option<ResolvedRegion>,
    /// Agent-wide settings.
    pub agent: AgentConfig,
    /// Host metrics, when configured.
    pub metrics: Option<MetricsConfig>,
    /// Log files, when configured.
    pub logs: Option<LogsConfig>,
}

/// A region and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedRegion {
    /// The region name.
    pub name: String,
    /// Where it came from, for the operator (`agent.region`, a file, `AWS_REGION`).
    pub source: String,
}

/// The `agent` section.
#[derive(Debug, Clone, Serialize)]
pub struct AgentConfig {
    /// Default interval for metrics plugins, seconds.
    pub metrics_collection_interval_secs: u64,
    /// Value of the `host` dimension.
    pub hostname: String,
    /// Whether to drop the `host` dimension.
    pub omit_hostname: bool,
    /// Debug logging.
    pub debug: bool,
    /// Where cwlite writes its own log; `None` means stderr (journald under systemd).
    pub logfile: Option<PathBuf>,
    /// The user to run as when started as root.
    pub run_as_user: Option<String>,
    /// Use dual-stack (IPv6) AWS endpoints.
    pub use_dualstack_endpoint: bool,
    /// `agent.credentials.role_arn`: the role every section assumes unless it names its own.
    pub role_arn: Option<String>,
}

/// Where a service's requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointOverride {
    /// The full URL, `https://` unless written otherwise.
    pub url: String,
}

impl EndpointOverride {
    /// Whether requests go without TLS (only when written as an explicit `http://` URL).
    pub fn is_plain_http(&self) -> bool {
        self.url.starts_with("http://")
    }

    /// A hostname (made `https://`) or an `http(s)://` URL, as the stock `endpoint_override`
    /// takes it.
    ///
    /// # Errors
    /// Another scheme, or no host.
    pub fn parse(text: &str) -> Result<Self, String> {
        let candidate = if text.contains("://") {
            text.to_owned()
        } else {
            format!("https://{text}")
        };
        match url::Url::parse(&candidate) {
            Ok(url)
                if matches!(url.scheme(), "https" | "http")
                    && url.host_str().is_some_and(|h| !h.is_empty()) =>
            {
                Ok(Self {
                    url: candidate.trim_end_matches('/').to_owned(),
                })
            }
            Ok(url) if !matches!(url.scheme(), "https" | "http") => Err(format!(
                "unsupported scheme \"{}\": use a hostname or an https:// url",
                url.scheme()
            )),
            _ => Err(format!("\"{text}\" is not a hostname or url")),
        }
    }
}

/// The `metrics` section.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    /// PutMetricData namespace.
    pub namespace: String,
    /// Host plugins, in configuration order.
    pub plugins: Vec<PluginConfig>,
    /// Roll-up dimension sets, deduplicated, each sorted.
    pub aggregation_dimensions: Vec<Vec<String>>,
    /// Publish interval, seconds.
    pub force_flush_interval_secs: u64,
    /// Endpoint override for the monitoring service.
    pub endpoint_override: Option<EndpointOverride>,
    /// The role PutMetricData is signed with (`metrics.credentials.role_arn`, else the
    /// agent's), assumed with the profile's keys.
    pub role_arn: Option<String>,
    /// The statsd listener, if configured.
    pub statsd: Option<StatsdConfig>,
    /// The collectd listener, if configured.
    pub collectd: Option<CollectdConfig>,
}

/// `metrics_collected.collectd`: a UDP listener for collectd's network protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectdConfig {
    /// `service_address` (`udp://127.0.0.1:25826`).
    pub service_address: String,
    /// `name_prefix`, before `<plugin>_<source>`.
    pub name_prefix: String,
    /// `collectd_auth_file`: users and passwords for signed and encrypted packets.
    pub auth_file: PathBuf,
    /// `collectd_security_level`: what packets must be at least.
    pub security_level: CollectdSecurity,
    /// `collectd_typesdb`: the files naming each type's data sources.
    pub typesdb: Vec<PathBuf>,
    /// `metrics_aggregation_interval`, seconds; `None` (configured 0) sends each value list
    /// at once, at high resolution.
    pub aggregation_interval_secs: Option<u64>,
    /// `append_dimensions`.
    pub append_dimensions: BTreeMap<String, String>,
}

/// `collectd_security_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectdSecurity {
    /// Plain packets are taken.
    None,
    /// Signed (or encrypted) packets only.
    Sign,
    /// Encrypted packets only: the stock default.
    Encrypt,
}

impl CollectdSecurity {
    /// As configured.
    pub fn name(self) -> &'static str {
        match self {
            CollectdSecurity::None => "none",
            CollectdSecurity::Sign => "sign",
            CollectdSecurity::Encrypt => "encrypt",
        }
    }
}

/// collectd's default `service_address`.
pub const DEFAULT_COLLECTD_ADDRESS: &str = "udp://127.0.0.1:25826";
/// collectd's default `collectd_auth_file`.
pub const DEFAULT_COLLECTD_AUTH_FILE: &str = "/etc/collectd/auth_file";
/// collectd's default `collectd_typesdb`.
pub const DEFAULT_COLLECTD_TYPESDB: &str = "/usr/share/collectd/types.db";

/// `metrics_collected.statsd`: a UDP listener with the stock agent's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsdConfig {
    /// `service_address` as configured (`:8125` is every interface).
    pub service_address: String,
    /// `metrics_collection_interval`: how long a window gathers, seconds.
    pub collection_interval_secs: u64,
    /// `metrics_aggregation_interval`, seconds; `None` (configured 0) sends each window as it
    /// closes, at high resolution.
    pub aggregation_interval_secs: Option<u64>,
    /// `metric_separator`, joining a name's `.` parts.
    pub metric_separator: String,
    /// `allowed_pending_messages`: datagrams waiting to be parsed; beyond, they are dropped
    /// and counted.
    pub allowed_pending_messages: usize,
}

/// statsd's default `metrics_collection_interval`, seconds.
pub const DEFAULT_STATSD_COLLECTION_SECS: u64 = 10;
/// statsd's and collectd's default `metrics_aggregation_interval`, seconds.
pub const DEFAULT_AGGREGATION_SECS: u64 = 60;
/// statsd's default `allowed_pending_messages`.
pub const DEFAULT_STATSD_PENDING: usize = 10_000;
/// statsd's default `service_address`.
pub const DEFAULT_STATSD_ADDRESS: &str = ":8125";

/// The host plugins cwlite collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// `cpu`.
    Cpu,
    /// `mem`.
    Mem,
    /// `swap`.
    Swap,
    /// `disk`.
    Disk,
    /// `diskio`.
    Diskio,
    /// `net`.
    Net,
    /// `netstat`.
    Netstat,
    /// `processes`.
    Processes,
    /// `procstat`: one per entry of its list.
    Procstat,
}

impl PluginKind {
    /// The plugin's configuration key and metric name prefix.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Cpu => "cpu",
            PluginKind::Mem => "mem",
            PluginKind::Swap => "swap",
            PluginKind::Disk => "disk",
            PluginKind::Diskio => "diskio",
            PluginKind::Net => "net",
            PluginKind::Netstat => "netstat",
            PluginKind::Processes => "processes",
            PluginKind::Procstat => "procstat",
        }
    }

    /// The plugin named `name`, if cwlite collects it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            PluginKind::Cpu,
            PluginKind::Mem,
            PluginKind::Swap,
            PluginKind::Disk,
            PluginKind::Diskio,
            PluginKind::Net,
            PluginKind::Netstat,
            PluginKind::Processes,
            PluginKind::Procstat,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One measurement to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measurement {
    /// The plugin's field (`usage_idle`).
    pub field: &'static str,
    /// The metric name sent (`cpu_usage_idle`, or the `rename`).
    pub metric_name: String,
    /// The unit sent.
    pub unit: &'static str,
}

/// Which instances of a plugin to collect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resources {
    /// Every instance (`"*"` or no `resources`).
    All,
    /// Only these (mount points for disk, globs of names for diskio and net).
    Only(Vec<String>),
}

/// Plugin-specific settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PluginOptions {
    /// `cpu`: per-core series with `resources: ["*"]`, `cpu-total` with `totalcpu`.
    Cpu {
        /// Per-core series (`cpu0`, `cpu1`, ...).
        per_cpu: bool,
        /// The `cpu-total` series.
        total_cpu: bool,
    },
    /// `disk`: mount points, skipped filesystem types, `device` dimension.
    Disk {
        /// Mount points to report.
        mount_points: Resources,
        /// Filesystem types to skip (autofs is always skipped).
        ignore_file_system_types: Vec<String>,
        /// Drop the `device` dimension.
        drop_device: bool,
    },
    /// `diskio`: device name globs.
    Diskio {
        /// Devices to report.
        devices: Resources,
    },
    /// `net`: interface name globs; `All` means non-loopback interfaces that are up.
    Net {
        /// Interfaces to report.
        interfaces: Resources,
    },
    /// `procstat`: how the entry finds its processes.
    Procstat {
        /// `pid_file`, `exe` or `pattern`.
        finder: ProcessFinder,
    },
    /// Plugins without own settings.
    None,
}

/// How a `procstat` entry finds its processes (telegraf's native finder).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessFinder {
    /// The process whose pid a file holds.
    PidFile(PathBuf),
    /// Processes whose name matches.
    Exe(GoRegex),
    /// Processes whose command line matches.
    Pattern(GoRegex),
}

impl PartialEq for ProcessFinder {
    fn eq(&self, other: &Self) -> bool {
        self.dimension() == other.dimension() && self.configured() == other.configured()
    }
}

impl Eq for ProcessFinder {}

impl ProcessFinder {
    /// The dimension naming the entry: `pidfile`, `exe` or `pattern`.
    pub fn dimension(&self) -> &'static str {
        match self {
            ProcessFinder::PidFile(_) => "pidfile",
            ProcessFinder::Exe(_) => "exe",
            ProcessFinder::Pattern(_) => "pattern",
        }
    }

    /// The configured value, the dimension's value.
    pub fn configured(&self) -> String {
        match self {
            ProcessFinder::PidFile(path) => path.display().to_string(),
            ProcessFinder::Exe(regex) | ProcessFinder::Pattern(regex) => regex.as_str().to_owned(),
        }
    }
}

/// One host plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginConfig {
    /// Which plugin.
    pub kind: PluginKind,
    /// What to send, in configuration order.
    pub measurements: Vec<Measurement>,
    /// Collection interval, seconds.
    pub interval_secs: u64,
    /// `StorageResolution` 1 (interval under 60 s) rather than 60.
    pub high_resolution: bool,
    /// Static dimensions added to this plugin's metrics.
    pub append_dimensions: BTreeMap<String, String>,
    /// Metric names whose original datum is not sent, only its roll-ups.
    pub drop_original_metrics: Vec<String>,
    /// Plugin-specific settings.
    pub options: PluginOptions,
}

/// The `logs` section.
#[derive(Debug, Clone, Serialize)]
pub struct LogsConfig {
    /// Files to tail.
    pub files: Vec<FileConfig>,
    /// `logs_collected.journald.collect_list`, in order (an entry's index keys its cursor's
    /// acknowledgements, not its checkpoint file).
    pub journald: Vec<JournaldConfig>,
    /// The Embedded Metric Format listener, when `metrics_collected.emf` is there.
    pub emf: Option<EmfConfig>,
    /// Longest wait of a partial batch, seconds.
    pub force_flush_interval_secs: u64,
    /// Endpoint override for the logs service.
    pub endpoint_override: Option<EndpointOverride>,
    /// The role CloudWatch Logs calls are signed with (`logs.credentials.role_arn`, else the
    /// agent's), assumed with the profile's keys.
    pub role_arn: Option<String>,
    /// PutLogEvents calls in flight per stream.
    pub concurrency: u32,
    /// PutLogEvents calls in flight over all streams: a `concurrency` above 1 is the stock
    /// agent's pool shared by every stream, so it bounds the whole process too.
    pub requests_in_flight: u32,
}

impl LogsConfig {
    /// Whether anything feeds the logs pipeline.
    pub fn has_sources(&self) -> bool {
        !self.files.is_empty() || !self.journald.is_empty() || self.emf.is_some()
    }
}

/// One `logs_collected.journald.collect_list` entry: which journal entries, and where they go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournaldConfig {
    /// Log group, placeholders resolved.
    pub log_group_name: String,
    /// Log stream: the entry's own, else the host name (never `logs.log_stream_name`, as in
    /// the stock translator).
    pub log_stream_name: String,
    /// Class for a group cwlite creates.
    pub log_group_class: Option<LogGroupClass>,
    /// Retention to set once.
    pub retention_in_days: Option<u32>,
    /// Units (`--unit`, ORed; journalctl adds `.service` and matches systemd's own messages
    /// about them).
    pub units: Vec<String>,
    /// The most verbose level kept (`--priority`): a name, a number or a `from..to` range.
    pub priority: String,
    /// Field matches: fields inside one are ANDed, the groups ORed; each sorted by field.
    pub matches: Vec<Vec<(String, String)>>,
    /// Excludes win, then any include must match, on the JSON text of the whole entry.
    pub filters: Vec<Filter>,
    /// A journal directory to read instead of the system journal (cwlite's own key, after the
    /// OpenTelemetry receiver's `directory`).
    pub directory: Option<PathBuf>,
    /// Where reading starts when there is no cursor yet (cwlite's own key, `start_at`).
    pub start_at: JournalStart,
}

/// Where a journal entry with no cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStart {
    /// With the next entry written (the stock agent's only choice).
    End,
    /// With the oldest entry kept.
    Beginning,
}

/// Name of a journal priority, in level order (0 to 7), as journalctl reads them.
pub const JOURNAL_PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// `logs.metrics_collected.emf`: the listeners and the destination of documents that name none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmfConfig {
    /// TCP `host:port`, newline-delimited documents.
    pub tcp: Option<String>,
    /// UDP `host:port`, one document a datagram.
    pub udp: Option<String>,
    /// Group of a document without `_aws.LogGroupName` or `log_group_name`.
    pub default_group: String,
    /// Stream of a document without `_aws.LogStreamName` or `log_stream_name`.
    pub default_stream: String,
}

/// Where EMF listeners listen unless `service_address` says otherwise: the loopback only, as
/// the stock agent's telegraf listener did (its OpenTelemetry one binds every interface).
pub const DEFAULT_EMF_ADDRESS: &str = "127.0.0.1:25888";

/// The group of EMF documents that name none (the stock exporter's `emf/logs/default`).
pub const DEFAULT_EMF_GROUP: &str = "emf/logs/default";

/// A log group's storage class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogGroupClass {
    /// `STANDARD`.
    Standard,
    /// `INFREQUENT_ACCESS`.
    InfrequentAccess,
}

/// The zone timestamps without an offset are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Timezone {
    /// The host's local zone.
    Local,
    /// UTC.
    Utc,
}

/// How a new multi-line event is recognised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiLineStart {
    /// Lines matching this pattern start an event.
    Pattern(GoRegex),
    /// Lines where the `timestamp_format` matches start an event.
    TimestampFormat,
}

/// Whether a filter keeps or drops matching events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// Keep only events that match.
    Include,
    /// Drop events that match.
    Exclude,
}

/// One include/exclude filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filter {
    /// Include or exclude.
    #[serde(rename = "type")]
    pub kind: FilterKind,
    /// The pattern.
    pub expression: GoRegex,
}

/// Where a file's events go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogGroupName {
    /// One named group.
    Named(String),
    /// `publish_multi_logs` without a group: each file's path, with characters CloudWatch
    /// refuses replaced by `_`.
    FromEachFilePath,
}

/// One `collect_list` entry.
#[derive(Debug, Clone, Serialize)]
pub struct FileConfig {
    /// Path or glob.
    pub file_path: String,
    /// Destination group.
    pub log_group_name: LogGroupName,
    /// Destination stream (placeholders resolved). With `publish_multi_logs` and a named group,
    /// the prefix of each file's stream: the entry's own `log_stream_name`, empty when it has
    /// none (the stock agent names the streams `<prefix>_` and the path, `__var_log_x.log`).
    pub log_stream_name: String,
    /// Class for a group cwlite creates.
    pub log_group_class: Option<LogGroupClass>,
    /// Retention to set once per group; `None` leaves it alone.
    pub retention_in_days: Option<u32>,
    /// strftime-like timestamp format.
    pub timestamp_format: Option<String>,
    /// Zone for timestamps without an offset.
    pub timezone: Timezone,
    /// Remove the matched timestamp from the message.
    pub trim_timestamp: bool,
    /// How events start.
    pub multi_line_start: MultiLineStart,
    /// The file's character set.
    pub encoding: Charset,
    /// Filters, all of which must pass.
    pub filters: Vec<Filter>,
    /// Delete a fully read file once a newer one matches.
    pub auto_removal: bool,
    /// Tail every match rather than only the newest.
    pub publish_multi_logs: bool,
    /// Base names to skip.
    pub blacklist: Option<GoRegex>,
}

impl FileConfig {
    /// An entry reading `file_path` into `group` and `stream` with nothing else set: no
    /// `timestamp_format`, the default start pattern, UTF-8, no filters, only the newest match.
    /// For code that builds an entry without a configuration file (tests, benches); its zone is
    /// UTC, where a configuration's unset `timezone` is the host's, so that their timestamps
    /// read the same on every machine.
    pub fn plain(file_path: &str, group: &str, stream: &str) -> Self {
        Self {
            file_path: file_path.into(),
            log_group_name: LogGroupName::Named(group.into()),
            log_stream_name: stream.into(),
            log_group_class: None,
            retention_in_days: None,
            timestamp_format: None,
            timezone: Timezone::Utc,
            trim_timestamp: false,
            multi_line_start: MultiLineStart::Pattern(
                GoRegex::new(DEFAULT_MULTI_LINE_START_PATTERN)
                    .expect("the default start pattern compiles"),
            ),
            encoding: Charset::UTF_8,
            filters: vec![],
            auto_removal: false,
            publish_multi_logs: false,
            blacklist: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_entry_starts_events_on_lines_not_opening_with_white_space() {
        let entry = FileConfig::plain("/var/log/app.log", "app", "web-01");
        let MultiLineStart::Pattern(start) = &entry.multi_line_start else {
            panic!("the default is a pattern: {:?}", entry.multi_line_start);
        };
        assert!(start.is_match("GET /"));
        assert!(!start.is_match("  at Service.java:12"));
        assert!(matches!(entry.log_group_name, LogGroupName::Named(ref g) if g == "app"));
    }

    #[test]
    fn retention_values_are_the_cloudwatch_set() {
        assert_eq!(ALLOWED_RETENTION_DAYS.len(), 23);
        assert!(ALLOWED_RETENTION_DAYS.contains(&3653) && !ALLOWED_RETENTION_DAYS.contains(&8));
    }

    #[test]
    fn interval_limits_match_the_stock_schema() {
        assert_eq!(MAX_INTERVAL_SECS, 2 * 24 * 3600);
        assert_eq!(HIGH_RESOLUTION_BELOW_SECS, 60);
        assert_eq!(MAX_DIMENSIONS, 30);
    }

    #[test]
    fn plugin_names_round_trip() {
        for name in super::super::measurements::SUPPORTED_PLUGINS {
            assert_eq!(
                PluginKind::from_name(name).map(PluginKind::name),
                Some(name)
            );
        }
        assert_eq!(PluginKind::from_name("statsd"), None);
    }

    #[test]
    fn only_explicit_http_urls_are_plain() {
        assert!(
            EndpointOverride {
                url: "http://127.0.0.1:4566".into()
            }
            .is_plain_http()
        );
        assert!(
            !EndpointOverride {
                url: "https://logs.vpce".into()
            }
            .is_plain_http()
        );
    }
}
