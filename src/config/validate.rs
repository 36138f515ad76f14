//! Turning the merged JSON into validated [`Config`]: every rule, default and bound of the stock
//! agent's schema and translator that matters on Linux, all errors collected in one pass.
//!
//! Owns the rules (what is an error, what is a warning, what is a default); the raw shapes live
//! in `raw` and the result types in `model`. It reads the outside world only through
//! [`Environment`] and the shared credentials files (for the region), never the network.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use super::charset::{Charset, CharsetError};
use super::common::{CommonConfig, CredentialsSource};
use super::diag::{Collector, Diagnostic, JsonPath};
use super::expand::{self, Environment, Placeholders};
use super::go_regex::GoRegex;
use super::measurements::{self, Unit};
use super::model::*;
use super::profile_files::{self, SharedFiles};
use super::raw::*;
use super::source::SourceDocument;

/// Whether a missing region is an error (`run`) or only a warning (`validate`, which must work
/// on a machine without credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionPolicy {
    /// No region is an error.
    Required,
    /// No region is a warning.
    Optional,
}

/// The outcome of validation: a configuration when there were no errors, and every diagnostic.
#[derive(Debug)]
pub struct Validation {
    /// The validated configuration, present exactly when `errors` is empty.
    pub config: Option<Config>,
    /// Every error found.
    pub errors: Vec<Diagnostic>,
    /// Every warning found.
    pub warnings: Vec<Diagnostic>,
}

const UNSUPPORTED_ENTITY: &str =
    "ignored: entity attributes are only sent from EC2; cwlite sends none";

/// Validates a merged document.
pub fn validate(
    document: SourceDocument,
    common: CommonConfig,
    env: &Environment,
    region_policy: RegionPolicy,
) -> Validation {
    let SourceDocument {
        mut value,
        provenance,
        files,
    } = document;
    let mut diagnostics = Collector::new(provenance);
    expand::expand_env_in_tree(&mut value, &JsonPath::root(), env, &mut diagnostics);
    let root = JsonPath::root();
    let Value::Object(top) = value else {
        diagnostics.error(&root, "the configuration must be a json object");
        return finish(diagnostics, None);
    };
    for key in top.keys() {
        match key.as_str() {
            "agent" | "metrics" | "logs" => {}
            "traces" => diagnostics.warn(
                &root.key(key),
                "ignored: cwlite does not collect traces (no x-ray or otlp receiver)",
            ),
            "opentelemetry" => diagnostics.warn(
                &root.key(key),
                "ignored: cwlite runs no opentelemetry pipeline",
            ),
            other => diagnostics.warn(&root.key(other), "ignored: unknown top-level key"),
        }
    }
    let agent_path = root.key("agent");
    let raw_agent = match top.get("agent") {
        Some(value) => {
            warn_unknown_keys(
                value,
                &agent_path,
                AGENT_KEYS,
                "unknown agent key",
                &mut diagnostics,
            );
            diagnostics
                .decode::<RawAgent>(&agent_path, value)
                .unwrap_or_default()
        }
        None => RawAgent::default(),
    };
    if let Some(Value::Object(agent)) = top.get("agent") {
        warn_agent_extras(agent, &agent_path, &mut diagnostics);
    }
    let agent = validate_agent(&raw_agent, &agent_path, env, &mut diagnostics);
    let region = resolve_region(
        raw_agent.region.as_deref(),
        &agent_path,
        &common,
        env,
        region_policy,
        &mut diagnostics,
    );
    let placeholders =
        Placeholders::on_premises(&env.host, region.as_ref().map(|r| r.name.as_str()));

    let metrics = top.get("metrics").and_then(|value| {
        let path = root.key("metrics");
        reject_unknown_keys(value, &path, METRICS_KEYS, &mut diagnostics);
        let raw = diagnostics.decode::<RawMetrics>(&path, value)?;
        validate_metrics(raw, &path, &agent, &mut diagnostics)
    });
    let logs = top.get("logs").and_then(|value| {
        let path = root.key("logs");
        reject_unknown_keys(value, &path, LOGS_KEYS, &mut diagnostics);
        if let Some(collected) = value.get("logs_collected") {
            let at = path.key("logs_collected");
            reject_unknown_keys(collected, &at, LOGS_COLLECTED_KEYS, &mut diagnostics);
            if let Some(files) = collected.get("files") {
                reject_unknown_keys(files, &at.key("files"), FILES_KEYS, &mut diagnostics);
            }
        }
        let raw = diagnostics.decode::<RawLogs>(&path, value)?;
        validate_logs(raw, &path, env, &placeholders, &agent, &mut diagnostics)
    });
    if top.get("metrics").is_none() && top.get("logs").is_none() {
        diagnostics.warn(
            &root,
            "neither metrics nor logs are configured; cwlite has nothing to do",
        );
    }
    if let CredentialsSource::Profile { file, .. } = &common.credentials {
        warn_about_credentials_file(file, &common, &mut diagnostics);
    }
    let config = Config {
        sources: files,
        common,
        region,
        agent,
        metrics,
        logs,
    };
    finish(diagnostics, Some(config))
}

fn finish(diagnostics: Collector, config: Option<Config>) -> Validation {
    let Collector {
        errors, warnings, ..
    } = diagnostics;
    let config = if errors.is_empty() { config } else { None };
    Validation {
        config,
        errors,
        warnings,
    }
}

/// Errors for keys the stock schema refuses, in serde's wording; the value is then decoded
/// leniently so every other problem of the section is reported in the same pass.
pub(super) fn reject_unknown_keys(
    value: &Value,
    path: &JsonPath,
    known: &[&str],
    diagnostics: &mut Collector,
) {
    if let Value::Object(map) = value {
        let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                diagnostics.error(
                    &path.key(key),
                    format!(
                        "unknown field `{key}`, expected one of {}",
                        expected.join(", ")
                    ),
                );
            }
        }
    }
}

pub(super) fn warn_unknown_keys(
    value: &Value,
    path: &JsonPath,
    known: &[&str],
    what: &str,
    diagnostics: &mut Collector,
) {
    if let Value::Object(map) = value {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                diagnostics.warn(&path.key(key), format!("ignored: {what}"));
            }
        }
    }
}

/// `credentialsDefinition`: only `role_arn` (serde refuses other keys), 20 to 2048 characters.
/// The section's role, else `inherited` (the agent's).
fn role_arn(
    raw: Option<&RawCredentials>,
    inherited: Option<&String>,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<String> {
    match raw {
        Some(raw) => {
            check_length(&raw.role_arn, 20, 2048, &path.key("role_arn"), diagnostics);
            Some(raw.role_arn.clone())
        }
        None => inherited.cloned(),
    }
}

fn warn_agent_extras(
    agent: &serde_json::Map<String, Value>,
    path: &JsonPath,
    diagnostics: &mut Collector,
) {
    let notes: [(&str, &str); 14] = [
        (
            "aws_sdk_log_level",
            "ignored: set RUST_LOG (for example RUST_LOG=aws_smithy_runtime=debug) to see sdk logs",
        ),
        ("user_agent", "ignored: cwlite sends its own user agent"),
        ("internal", "ignored: cwlite has no internal mode"),
        ("service.name", UNSUPPORTED_ENTITY),
        ("deployment.environment", UNSUPPORTED_ENTITY),
        (
            "collection_jitter",
            "ignored: a legacy telegraf setting the stock agent does not use either",
        ),
        (
            "flush_interval",
            "ignored: a legacy telegraf setting; use metrics.force_flush_interval",
        ),
        (
            "flush_jitter",
            "ignored: a legacy telegraf setting; cwlite picks a random publish phase itself",
        ),
        (
            "precision",
            "ignored: a legacy telegraf setting the stock agent does not use either",
        ),
        (
            "quiet",
            "ignored: use agent.debug or RUST_LOG for the log level",
        ),
        (
            "round_interval",
            "ignored: a legacy telegraf setting the stock agent does not use either",
        ),
        (
            "metric_batch_size",
            "ignored: cwlite batches up to the PutMetricData limits",
        ),
        (
            "metric_buffer_limit",
            "ignored: cwlite's metric buffer is bounded in bytes and spooled to disk",
        ),
        (
            "logtarget",
            "ignored: cwlite logs to stderr (journald under systemd)",
        ),
    ];
    for (key, note) in notes {
        if agent.contains_key(key) {
            diagnostics.warn(&path.key(key), note);
        }
    }
}

fn interval(value: Option<i64>, default: u64, path: &JsonPath, diagnostics: &mut Collector) -> u64 {
    match value {
        None => default,
        Some(v) if v >= 1 && v as u64 <= MAX_INTERVAL_SECS => v as u64,
        Some(v) => {
            diagnostics.error(
                path,
                format!("{v} is out of range: an interval is 1 to {MAX_INTERVAL_SECS} seconds"),
            );
            default
        }
    }
}

pub(super) fn check_length(
    text: &str,
    min: usize,
    max: usize,
    path: &JsonPath,
    diagnostics: &mut Collector,
) {
    let len = text.chars().count();
    if len < min || len > max {
        diagnostics.error(
            path,
            format!("length {len} is out of range: must be {min} to {max} characters"),
        );
    }
}

fn validate_agent(
    raw: &RawAgent,
    path: &JsonPath,
    env: &Environment,
    diagnostics: &mut Collector,
) -> AgentConfig {
    let interval_secs = interval(
        raw.metrics_collection_interval,
        DEFAULT_COLLECTION_INTERVAL_SECS,
        &path.key("metrics_collection_interval"),
        diagnostics,
    );
    if let Some(region) = &raw.region {
        check_length(region, 1, 64, &path.key("region"), diagnostics);
    }
    let role_arn = role_arn(
        raw.credentials.as_ref(),
        None,
        &path.key("credentials"),
        diagnostics,
    );
    let hostname = raw
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| env.host.hostname.clone());
    let logfile = match raw.logfile.as_deref() {
        None | Some("") => None,
        Some(file) => {
            check_length(file, 1, 4096, &path.key("logfile"), diagnostics);
            Some(file.into())
        }
    };
    if raw.run_as_user.as_deref().is_some_and(|u| !u.is_empty()) {
        diagnostics.warn(
            &path.key("run_as_user"),
            "honoured only when cwlite starts as root; the systemd unit's User= or DynamicUser= is preferred",
        );
    }
    AgentConfig {
        metrics_collection_interval_secs: interval_secs,
        hostname,
        omit_hostname: raw.omit_hostname.unwrap_or(false),
        debug: raw.debug.unwrap_or(false),
        logfile,
        run_as_user: raw.run_as_user.clone().filter(|u| !u.is_empty()),
        use_dualstack_endpoint: raw.use_dualstack_endpoint.unwrap_or(false),
        role_arn,
    }
}

fn resolve_region(
    agent_region: Option<&str>,
    agent_path: &JsonPath,
    common: &CommonConfig,
    env: &Environment,
    policy: RegionPolicy,
    diagnostics: &mut Collector,
) -> Option<ResolvedRegion> {
    if let Some(region) = agent_region.filter(|r| !r.is_empty()) {
        return Some(ResolvedRegion {
            name: region.to_owned(),
            source: "agent.region".to_owned(),
        });
    }
    let found = region_without_json(common, env);
    if let Err(looked) = &found {
        let message = format!("no region found; looked at agent.region, {looked}");
        match policy {
            RegionPolicy::Required => diagnostics.error(&agent_path.key("region"), message),
            RegionPolicy::Optional => diagnostics.warn(
                &agent_path.key("region"),
                format!("{message}; cwlite run will refuse to start"),
            ),
        }
    }
    found.ok()
}

/// The region from the credentials profile and the environment, as the stock agent finds it
/// before any JSON is read (for `cwlite ctl -c ssm:<name>`).
///
/// # Errors
/// No region: where it looked, for the message.
pub fn region_without_json(
    common: &CommonConfig,
    env: &Environment,
) -> Result<ResolvedRegion, String> {
    let from_env = || {
        env.first_var(&["AWS_REGION", "AWS_DEFAULT_REGION"])
            .map(|r| ResolvedRegion {
                name: r.to_owned(),
                source: "the AWS_REGION environment variable".to_owned(),
            })
    };
    let (found, looked) = match &common.credentials {
        CredentialsSource::Profile { profile, file } => {
            let files = SharedFiles::beside(file);
            let from_profile = profile_files::read_profile(&files, profile)
                .ok()
                .and_then(|p| {
                    p.get("region").map(|r| ResolvedRegion {
                        name: r.to_owned(),
                        source: format!(
                            "profile \"{profile}\" in {} or {}",
                            files.credentials.display(),
                            files.config.display()
                        ),
                    })
                });
            let looked = format!(
                "the region of profile \"{profile}\" in {} and {}, and AWS_REGION",
                files.credentials.display(),
                files.config.display()
            );
            (from_profile.or_else(from_env), looked)
        }
        CredentialsSource::DefaultChain => {
            let profile = env.var("AWS_PROFILE").unwrap_or("default").to_owned();
            let from_files = || {
                profile_files::read_default_profile(env, &profile).and_then(|p| {
                    p.get("region").map(|r| ResolvedRegion {
                        name: r.to_owned(),
                        source: format!("profile \"{profile}\" in ~/.aws/config"),
                    })
                })
            };
            let looked = format!(
                "AWS_REGION, AWS_DEFAULT_REGION and the region of profile \"{profile}\" in ~/.aws/credentials and ~/.aws/config"
            );
            (from_env().or_else(from_files), looked)
        }
    };
    found.ok_or(looked)
}

fn warn_about_credentials_file(
    file: &std::path::Path,
    common: &CommonConfig,
    diagnostics: &mut Collector,
) {
    use std::os::unix::fs::PermissionsExt;
    let at = JsonPath::parse_dotted("credentials.shared_credential_file");
    let mut warn = |message: String| {
        diagnostics.warnings.push(Diagnostic {
            file: common.file.clone(),
            path: at.clone(),
            position: None,
            message,
        });
    };
    match std::fs::metadata(file) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => warn(format!(
            "{} is readable by group or others (mode {:o}); chmod 600 it",
            file.display(),
            meta.permissions().mode() & 0o777
        )),
        Ok(_) => {}
        Err(err) => warn(format!(
            "cannot read {}: {err}; cwlite run will refuse to start",
            file.display()
        )),
    }
}

fn parse_endpoint(
    text: &str,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<EndpointOverride> {
    check_length(text, 4, 2048, path, diagnostics);
    match EndpointOverride::parse(text) {
        Ok(endpoint) => {
            if endpoint.is_plain_http() {
                diagnostics.warn(
                    path,
                    format!("{text} is plain http: requests and signatures travel unencrypted"),
                );
            }
            Some(endpoint)
        }
        Err(message) => {
            diagnostics.error(path, message);
            None
        }
    }
}

fn validate_metrics(
    raw: RawMetrics,
    path: &JsonPath,
    agent: &AgentConfig,
    diagnostics: &mut Collector,
) -> Option<MetricsConfig> {
    let namespace = raw
        .namespace
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    check_length(&namespace, 1, 255, &path.key("namespace"), diagnostics);
    let role_arn = role_arn(
        raw.credentials.as_ref(),
        agent.role_arn.as_ref(),
        &path.key("credentials"),
        diagnostics,
    );
    if raw.service_name.is_some() {
        diagnostics.warn(&path.key("service.name"), UNSUPPORTED_ENTITY);
    }
    if raw.deployment_environment.is_some() {
        diagnostics.warn(&path.key("deployment.environment"), UNSUPPORTED_ENTITY);
    }
    // The stock agent publishes to CloudWatch only when `metrics_destinations` is absent or
    // lists `cloudwatch` (`translator/translate/otel/pipeline/host/translators.go`,
    // `NewTranslators`); with only `amp` it sends these metrics to AMP alone.
    let to_cloudwatch = raw
        .metrics_destinations
        .as_ref()
        .is_none_or(|d| d.contains_key("cloudwatch"));
    if let Some(destinations) = &raw.metrics_destinations {
        let at = path.key("metrics_destinations");
        // The schema: at least one of `cloudwatch` and `amp`, nothing else, and `amp` names its
        // workspace.
        if destinations.is_empty() {
            diagnostics.error(&at, "required: cloudwatch, amp or both");
        }
        reject_unknown_keys(
            &Value::Object(destinations.clone()),
            &at,
            &["cloudwatch", "amp"],
            diagnostics,
        );
        if let Some(amp) = destinations.get("amp") {
            reject_unknown_keys(amp, &at.key("amp"), &["workspace_id"], diagnostics);
            if amp.get("workspace_id").is_none() {
                diagnostics.error(&at.key("amp"), "required: workspace_id");
            }
            diagnostics.warn(
                &at.key("amp"),
                "ignored: cwlite sends metrics to cloudwatch only",
            );
        }
        if !to_cloudwatch {
            diagnostics.warn(
                &path.key("metrics_destinations"),
                "lists no cloudwatch: the stock agent then publishes none of these metrics to CloudWatch, and neither does cwlite, which sends nowhere else; no metric is collected",
            );
        }
    }
    if let Some(dimensions) = &raw.append_dimensions {
        let at = path.key("append_dimensions");
        if dimensions.len() > MAX_DIMENSIONS {
            diagnostics.error(
                &at,
                format!(
                    "{} dimensions, at most {MAX_DIMENSIONS} allowed",
                    dimensions.len()
                ),
            );
        }
        diagnostics.warn(
            &at,
            "ignored: ${aws:…} values need ec2 instance metadata; cwlite keeps the host dimension \
             (the stock agent publishes no metrics at all on premises with this key)",
        );
    }
    let mut aggregation_dimensions: Vec<Vec<String>> = Vec::new();
    if let Some(sets) = raw.aggregation_dimensions {
        let at = path.key("aggregation_dimensions");
        if sets.is_empty() || sets.len() > MAX_AGGREGATION_SETS {
            diagnostics.error(
                &at,
                format!("{} sets, must be 1 to {MAX_AGGREGATION_SETS}", sets.len()),
            );
        }
        for (i, mut set) in sets.clone().into_iter().enumerate() {
            if set.len() > MAX_DIMENSIONS {
                diagnostics.error(
                    &at.index(i),
                    format!("{} dimensions, at most {MAX_DIMENSIONS} allowed", set.len()),
                );
            }
            // The schema's `uniqueItems`, in a set and over sets (in order: [a, b] and [b, a]
            // are two items there, and one set here).
            if let Some(first) = sets[..i].iter().position(|s| *s == set) {
                diagnostics.error(
                    &at.index(i),
                    format!("the same dimension set as aggregation_dimensions[{first}]"),
                );
            }
            for (j, name) in set.iter().enumerate() {
                if set[..j].contains(name) {
                    diagnostics.error(
                        &at.index(i).index(j),
                        format!("\"{name}\" appears twice in this dimension set"),
                    );
                }
            }
            set.sort();
            set.dedup();
            if !aggregation_dimensions.contains(&set) {
                aggregation_dimensions.push(set);
            }
        }
    }
    let force_flush_interval_secs = interval(
        raw.force_flush_interval,
        DEFAULT_METRICS_FORCE_FLUSH_SECS,
        &path.key("force_flush_interval"),
        diagnostics,
    );
    let endpoint_override = raw
        .endpoint_override
        .as_deref()
        .and_then(|e| parse_endpoint(e, &path.key("endpoint_override"), diagnostics));

    let collected_path = path.key("metrics_collected");
    let Some(collected) = raw.metrics_collected else {
        diagnostics.error(&collected_path, "required: name at least one plugin");
        return None;
    };
    if collected.is_empty() {
        diagnostics.error(&collected_path, "required: name at least one plugin");
    }
    let mut plugins = Vec::new();
    let mut statsd = None;
    let mut collectd = None;
    for (name, value) in &collected {
        let at = collected_path.key(name);
        if name == "procstat" {
            plugins.extend(validate_procstat(value, &at, agent, diagnostics));
        } else if name == "statsd" {
            statsd = validate_statsd(value, &at, diagnostics);
        } else if name == "collectd" {
            collectd = validate_collectd(value, &at, diagnostics);
        } else if let Some(kind) = PluginKind::from_name(name) {
            if let Some(plugin) = validate_plugin(kind, value, &at, agent, diagnostics) {
                plugins.push(plugin);
            }
        } else if let Some((_, instead)) = measurements::UNSUPPORTED_PLUGINS
            .iter()
            .find(|(p, _)| p == name)
        {
            check_unsupported_plugin_shape(name, value, &at, diagnostics);
            diagnostics.warn(
                &at,
                format!("ignored: cwlite does not support the {name} plugin; {instead}"),
            );
        } else if value.get("measurement").is_none() {
            // The schema's `additionalProperties: basicMetricDefinition`, which requires it.
            diagnostics.error(
                &at,
                "a plugin the stock agent does not know needs a measurement list (its schema refuses it without one)",
            );
        } else {
            diagnostics.warn(
                &at,
                "ignored: unknown plugin (the stock agent ignores it too on linux)",
            );
        }
    }
    to_cloudwatch.then_some(MetricsConfig {
        namespace,
        plugins,
        statsd,
        collectd,
        aggregation_dimensions,
        force_flush_interval_secs,
        endpoint_override,
        role_arn,
    })
}

/// The stock schema's shape of the plugins cwlite does not run (`translator/config/schema.json`,
/// `statsdDefinitions`, `collectdDefinitions`, `ethtoolDefinitions`, `procstatDefinitions`,
/// `efaDefinitions`, `prometheusDefinitions`): what it refuses, cwlite refuses too, so that a
/// configuration checked by `cwlite validate` also starts the stock agent.
fn check_unsupported_plugin_shape(
    name: &str,
    value: &Value,
    path: &JsonPath,
    diagnostics: &mut Collector,
) {
    const ETHTOOL: &[&str] = &[
        "interface_include",
        "interface_exclude",
        "metrics_include",
        "append_dimensions",
        "drop_original_metrics",
    ];
    let needs_measurement = |item: &Value, at: &JsonPath, diagnostics: &mut Collector| {
        if item.get("measurement").is_none() {
            diagnostics.error(at, "required: a measurement list");
        }
    };
    match name {
        "ethtool" => reject_unknown_keys(value, path, ETHTOOL, diagnostics),
        "prometheus" => {
            reject_unknown_keys(value, path, &["prometheus_config_path"], diagnostics);
            if value.get("prometheus_config_path").is_none() {
                diagnostics.error(path, "required: prometheus_config_path");
            }
        }
        "efa" => needs_measurement(value, path, diagnostics),
        _ => {}
    }
}

/// `host:port`, `:port` (every interface) or `[v6]:port`, as Go's `net.ListenUDP` takes it.
pub(super) fn is_host_port(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let host_ok = host.is_empty()
        || (host.starts_with('[') && host.ends_with(']'))
        || !host.contains([':', '/', ' ']);
    host_ok && port.parse::<u16>().is_ok()
}

/// A listener's `service_address`: 1 to 255 characters, `host:port` or `:port`, and with
/// `udp` (collectd's form) also `udp://` in front.
fn service_address(
    raw: Option<String>,
    default: &str,
    udp: bool,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> String {
    let address = raw.unwrap_or_else(|| default.to_owned());
    let at = path.key("service_address");
    check_length(&address, 1, 255, &at, diagnostics);
    let bare = match address.strip_prefix("udp://") {
        Some(bare) if udp => bare,
        _ => &address,
    };
    if bare.contains("://") || !is_host_port(bare) {
        let forms = if udp {
            "udp://host:port, host:port or :port"
        } else {
            "host:port or :port"
        };
        diagnostics.error(&at, format!("\"{address}\" is not {forms}"));
    }
    address
}

/// A listener's `metrics_aggregation_interval`: the stock default of 60 s; 0 turns the
/// aggregation off (`None`).
fn aggregation_interval(
    raw: Option<i64>,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<u64> {
    match raw {
        Some(0) => None,
        other => Some(interval(
            other,
            DEFAULT_AGGREGATION_SECS,
            &path.key("metrics_aggregation_interval"),
            diagnostics,
        )),
    }
}

/// The keys a listener accepts and ignores, said.
fn warn_listener_extras(
    input: &str,
    drop_original_metrics: Option<&Vec<String>>,
    value: &Value,
    path: &JsonPath,
    diagnostics: &mut Collector,
) {
    if drop_original_metrics.is_some() {
        // `GetDropOriginalMetrics` skips a plugin without a measurement list.
        diagnostics.warn(
            &path.key("drop_original_metrics"),
            format!("ignored: the stock agent ignores it for {input} too (it applies only to plugins with a measurement list)"),
        );
    }
    for key in ["service.name", "deployment.environment"] {
        if value.get(key).is_some() {
            diagnostics.warn(&path.key(key), UNSUPPORTED_ENTITY);
        }
    }
}

/// `statsd` (`statsdDefinitions`, strict): the listener's settings with the stock defaults.
fn validate_statsd(
    value: &Value,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<StatsdConfig> {
    const KEYS: &[&str] = &[
        "allowed_pending_messages",
        "service_address",
        "metrics_collection_interval",
        "metrics_aggregation_interval",
        "metric_separator",
        "drop_original_metrics",
        "service.name",
        "deployment.environment",
    ];
    reject_unknown_keys(value, path, KEYS, diagnostics);
    let raw: RawStatsd = diagnostics.decode(path, value)?;
    let service_address = service_address(
        raw.service_address,
        DEFAULT_STATSD_ADDRESS,
        false,
        path,
        diagnostics,
    );
    let collection_interval_secs = interval(
        raw.metrics_collection_interval,
        DEFAULT_STATSD_COLLECTION_SECS,
        &path.key("metrics_collection_interval"),
        diagnostics,
    );
    let aggregation_interval_secs =
        aggregation_interval(raw.metrics_aggregation_interval, path, diagnostics);
    let metric_separator = raw.metric_separator.unwrap_or_else(|| "_".to_owned());
    check_length(
        &metric_separator,
        1,
        255,
        &path.key("metric_separator"),
        diagnostics,
    );
    let allowed_pending_messages = match raw.allowed_pending_messages {
        None => DEFAULT_STATSD_PENDING,
        Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => n as usize,
        Some(n) => {
            diagnostics.error(
                &path.key("allowed_pending_messages"),
                format!("{n} is out of range: must be 1 to {}", i32::MAX),
            );
            DEFAULT_STATSD_PENDING
        }
    };
    warn_listener_extras(
        "statsd",
        raw.drop_original_metrics.as_ref(),
        value,
        path,
        diagnostics,
    );
    Some(StatsdConfig {
        service_address,
        collection_interval_secs,
        aggregation_interval_secs,
        metric_separator,
        allowed_pending_messages,
    })
}

/// `collectd` (`collectdDefinitions`, strict): the listener's settings with the stock
/// defaults (the translator's: security level `encrypt`). A `types.db` that cannot be read is
/// an error, as it stops the stock agent.
fn validate_collectd(
    value: &Value,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<CollectdConfig> {
    const KEYS: &[&str] = &[
        "service_address",
        "name_prefix",
        "collectd_auth_file",
        "collectd_security_level",
        "collectd_typesdb",
        "metrics_aggregation_interval",
        "drop_original_metrics",
        "service.name",
        "deployment.environment",
        "append_dimensions",
    ];
    reject_unknown_keys(value, path, KEYS, diagnostics);
    let raw: RawCollectd = diagnostics.decode(path, value)?;
    let service_address = service_address(
        raw.service_address,
        DEFAULT_COLLECTD_ADDRESS,
        true,
        path,
        diagnostics,
    );
    let name_prefix = raw.name_prefix.unwrap_or_else(|| "collectd_".to_owned());
    check_length(&name_prefix, 1, 255, &path.key("name_prefix"), diagnostics);
    let security_level = match raw.collectd_security_level.as_deref() {
        None | Some("encrypt") => CollectdSecurity::Encrypt,
        Some("sign") => CollectdSecurity::Sign,
        Some("none") => CollectdSecurity::None,
        Some(other) => {
            diagnostics.error(
                &path.key("collectd_security_level"),
                format!("\"{other}\" is not none, sign or encrypt"),
            );
            CollectdSecurity::Encrypt
        }
    };
    let auth_file = PathBuf::from(
        raw.collectd_auth_file
            .unwrap_or_else(|| DEFAULT_COLLECTD_AUTH_FILE.to_owned()),
    );
    if security_level != CollectdSecurity::None && std::fs::metadata(&auth_file).is_err() {
        diagnostics.warn(
            &path.key("collectd_auth_file"),
            format!(
                "{} cannot be read: every signed or encrypted packet will be dropped until it can",
                auth_file.display()
            ),
        );
    }
    let typesdb: Vec<PathBuf> = raw
        .collectd_typesdb
        .unwrap_or_else(|| vec![DEFAULT_COLLECTD_TYPESDB.to_owned()])
        .into_iter()
        .map(PathBuf::from)
        .collect();
    if typesdb.len() > 10 {
        diagnostics.error(
            &path.key("collectd_typesdb"),
            format!("{} files, at most 10", typesdb.len()),
        );
    }
    for (i, file) in typesdb.iter().enumerate() {
        if let Err(err) = std::fs::File::open(file) {
            diagnostics.error(
                &path.key("collectd_typesdb").index(i),
                format!(
                    "cannot read {}: {err} (the stock agent does not start either; install collectd's types.db, e.g. the collectd-core package)",
                    file.display()
                ),
            );
        }
    }
    let aggregation_interval_secs =
        aggregation_interval(raw.metrics_aggregation_interval, path, diagnostics);
    warn_listener_extras(
        "collectd",
        raw.drop_original_metrics.as_ref(),
        value,
        path,
        diagnostics,
    );
    let append_dimensions = raw
        .append_dimensions
        .map(|d| plugin_dimensions(d, &path.key("append_dimensions"), diagnostics))
        .unwrap_or_default();
    Some(CollectdConfig {
        service_address,
        name_prefix,
        auth_file,
        security_level,
        typesdb,
        aggregation_interval_secs,
        append_dimensions,
    })
}

/// `procstat`: a list of 1 to 255 entries (the stock schema's `procstatDefinitions`), each a
/// plugin of its own that finds its processes by `pid_file`, `exe` or `pattern`.
fn validate_procstat(
    value: &Value,
    path: &JsonPath,
    agent: &AgentConfig,
    diagnostics: &mut Collector,
) -> Vec<PluginConfig> {
    let entries = match value {
        Value::Array(entries) if (1..=255).contains(&entries.len()) => entries,
        Value::Array(entries) => {
            diagnostics.error(path, format!("{} entries, must be 1 to 255", entries.len()));
            return Vec::new();
        }
        _ => {
            diagnostics.error(path, "must be a list of process entries");
            return Vec::new();
        }
    };
    let mut plugins = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = path.index(i);
        if entry.get("measurement").is_none() {
            // The schema's basicMetricDefinition.
            diagnostics.error(&at, "required: a measurement list");
            continue;
        }
        if let Some(plugin) = validate_plugin(PluginKind::Procstat, entry, &at, agent, diagnostics)
        {
            plugins.push(plugin);
        }
    }
    plugins
}

/// The finder of a `procstat` entry. The schema asks for one of the three; with several,
/// telegraf's `findPids` takes the first of `pid_file`, `exe`, `pattern` and so does cwlite,
/// with a warning.
fn process_finder(
    raw: &RawPlugin,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<ProcessFinder> {
    let given: Vec<&str> = [
        ("pid_file", &raw.pid_file),
        ("exe", &raw.exe),
        ("pattern", &raw.pattern),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_some())
    .map(|(k, _)| k)
    .collect();
    if given.len() > 1 {
        diagnostics.warn(
            &path.key(given[1]),
            format!(
                "ignored: {} is used (the stock agent uses only one of them too)",
                given[0]
            ),
        );
    }
    for (key, value) in [
        ("pid_file", &raw.pid_file),
        ("exe", &raw.exe),
        ("pattern", &raw.pattern),
    ] {
        if let Some(value) = value {
            check_length(value, 1, 255, &path.key(key), diagnostics);
        }
    }
    let regex = |key: &str, text: &str, diagnostics: &mut Collector| match GoRegex::new(text) {
        Ok(regex) => Some(regex),
        Err(err) => {
            diagnostics.error(&path.key(key), err);
            None
        }
    };
    if let Some(pid_file) = &raw.pid_file {
        Some(ProcessFinder::PidFile(pid_file.into()))
    } else if let Some(exe) = &raw.exe {
        regex("exe", exe, diagnostics).map(ProcessFinder::Exe)
    } else if let Some(pattern) = &raw.pattern {
        regex("pattern", pattern, diagnostics).map(ProcessFinder::Pattern)
    } else {
        diagnostics.error(path, "required: one of pid_file, exe or pattern");
        None
    }
}

fn validate_plugin(
    kind: PluginKind,
    value: &Value,
    path: &JsonPath,
    agent: &AgentConfig,
    diagnostics: &mut Collector,
) -> Option<PluginConfig> {
    let name = kind.name();
    warn_unknown_keys(
        value,
        path,
        PLUGIN_KEYS,
        &format!("unknown key for {name}"),
        diagnostics,
    );
    // The stock schema lets a measurement object carry keys of its own (issue 19): ignored,
    // and said, where they were refused.
    if let Some(Value::Array(items)) = value.get("measurement") {
        for (i, item) in items.iter().enumerate() {
            warn_unknown_keys(
                item,
                &path.key("measurement").index(i),
                MEASUREMENT_KEYS,
                "unknown key in a measurement (the stock agent ignores it too)",
                diagnostics,
            );
        }
    }
    let raw: RawPlugin = diagnostics.decode(path, value)?;
    let wrong_plugin = |key: &str, present: bool, diagnostics: &mut Collector| {
        if present {
            diagnostics.warn(
                &path.key(key),
                format!("ignored: {key} does not apply to {name}"),
            );
        }
    };
    if kind != PluginKind::Cpu {
        wrong_plugin("totalcpu", raw.totalcpu.is_some(), diagnostics);
    }
    if kind != PluginKind::Disk {
        wrong_plugin(
            "ignore_file_system_types",
            raw.ignore_file_system_types.is_some(),
            diagnostics,
        );
        wrong_plugin("drop_device", raw.drop_device.is_some(), diagnostics);
    }
    if matches!(
        kind,
        PluginKind::Mem
            | PluginKind::Swap
            | PluginKind::Netstat
            | PluginKind::Processes
            | PluginKind::Procstat
    ) {
        wrong_plugin("resources", raw.resources.is_some(), diagnostics);
    }
    if kind != PluginKind::Procstat {
        wrong_plugin("pid_file", raw.pid_file.is_some(), diagnostics);
        wrong_plugin("exe", raw.exe.is_some(), diagnostics);
        wrong_plugin("pattern", raw.pattern.is_some(), diagnostics);
    } else {
        // `metricsMeasurementWithoutDecorationDefinition`: names only.
        for (i, item) in raw.measurement.iter().enumerate() {
            if matches!(item, RawMeasurement::Object(_)) {
                diagnostics.error(
                    &path.key("measurement").index(i),
                    "procstat measurements are names only (no rename or unit)",
                );
            }
        }
        // The reference, §1.3: the stock translator does not apply it to procstat.
        wrong_plugin(
            "drop_original_metrics",
            raw.drop_original_metrics.is_some(),
            diagnostics,
        );
    }

    let mut measurements: Vec<Measurement> = Vec::new();
    for (i, item) in raw.measurement.iter().enumerate() {
        let at = path.key("measurement").index(i);
        // The schema's `uniqueItems`.
        if let Some(first) = raw.measurement[..i].iter().position(|m| m == item) {
            diagnostics.error(
                &at,
                format!("the same measurement as measurement[{first}]: each is listed once"),
            );
            continue;
        }
        let (configured, rename, unit) = match item {
            RawMeasurement::Name(n) => (n.as_str(), None, None),
            RawMeasurement::Object(o) => (o.name.as_str(), o.rename.as_deref(), o.unit.as_deref()),
        };
        if kind == PluginKind::Diskio && measurements::is_ec2_nvme_diskio(configured) {
            diagnostics.warn(
                &at,
                format!("ignored: \"{configured}\" is an EC2 NVMe driver metric (EBS or instance store), which only EC2 instances have"),
            );
            continue;
        }
        let Some((field, default_unit)) = measurements::lookup(name, configured) else {
            diagnostics.error(
                &at,
                format!("unknown measurement \"{configured}\" for {name}"),
            );
            continue;
        };
        let unit = match unit {
            None => default_unit,
            Some(text) => measurements::parse_unit(text).unwrap_or_else(|| {
                diagnostics.warn(
                    &at.key("unit"),
                    format!("unknown unit \"{text}\"; sent as None, as the stock agent does"),
                );
                Unit::None
            }),
        };
        let metric_name = match rename {
            Some(r) if !r.trim().is_empty() => {
                check_length(r, 1, 255, &at.key("rename"), diagnostics);
                if !r.is_ascii() {
                    diagnostics.error(
                        &at.key("rename"),
                        format!("\"{r}\": CloudWatch metric names are ASCII only"),
                    );
                }
                r.to_owned()
            }
            _ if kind == PluginKind::Procstat && field == "pid_count" => {
                "procstat_lookup_pid_count".to_owned()
            }
            _ => format!("{name}_{field}"),
        };
        if measurements.iter().all(|m| m.metric_name != metric_name) {
            measurements.push(Measurement {
                field,
                metric_name,
                unit: unit.as_str(),
            });
        }
    }
    if raw.measurement.is_empty() {
        diagnostics.warn(
            &path.key("measurement"),
            format!("no measurement listed; the {name} plugin is not collected"),
        );
        return None;
    }
    // Every one listed was ignored (EC2-only) or refused (an error already says which).
    if measurements.is_empty() {
        return None;
    }

    let mut finder = match kind {
        PluginKind::Procstat => Some(process_finder(&raw, path, diagnostics)?),
        _ => None,
    };
    let interval_secs = interval(
        raw.metrics_collection_interval,
        agent.metrics_collection_interval_secs,
        &path.key("metrics_collection_interval"),
        diagnostics,
    );
    let append_dimensions = raw
        .append_dimensions
        .map(|d| plugin_dimensions(d, &path.key("append_dimensions"), diagnostics))
        .unwrap_or_default();
    let resources = |diagnostics: &mut Collector, globs: bool| -> Resources {
        match &raw.resources {
            None => Resources::All,
            // An empty list filters nothing in telegraf: it means every instance.
            Some(list) if list.is_empty() || list.iter().any(|r| r == "*") => Resources::All,
            Some(list) => {
                if globs {
                    for (i, pattern) in list.iter().enumerate() {
                        if let Err(err) = globset::Glob::new(pattern) {
                            diagnostics.error(
                                &path.key("resources").index(i),
                                format!("invalid glob: {}", err.kind()),
                            );
                        }
                    }
                }
                Resources::Only(list.clone())
            }
        }
    };
    let options = match kind {
        PluginKind::Procstat => PluginOptions::Procstat {
            finder: finder.take()?,
        },
        PluginKind::Cpu => {
            let per_cpu = match raw.resources.as_deref() {
                None | Some([]) => false,
                Some([only]) if only == "*" => true,
                Some(_) => {
                    diagnostics.error(
                        &path.key("resources"),
                        "cpu accepts only [\"*\"] (per-core metrics)",
                    );
                    false
                }
            };
            PluginOptions::Cpu {
                per_cpu,
                total_cpu: raw.totalcpu.unwrap_or(true),
            }
        }
        PluginKind::Disk => PluginOptions::Disk {
            mount_points: resources(diagnostics, false),
            ignore_file_system_types: raw.ignore_file_system_types.clone().unwrap_or_default(),
            drop_device: raw.drop_device.unwrap_or(false),
        },
        PluginKind::Diskio => PluginOptions::Diskio {
            devices: resources(diagnostics, true),
        },
        PluginKind::Net => PluginOptions::Net {
            interfaces: resources(diagnostics, true),
        },
        _ => PluginOptions::None,
    };
    let drop_original_metrics = dropped_originals(
        name,
        &raw.measurement,
        raw.drop_original_metrics.as_deref().unwrap_or_default(),
        &measurements,
        &path.key("drop_original_metrics"),
        diagnostics,
    );
    Some(PluginConfig {
        kind,
        measurements,
        interval_secs,
        high_resolution: interval_secs < HIGH_RESOLUTION_BELOW_SECS,
        append_dimensions,
        drop_original_metrics,
        options,
    })
}

/// The metric names whose original series `drop_original_metrics` drops, read as the stock
/// agent reads it (`translator/translate/otel/common/metrics.go`, `GetDropOriginalMetrics`;
/// the exporter then skips a datum whose final name is in the set, roll-ups kept):
/// - an entry not containing the plugin's name gets it as a prefix (`time_active` is
///   `cpu_time_active`);
/// - `"*"` is every measurement listed;
/// - an entry containing the prefixed name of a measurement given as an object drops that
///   measurement's final name (its `rename` if it has one); the test is the stock agent's
///   substring test, so `cpu_usage_guest_nice` also matches an object `usage_guest`;
/// - any other entry is the name itself: a `rename` drops only if it contains the plugin's
///   name (`CPU_IDLE` is read as `cpu_CPU_IDLE`, which matches nothing, and is warned about).
fn dropped_originals(
    plugin: &str,
    listed: &[RawMeasurement],
    entries: &[String],
    measurements: &[Measurement],
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Vec<String> {
    let decorate = |name: &str| {
        if name.contains(plugin) {
            name.to_owned()
        } else {
            format!("{plugin}_{name}")
        }
    };
    let mut dropped: Vec<String> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let wildcard = entry == "*";
        let entry = if wildcard {
            entry.clone()
        } else {
            decorate(entry)
        };
        let mut matched = false;
        for measurement in listed {
            let name = match measurement {
                RawMeasurement::Object(object) => {
                    let name = decorate(&object.name);
                    if !(wildcard || entry.contains(&name)) {
                        continue;
                    }
                    matched = true;
                    match &object.rename {
                        Some(rename) => rename.clone(),
                        None => name,
                    }
                }
                RawMeasurement::Name(name) if wildcard => decorate(name),
                RawMeasurement::Name(_) => continue,
            };
            dropped.push(name);
        }
        if !matched && !wildcard {
            if measurements.iter().all(|m| m.metric_name != entry) {
                diagnostics.warn(
                    &path.index(i),
                    format!(
                        "matches no measurement listed: read as \"{entry}\", as the stock agent reads it"
                    ),
                );
            }
            dropped.push(entry);
        }
    }
    dropped.sort();
    dropped.dedup();
    dropped
}

/// Per-plugin static dimensions, with `${aws:…}` resolved the stock on-premises way.
fn plugin_dimensions(
    raw: BTreeMap<String, String>,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> BTreeMap<String, String> {
    if raw.len() > MAX_DIMENSIONS {
        diagnostics.error(
            path,
            format!("{} dimensions, at most {MAX_DIMENSIONS} allowed", raw.len()),
        );
    }
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let at = path.key(&key);
        if key == "aws:StorageResolution" || key == "aws:AggregationInterval" {
            diagnostics.warn(&at, "ignored: a reserved key the stock agent strips too");
            continue;
        }
        let resolved = match value.as_str() {
            "${aws:InstanceId}" => Some(expand::UNKNOWN_INSTANCE_ID),
            "${aws:InstanceType}" => Some("UNKNOWN-TYPE"),
            "${aws:ImageId}" => Some("UNKNOWN-AMI"),
            v if v.starts_with("${aws:") => {
                diagnostics.warn(
                    &at,
                    format!(
                        "dropped: {v} cannot be resolved on premises (the stock agent drops it too)"
                    ),
                );
                continue;
            }
            _ => None,
        };
        if value.is_empty() {
            diagnostics.error(&at, "empty: a dimension value is 1 to 1024 characters");
            continue;
        }
        // CloudWatch refuses the whole request for one bad dimension, so catch it here.
        if key.len() > 255 || !key.is_ascii() || key.trim().is_empty() || key.starts_with(':') {
            diagnostics.error(
                &at,
                "a dimension name must be 1 to 255 ASCII characters, not blank, not starting with ':'",
            );
            continue;
        }
        if value.chars().count() > 1024 || value.trim().is_empty() {
            diagnostics.error(
                &at,
                "a dimension value must be 1 to 1024 characters and not blank",
            );
            continue;
        }
        out.insert(key, resolved.map_or(value, str::to_owned));
    }
    out
}

fn validate_logs(
    raw: RawLogs,
    path: &JsonPath,
    env: &Environment,
    placeholders: &Placeholders,
    agent: &AgentConfig,
    diagnostics: &mut Collector,
) -> Option<LogsConfig> {
    let role_arn = role_arn(
        raw.credentials.as_ref(),
        agent.role_arn.as_ref(),
        &path.key("credentials"),
        diagnostics,
    );
    if raw.service_name.is_some() {
        diagnostics.warn(&path.key("service.name"), UNSUPPORTED_ENTITY);
    }
    if raw.deployment_environment.is_some() {
        diagnostics.warn(&path.key("deployment.environment"), UNSUPPORTED_ENTITY);
    }
    let force_flush_interval_secs = interval(
        raw.force_flush_interval,
        DEFAULT_LOGS_FORCE_FLUSH_SECS,
        &path.key("force_flush_interval"),
        diagnostics,
    );
    let endpoint_override = raw
        .endpoint_override
        .as_deref()
        .and_then(|e| parse_endpoint(e, &path.key("endpoint_override"), diagnostics));
    let concurrency = match raw.concurrency {
        None => DEFAULT_LOGS_CONCURRENCY,
        Some(n) if n < 1 => {
            diagnostics.error(
                &path.key("concurrency"),
                format!("{n} is out of range: must be 1 or more"),
            );
            DEFAULT_LOGS_CONCURRENCY
        }
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
    };
    // `plugins/outputs/cloudwatchlogs/cloudwatchlogs.go`, `getDest`: above 1 the stock agent
    // makes one pool of that many senders for all streams; unset and 1 send one request at
    // a time per stream, with no bound over streams (cwlite keeps its own bound then).
    let requests_in_flight = match raw.concurrency {
        Some(n) if n > 1 => concurrency,
        _ => DEFAULT_LOGS_REQUESTS_IN_FLIGHT,
    };
    let default_stream = match &raw.log_stream_name {
        Some(name) => {
            check_length(
                name,
                1,
                MAX_LOG_NAME_LEN,
                &path.key("log_stream_name"),
                diagnostics,
            );
            name.clone()
        }
        // On premises the stock translator writes the OS hostname here.
        None => env.host.hostname.clone(),
    };

    let mut emf = None;
    if let Some(collected) = &raw.metrics_collected {
        for (key, value) in collected {
            let at = path.key("metrics_collected").key(key);
            if key == "emf" {
                emf = super::journald::validate_emf(value, &at, &default_stream, diagnostics);
            } else {
                diagnostics.warn(&at, format!("ignored: cwlite does not collect {key}"));
            }
        }
    }
    let mut journald = Vec::new();
    let mut files = Vec::new();
    let collected_path = path.key("logs_collected");
    // The schema's `anyOf` of the two, and `minProperties: 1`.
    if raw.logs_collected.is_none() && raw.metrics_collected.is_none() {
        diagnostics.error(path, "required: logs_collected or metrics_collected");
    }
    if let Some(collected) = raw.logs_collected {
        if collected.files.is_none()
            && collected.journald.is_none()
            && collected.windows_events.is_none()
            && collected.application_signals.is_none()
        {
            diagnostics.error(&collected_path, "required: name at least one section");
        }
        if let Some(section) = &collected.journald {
            journald = super::journald::validate_journald(
                section,
                &collected_path.key("journald"),
                &env.host.hostname,
                placeholders,
                diagnostics,
            );
        }
        if collected.windows_events.is_some() {
            diagnostics.warn(
                &collected_path.key("windows_events"),
                "ignored: windows event logs do not exist on linux",
            );
        }
        if collected.application_signals.is_some() {
            diagnostics.warn(
                &collected_path.key("application_signals"),
                "ignored: cwlite does not receive Application Signals telemetry",
            );
        }
        if let Some(list) = collected.files.map(|f| f.collect_list) {
            let list_path = collected_path.key("files").key("collect_list");
            if list.is_empty() || list.len() > MAX_COLLECT_LIST {
                diagnostics.error(
                    &list_path,
                    format!("{} entries, must be 1 to {MAX_COLLECT_LIST}", list.len()),
                );
            }
            for (i, entry) in list.iter().enumerate() {
                let at = list_path.index(i);
                // The schema's `uniqueItems`, checked after merging (`translatorutil.go`,
                // `checkSchema`); merging drops an entry another file already has.
                if let Some(first) = list[..i].iter().position(|earlier| earlier == entry) {
                    diagnostics.error(
                        &at,
                        format!(
                            "the same entry as collect_list[{first}]: the stock agent refuses duplicates too (remove one)"
                        ),
                    );
                    continue;
                }
                reject_unknown_keys(entry, &at, FILE_ENTRY_KEYS, diagnostics);
                if let Some(Value::Array(filters)) = entry.get("filters") {
                    for (j, filter) in filters.iter().enumerate() {
                        reject_unknown_keys(
                            filter,
                            &at.key("filters").index(j),
                            FILTER_KEYS,
                            diagnostics,
                        );
                    }
                }
                let Some(raw_entry) = diagnostics.decode::<RawFileEntry>(&at, entry) else {
                    continue;
                };
                if let Some(file) =
                    validate_file(raw_entry, &at, &default_stream, placeholders, diagnostics)
                {
                    files.push((at, file));
                }
            }
        }
    }
    check_group_consistency(&files, diagnostics);
    if files.is_empty() && journald.is_empty() && emf.is_none() {
        diagnostics.warn(
            path,
            "no log file, journal entry or emf listener is configured: nothing is sent to CloudWatch Logs",
        );
    }
    Some(LogsConfig {
        files: files.into_iter().map(|(_, f)| f).collect(),
        journald,
        emf,
        force_flush_interval_secs,
        endpoint_override,
        role_arn,
        concurrency,
        requests_in_flight,
    })
}

/// The stock translator refuses one group (compared case-insensitively) with two retentions or two classes.
fn check_group_consistency(files: &[(JsonPath, FileConfig)], diagnostics: &mut Collector) {
    let mut retention: HashMap<String, (u32, &JsonPath)> = HashMap::new();
    let mut class: HashMap<String, (LogGroupClass, &JsonPath)> = HashMap::new();
    for (at, file) in files {
        let LogGroupName::Named(group) = &file.log_group_name else {
            continue;
        };
        let key = group.to_lowercase();
        if let Some(days) = file.retention_in_days {
            match retention.get(&key) {
                Some((other, first)) if *other != days => diagnostics.error(
                    &at.key("retention_in_days"),
                    format!("log group \"{group}\" is given retention {days} here and {other} at {first}"),
                ),
                Some(_) => {}
                None => {
                    retention.insert(key.clone(), (days, at));
                }
            }
        }
        if let Some(c) = file.log_group_class {
            match class.get(&key) {
                Some((other, first)) if *other != c => diagnostics.error(
                    &at.key("log_group_class"),
                    format!(
                        "log group \"{group}\" is given class {c:?} here and {other:?} at {first}"
                    ),
                ),
                Some(_) => {}
                None => {
                    class.insert(key, (c, at));
                }
            }
        }
    }
}

/// `log_group_class`: a class, or a warning and none (the stock agent ignores others too).
pub(super) fn group_class(
    raw: Option<&str>,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<LogGroupClass> {
    raw.and_then(|c| match c.to_ascii_uppercase().as_str() {
        "STANDARD" => Some(LogGroupClass::Standard),
        "INFREQUENT_ACCESS" => Some(LogGroupClass::InfrequentAccess),
        _ => {
            diagnostics.warn(
                &path.key("log_group_class"),
                format!("ignored: \"{c}\" is neither STANDARD nor INFREQUENT_ACCESS"),
            );
            None
        }
    })
}

/// `retention_in_days`: one of CloudWatch's values; -1 (or none) leaves the group as it is.
pub(super) fn retention(
    raw: Option<i64>,
    path: &JsonPath,
    diagnostics: &mut Collector,
) -> Option<u32> {
    match raw {
        None | Some(-1) => None,
        Some(days) if ALLOWED_RETENTION_DAYS.contains(&days) => Some(days as u32),
        Some(days) => {
            diagnostics.error(
                &path.key("retention_in_days"),
                format!("{days} is not an allowed retention: one of -1, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
            );
            None
        }
    }
}

/// `filters`: each `{type, expression}` decoded and compiled, every error said.
pub(super) fn filters(raw: &[Value], path: &JsonPath, diagnostics: &mut Collector) -> Vec<Filter> {
    let mut filters = Vec::new();
    for (i, filter) in raw.iter().enumerate() {
        let at = path.key("filters").index(i);
        let Some(filter) = diagnostics.decode::<RawFilter>(&at, filter) else {
            continue;
        };
        let kind = match filter.kind.as_str() {
            "include" => FilterKind::Include,
            "exclude" => FilterKind::Exclude,
            other => {
                diagnostics.error(
                    &at.key("type"),
                    format!("\"{other}\" is neither include nor exclude"),
                );
                continue;
            }
        };
        match GoRegex::new(&filter.expression) {
            Ok(expression) => filters.push(Filter { kind, expression }),
            Err(err) => diagnostics.error(&at.key("expression"), err),
        }
    }
    filters
}

/// CloudWatch log group names: 1 to 512 of `[.-_/#A-Za-z0-9]`.
pub fn is_valid_log_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LOG_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
}

/// CloudWatch log stream names: 1 to 512 characters, no `:` or `*`.
pub fn is_valid_log_stream_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_LOG_NAME_LEN && !name.contains([':', '*'])
}

fn validate_file(
    raw: RawFileEntry,
    path: &JsonPath,
    default_stream: &str,
    placeholders: &Placeholders,
    diagnostics: &mut Collector,
) -> Option<FileConfig> {
    let file_at = path.key("file_path");
    if raw.file_path.is_empty() {
        diagnostics.error(&file_at, "must not be empty");
    } else if raw.file_path.len() > 4096 {
        diagnostics.error(&file_at, "longer than 4096 characters");
    } else if let Err(err) = super::file_glob::compile(&raw.file_path) {
        diagnostics.error(&file_at, format!("invalid glob: {}", err.kind()));
    } else if let Some(literal) = super::file_glob::literal_braces(&raw.file_path) {
        diagnostics.warn(
            &file_at,
            format!("matches nothing: \"{literal}\" comes before the first component with * ? or [, where braces are read literally (by the stock agent too); put a * in an earlier component or list one entry per directory"),
        );
    }
    // The schema's `minLength: 1` (cwlite read an empty value as unset before issue 19).
    for (key, value) in [
        ("log_group_name", &raw.log_group_name),
        ("log_stream_name", &raw.log_stream_name),
        ("log_group_class", &raw.log_group_class),
        ("multi_line_start_pattern", &raw.multi_line_start_pattern),
        ("timestamp_format", &raw.timestamp_format),
        ("encoding", &raw.encoding),
        ("blacklist", &raw.blacklist),
    ] {
        if value.as_deref() == Some("") {
            diagnostics.error(&path.key(key), "empty: leave the key out instead");
        }
    }
    for (key, present) in [
        ("service.name", raw.service_name.is_some()),
        (
            "deployment.environment",
            raw.deployment_environment.is_some(),
        ),
    ] {
        if present {
            diagnostics.warn(&path.key(key), UNSUPPORTED_ENTITY);
        }
    }
    let publish_multi_logs = raw.publish_multi_logs.unwrap_or(false);
    let log_group_name = match raw.log_group_name.as_deref() {
        Some(name) if !name.is_empty() => {
            let resolved = placeholders.resolve(name);
            if !is_valid_log_group_name(&resolved) {
                diagnostics.error(
                    &path.key("log_group_name"),
                    format!("\"{resolved}\" is not a valid log group name: 1 to 512 of letters, digits and . - _ / #"),
                );
            }
            LogGroupName::Named(resolved)
        }
        _ if publish_multi_logs => LogGroupName::FromEachFilePath,
        _ => {
            let derived = strip_last_extension(&raw.file_path);
            if !is_valid_log_group_name(&derived) {
                // The stock agent starts, and CloudWatch refuses every batch of this entry
                // (InvalidParameterException), which it drops without retry, moving the offset
                // on (`internal/pusher/sender.go`, `Send`): the data is lost. One bad entry
                // must not stop the others either, so it alone is skipped, and said.
                diagnostics.warn(
                    &path.key("log_group_name"),
                    format!("not set, and the default taken from file_path, \"{derived}\", is not a valid log group name: this entry is skipped (set log_group_name)"),
                );
                return None;
            }
            LogGroupName::Named(derived)
        }
    };
    // With `publish_multi_logs` and a named group, each file's stream is the entry's own
    // `log_stream_name` (empty when unset; never the section's or the host name) joined to its
    // path: `__var_log_app.log` (`plugins/inputs/logfile/logfile.go`, `FindLogSrc` and
    // `generateLogStreamName`).
    let entry_stream_only = publish_multi_logs
        && matches!(log_group_name, LogGroupName::Named(_))
        && raw.log_stream_name.is_none();
    let log_stream_name = if entry_stream_only {
        String::new()
    } else {
        // An empty name is refused above, as the stock schema refuses it.
        let name = placeholders.resolve(raw.log_stream_name.as_deref().unwrap_or(default_stream));
        if !is_valid_log_stream_name(&name) {
            diagnostics.error(
                &path.key("log_stream_name"),
                format!(
                    "\"{name}\" is not a valid log stream name: 1 to 512 characters without : or *"
                ),
            );
        }
        name
    };
    let log_group_class = group_class(raw.log_group_class.as_deref(), path, diagnostics);
    let retention_in_days = retention(raw.retention_in_days, path, diagnostics);
    let timestamp_format = raw.timestamp_format.filter(|f| !f.is_empty());
    let timezone = match raw.timezone.as_deref() {
        None | Some("Local") | Some("LOCAL") => Timezone::Local,
        Some("UTC") => Timezone::Utc,
        Some(other) => {
            diagnostics.error(
                &path.key("timezone"),
                format!("\"{other}\" is not one of Local, LOCAL, UTC"),
            );
            Timezone::Local
        }
    };
    let multi_line_start = match raw.multi_line_start_pattern.as_deref() {
        Some("{timestamp_format}") => {
            if timestamp_format.is_none() {
                diagnostics.error(
                    &path.key("multi_line_start_pattern"),
                    "{timestamp_format} needs timestamp_format to be set",
                );
            }
            MultiLineStart::TimestampFormat
        }
        pattern => {
            let pattern = pattern
                .filter(|p| !p.is_empty())
                .unwrap_or(DEFAULT_MULTI_LINE_START_PATTERN);
            match GoRegex::new(pattern) {
                Ok(regex) => MultiLineStart::Pattern(regex),
                Err(err) => {
                    diagnostics.error(&path.key("multi_line_start_pattern"), err);
                    return None;
                }
            }
        }
    };
    let encoding = match Charset::lookup(raw.encoding.as_deref().unwrap_or("")) {
        Ok(charset) => charset,
        Err(err @ CharsetError::Unknown(_)) => {
            diagnostics.error(&path.key("encoding"), err.to_string());
            Charset::UTF_8
        }
        // The stock agent accepts the name and reads garbage; one entry must not stop the rest.
        Err(err @ CharsetError::Ebcdic(_)) => {
            diagnostics.warn(
                &path.key("encoding"),
                format!("{err}: this entry is skipped"),
            );
            return None;
        }
    };
    let filters = filters(&raw.filters.unwrap_or_default(), path, diagnostics);
    let blacklist = raw
        .blacklist
        .filter(|b| !b.is_empty())
        .and_then(|b| match GoRegex::new(&b) {
            Ok(regex) => Some(regex),
            Err(err) => {
                diagnostics.error(&path.key("blacklist"), err);
                None
            }
        });
    match raw.backpressure_mode.as_deref() {
        None => {}
        Some("fd_release") => diagnostics.warn(
            &path.key("backpressure_mode"),
            "ignored: cwlite never drops while blocked; it pauses reading and bounds open files itself",
        ),
        Some(other) => diagnostics.error(&path.key("backpressure_mode"), format!("\"{other}\" is not a backpressure mode: only fd_release exists")),
    }
    if raw.auto_removal == Some(true) && publish_multi_logs {
        diagnostics.warn(
            &path.key("auto_removal"),
            "ignored with publish_multi_logs, as in the stock agent: every match is tailed, none is older",
        );
    }
    Some(FileConfig {
        file_path: raw.file_path,
        log_group_name,
        log_stream_name,
        log_group_class,
        retention_in_days,
        timestamp_format,
        timezone,
        trim_timestamp: raw.trim_timestamp.unwrap_or(false),
        multi_line_start,
        encoding,
        filters,
        auto_removal: raw.auto_removal.unwrap_or(false) && !publish_multi_logs,
        publish_multi_logs,
        blacklist,
    })
}

/// The stock default group: the file path without its last extension (`/tmp/app.log` → `/tmp/app`).
fn strip_last_extension(file_path: &str) -> String {
    let name_start = file_path.rfind('/').map_or(0, |i| i + 1);
    // Go's `filepath.Ext`: from the last dot of the last element, a leading dot included
    // (`plugins/inputs/logfile/fileconfig.go`, `logGroupName`), so `/var/log/.hidden` gives
    // `/var/log/`.
    match file_path[name_start..].rfind('.') {
        Some(dot) => file_path[..name_start + dot].to_owned(),
        None => file_path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_group_drops_the_last_extension_only() {
        assert_eq!(strip_last_extension("/tmp/app.log"), "/tmp/app");
        assert_eq!(strip_last_extension("/var/log/syslog"), "/var/log/syslog");
        assert_eq!(
            strip_last_extension("/var/log/app.2026.log"),
            "/var/log/app.2026"
        );
        assert_eq!(
            strip_last_extension("/var/log.d/messages"),
            "/var/log.d/messages"
        );
        assert_eq!(strip_last_extension("/var/log/.hidden"), "/var/log/");
    }

    #[test]
    fn log_name_rules() {
        assert!(is_valid_log_group_name("/var/log/syslog"));
        assert!(is_valid_log_group_name("a#b.c-d_e"));
        assert!(!is_valid_log_group_name("/var/log/*"));
        assert!(!is_valid_log_group_name(""));
        assert!(!is_valid_log_group_name(&"a".repeat(513)));
        assert!(is_valid_log_stream_name("web-01 [x]"));
        assert!(!is_valid_log_stream_name("a:b"));
        assert!(!is_valid_log_stream_name("a*"));
    }
}
