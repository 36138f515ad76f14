//! Metric datums: collector samples turned into what CloudWatch receives, named, united and
//! dimensioned exactly as the stock agent sends them.
//!
//! Owns [`MetricDatum`] and [`DatumBuilder`]: `<plugin>_<field>` names (or the `rename`), the
//! stock default units (or the `unit` override), `StorageResolution` 1 below a 60 s interval,
//! dimensions with `host` first and the rest sorted (at most 30), `aggregation_dimensions`
//! roll-ups and `drop_original_metrics`. Values CloudWatch refuses (NaN, infinities) are dropped
//! and counted. It knows nothing of how datums are batched or sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod aggregate;
pub mod distribution;

use crate::collect::{Sample, Tags};
use crate::config::{AgentConfig, MAX_DIMENSIONS, PluginConfig};
pub use distribution::Distribution;

/// Dimensions in the order they are sent.
pub type Dimensions = Arc<[(Arc<str>, Arc<str>)]>;

/// One `MetricDatum` of a PutMetricData request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDatum {
    /// `MetricName`.
    pub metric_name: Arc<str>,
    /// `Dimensions`, `host` first.
    pub dimensions: Dimensions,
    /// `Value`.
    pub value: f64,
    /// `Unit`, always sent.
    pub unit: Arc<str>,
    /// `Timestamp`: collection time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// `StorageResolution`: 1 or 60.
    pub storage_resolution: u8,
    /// `Values`, `Counts` and `StatisticValues`, for aggregated series (statsd, collectd);
    /// `value` is not sent then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Box<Distribution>>,
}

/// CloudWatch's bound on metric values (±2^360); beyond it, and NaN, a datum is refused.
pub const MAX_ABS_VALUE: f64 = 2.348_542_582_773_833_3e108;

/// Whether CloudWatch takes `value` as a datum's `Value` (finite, within ±2^360).
pub fn is_sendable(value: f64) -> bool {
    value.is_finite() && value.abs() <= MAX_ABS_VALUE
}

/// CloudWatch's longest metric name and dimension name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// CloudWatch's longest dimension value, in characters.
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;

/// Whether CloudWatch takes `name` as a metric name: 1 to 255 ASCII characters. Names from the
/// network (statsd, collectd) are checked, since one refused datum refuses its whole request.
pub fn is_valid_metric_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_CHARS && name.is_ascii()
}

/// Whether CloudWatch takes a dimension: a name of 1 to 255 ASCII characters, not blank and
/// not starting with `:`, and a value of at most 1,024 characters (empty ones are left out
/// when sending).
pub fn is_valid_dimension(name: &str, value: &str) -> bool {
    is_valid_metric_name(name)
        && !name.trim().is_empty()
        && !name.starts_with(':')
        && value.chars().count() <= MAX_DIMENSION_VALUE_CHARS
}

/// Counters of what the builder did not send.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BuildStats {
    /// Datums dropped because their value was NaN, infinite or out of range.
    pub dropped_invalid_values: u64,
}

struct Measure {
    name: Arc<str>,
    unit: Arc<str>,
    drop_original: bool,
}

/// Turns one plugin's samples into datums. One per configured plugin.
pub struct DatumBuilder {
    measures: HashMap<&'static str, Measure>,
    host: Option<Arc<str>>,
    append: Vec<(Arc<str>, Arc<str>)>,
    rollups: Vec<Vec<Arc<str>>>,
    storage_resolution: u8,
    /// Dimension sets by series. Keyed by the tag set's address and holding the tag set itself,
    /// so the address cannot be reused by another series while the entry lives.
    cache: HashMap<usize, (Tags, Vec<Dimensions>)>,
    /// What was not sent, cumulative.
    pub stats: BuildStats,
}

impl std::fmt::Debug for DatumBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatumBuilder")
            .field("measures", &self.measures.len())
            .finish_non_exhaustive()
    }
}

impl DatumBuilder {
    /// A builder for `plugin` with the agent's host settings and the metrics section's roll-ups.
    pub fn new(
        plugin: &PluginConfig,
        agent: &AgentConfig,
        aggregation_dimensions: &[Vec<String>],
    ) -> Self {
        let drop: HashSet<&str> = plugin
            .drop_original_metrics
            .iter()
            .map(String::as_str)
            .collect();
        let measures = plugin
            .measurements
            .iter()
            .map(|m| {
                let measure = Measure {
                    name: Arc::from(m.metric_name.as_str()),
                    unit: Arc::from(m.unit),
                    drop_original: drop.contains(m.metric_name.as_str()),
                };
                (m.field, measure)
            })
            .collect();
        Self {
            measures,
            host: host_dimension(agent),
            append: plugin
                .append_dimensions
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
                .collect(),
            rollups: rollup_sets(aggregation_dimensions),
            storage_resolution: if plugin.high_resolution { 1 } else { 60 },
            cache: HashMap::new(),
            stats: BuildStats::default(),
        }
    }

    /// Appends the datums for `samples` (collected at `timestamp_ms`) to `out`.
    pub fn build(&mut self, samples: &[Sample], timestamp_ms: i64, out: &mut Vec<MetricDatum>) {
        // Series the collector forgot are held only by this cache now: forget them too.
        self.cache
            .retain(|_, (tags, _)| Arc::strong_count(tags) > 1);
        for sample in samples {
            let Some(measure) = self.measures.get(sample.field) else {
                continue;
            };
            if !sample.value.is_finite() || sample.value.abs() > MAX_ABS_VALUE {
                self.stats.dropped_invalid_values += 1;
                continue;
            }
            let key = Arc::as_ptr(&sample.tags) as *const () as usize;
            // The entry holds the tag set, so its address identifies this series while cached.
            let (_, sets) = match self.cache.get(&key) {
                Some(entry) => entry,
                None => {
                    let sets = dimension_sets(
                        &sample.tags,
                        self.host.as_ref(),
                        &self.append,
                        &self.rollups,
                    );
                    self.cache.entry(key).or_insert((sample.tags.clone(), sets))
                }
            };
            for (i, dimensions) in sets.iter().enumerate() {
                // The first set is the original; the others are roll-ups.
                if i == 0 && measure.drop_original {
                    continue;
                }
                out.push(MetricDatum {
                    metric_name: measure.name.clone(),
                    dimensions: dimensions.clone(),
                    value: sample.value,
                    unit: measure.unit.clone(),
                    timestamp_ms,
                    storage_resolution: self.storage_resolution,
                    distribution: None,
                });
            }
        }
    }
}

/// The `host` dimension every series gets, unless `omit_hostname`.
pub fn host_dimension(agent: &AgentConfig) -> Option<Arc<str>> {
    (!agent.omit_hostname).then(|| Arc::from(agent.hostname.as_str()))
}

/// `aggregation_dimensions` as [`dimension_sets_of`] takes them.
pub fn rollup_sets(aggregation_dimensions: &[Vec<String>]) -> Vec<Vec<Arc<str>>> {
    aggregation_dimensions
        .iter()
        .map(|set| set.iter().map(|d| Arc::from(d.as_str())).collect())
        .collect()
}

/// The original dimension set of a series, then one per applicable roll-up.
fn dimension_sets(
    tags: &Tags,
    host: Option<&Arc<str>>,
    append: &[(Arc<str>, Arc<str>)],
    rollups: &[Vec<Arc<str>>],
) -> Vec<Dimensions> {
    let own = tags
        .iter()
        // telegraf's disk input adds `mode`; the stock agent always drops it.
        .filter(|(key, _)| *key != "mode")
        .map(|(key, value)| (Arc::from(*key), value.clone()))
        .collect();
    dimension_sets_of(own, host, append, rollups)
}

/// The original dimension set of a series with its own tags `own` (a plugin's, or a statsd
/// line's), then one per applicable roll-up.
pub fn dimension_sets_of(
    own: Vec<(Arc<str>, Arc<str>)>,
    host: Option<&Arc<str>>,
    append: &[(Arc<str>, Arc<str>)],
    rollups: &[Vec<Arc<str>>],
) -> Vec<Dimensions> {
    let mut all = own;
    // telegraf's order (`models/makemetric.go`): a tag is added only if the metric does not
    // carry it yet, the plugin's own tags first, then the plugin's `tags` (its
    // `append_dimensions`), then the global tags (`host`). So `{"cpu": "x"}` leaves the cpu
    // dimension alone and `{"host": "alias"}` renames the host.
    for (key, value) in append {
        if !all.iter().any(|(k, _)| k == key) {
            all.push((key.clone(), value.clone()));
        }
    }
    if let Some(host) = host
        && !all.iter().any(|(k, _)| &**k == "host")
    {
        all.push((Arc::from("host"), host.clone()));
    }
    let original = order(all.clone());
    let mut sets = vec![original.clone()];
    for rollup in rollups {
        let applies = rollup.len() < original.len()
            && rollup
                .iter()
                .all(|k| original.iter().any(|(ok, _)| ok == k));
        if applies {
            let subset: Vec<_> = original
                .iter()
                .filter(|(k, _)| rollup.contains(k))
                .cloned()
                .collect();
            let subset = order(subset);
            if !sets.contains(&subset) {
                sets.push(subset);
            }
        }
    }
    sets
}

/// `host` first, the rest by name, empty values skipped, at most 30.
fn order(mut dimensions: Vec<(Arc<str>, Arc<str>)>) -> Dimensions {
    dimensions.retain(|(_, v)| !v.is_empty());
    dimensions.sort_by(|(a, _), (b, _)| match (&**a == "host", &**b == "host") {
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    });
    dimensions.truncate(MAX_DIMENSIONS);
    dimensions.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Measurement, PluginKind, PluginOptions};

    #[test]
    fn names_and_dimensions_from_the_network_are_checked_against_cloudwatchs_limits() {
        assert_eq!((MAX_NAME_CHARS, MAX_DIMENSION_VALUE_CHARS), (255, 1024));
        assert!(is_valid_metric_name("api_requests"));
        assert!(!is_valid_metric_name(""));
        assert!(!is_valid_metric_name(&"a".repeat(256)));
        assert!(!is_valid_metric_name("caf\u{e9}"));
        assert!(is_valid_dimension("env", "prod"));
        assert!(!is_valid_dimension(":env", "prod"));
        assert!(!is_valid_dimension("  ", "prod"));
        assert!(!is_valid_dimension("env", &"v".repeat(1025)));
        assert!(is_sendable(1.0) && !is_sendable(f64::NAN) && !is_sendable(1e200));
    }
    use std::collections::BTreeMap;

    fn agent(omit_hostname: bool) -> AgentConfig {
        AgentConfig {
            metrics_collection_interval_secs: 60,
            hostname: "web-01".into(),
            omit_hostname,
            debug: false,
            logfile: None,
            run_as_user: None,
            use_dualstack_endpoint: false,
            role_arn: None,
        }
    }

    fn plugin(
        interval: u64,
        measurements: &[(&'static str, &str, &'static str)],
        append: &[(&str, &str)],
        drop: &[&str],
    ) -> PluginConfig {
        PluginConfig {
            kind: PluginKind::Disk,
            measurements: measurements
                .iter()
                .map(|(f, n, u)| Measurement {
                    field: f,
                    metric_name: (*n).into(),
                    unit: u,
                })
                .collect(),
            interval_secs: interval,
            high_resolution: interval < 60,
            append_dimensions: append
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<BTreeMap<_, _>>(),
            drop_original_metrics: drop.iter().map(|d| (*d).into()).collect(),
            options: PluginOptions::None,
        }
    }

    fn disk_tags() -> Tags {
        vec![
            ("device", Arc::from("sda1")),
            ("fstype", Arc::from("ext4")),
            ("path", Arc::from("/")),
            ("mode", Arc::from("rw")),
        ]
        .into()
    }

    fn dims(datum: &MetricDatum) -> Vec<String> {
        datum
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn names_units_and_dimension_order_follow_the_stock_agent() {
        let config = plugin(
            60,
            &[
                ("used_percent", "disk_used_percent", "Percent"),
                ("free", "FreeBytes", "Gigabytes"),
            ],
            &[("team", "ops")],
            &[],
        );
        let mut builder = DatumBuilder::new(&config, &agent(false), &[]);
        let tags = disk_tags();
        let samples = [
            Sample {
                field: "used_percent",
                value: 42.0,
                tags: tags.clone(),
            },
            Sample {
                field: "free",
                value: 7.0,
                tags: tags.clone(),
            },
            Sample {
                field: "total",
                value: 9.0,
                tags,
            },
        ];
        let mut out = Vec::new();
        builder.build(&samples, 1_700_000_000_000, &mut out);
        assert_eq!(out.len(), 2, "only configured measurements are sent");
        assert_eq!(&*out[0].metric_name, "disk_used_percent");
        assert_eq!(&*out[0].unit, "Percent");
        assert_eq!(
            dims(&out[0]),
            [
                "host=web-01",
                "device=sda1",
                "fstype=ext4",
                "path=/",
                "team=ops"
            ]
        );
        assert_eq!(out[0].storage_resolution, 60);
        assert_eq!(out[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(
            (&*out[1].metric_name, &*out[1].unit),
            ("FreeBytes", "Gigabytes")
        );
    }

    /// Issue 19: telegraf adds a tag only when the metric lacks it, the plugin's own tags
    /// first, then `append_dimensions`, then `host` (`models/makemetric.go`, `makemetric`).
    /// cwlite let `append_dimensions` override the plugin's tags and `host` override both.
    #[test]
    fn plugin_tags_win_over_append_dimensions_which_win_over_host() {
        let config = plugin(
            60,
            &[("used_percent", "disk_used_percent", "Percent")],
            &[("device", "renamed"), ("host", "alias"), ("team", "ops")],
            &[],
        );
        let mut builder = DatumBuilder::new(&config, &agent(false), &[]);
        let samples = [Sample {
            field: "used_percent",
            value: 1.0,
            tags: disk_tags(),
        }];
        let mut out = Vec::new();
        builder.build(&samples, 0, &mut out);
        assert_eq!(
            dims(&out[0]),
            [
                "host=alias",
                "device=sda1",
                "fstype=ext4",
                "path=/",
                "team=ops"
            ]
        );
    }

    #[test]
    fn high_resolution_below_sixty_seconds_and_omit_hostname() {
        let config = plugin(
            10,
            &[("used_percent", "mem_used_percent", "Percent")],
            &[],
            &[],
        );
        let mut builder = DatumBuilder::new(&config, &agent(true), &[]);
        let mut out = Vec::new();
        builder.build(
            &[Sample {
                field: "used_percent",
                value: 1.0,
                tags: crate::collect::no_tags(),
            }],
            0,
            &mut out,
        );
        assert_eq!(out[0].storage_resolution, 1);
        assert!(out[0].dimensions.is_empty());
    }

    #[test]
    fn rollups_apply_only_to_smaller_sets_whose_keys_all_exist() {
        let config = plugin(
            60,
            &[("used_percent", "disk_used_percent", "Percent")],
            &[],
            &[],
        );
        let rollups = vec![
            vec!["path".to_owned()],
            vec![],
            vec!["InstanceId".to_owned()],
            vec![
                "device".into(),
                "fstype".into(),
                "host".into(),
                "path".into(),
            ],
        ];
        let mut builder = DatumBuilder::new(&config, &agent(false), &rollups);
        let mut out = Vec::new();
        builder.build(
            &[Sample {
                field: "used_percent",
                value: 5.0,
                tags: disk_tags(),
            }],
            0,
            &mut out,
        );
        let sets: Vec<_> = out.iter().map(dims).collect();
        assert_eq!(
            sets,
            vec![
                vec!["host=web-01", "device=sda1", "fstype=ext4", "path=/"],
                vec!["path=/"],
                vec![]
            ]
        );
    }

    #[test]
    fn drop_original_keeps_only_the_rollups() {
        let config = plugin(
            60,
            &[
                ("used_percent", "disk_used_percent", "Percent"),
                ("free", "disk_free", "Bytes"),
            ],
            &[],
            &["disk_used_percent"],
        );
        let mut builder = DatumBuilder::new(&config, &agent(false), &[vec!["path".to_owned()]]);
        let tags = disk_tags();
        let mut out = Vec::new();
        builder.build(
            &[
                Sample {
                    field: "used_percent",
                    value: 5.0,
                    tags: tags.clone(),
                },
                Sample {
                    field: "free",
                    value: 1.0,
                    tags,
                },
            ],
            0,
            &mut out,
        );
        let sent: Vec<_> = out
            .iter()
            .map(|d| format!("{} {:?}", d.metric_name, dims(d)))
            .collect();
        assert_eq!(
            sent,
            [
                r#"disk_used_percent ["path=/"]"#,
                r#"disk_free ["host=web-01", "device=sda1", "fstype=ext4", "path=/"]"#,
                r#"disk_free ["path=/"]"#
            ]
        );
    }

    #[test]
    fn invalid_values_are_dropped_and_counted() {
        let config = plugin(
            60,
            &[("used_percent", "mem_used_percent", "Percent")],
            &[],
            &[],
        );
        let mut builder = DatumBuilder::new(&config, &agent(false), &[]);
        let tags = crate::collect::no_tags();
        let samples: Vec<_> = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e200, 3.0]
            .into_iter()
            .map(|value| Sample {
                field: "used_percent",
                value,
                tags: tags.clone(),
            })
            .collect();
        let mut out = Vec::new();
        builder.build(&samples, 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(builder.stats.dropped_invalid_values, 4);
    }

    #[test]
    fn at_most_thirty_dimensions_with_host_kept() {
        let append: Vec<(String, String)> = (0..40)
            .map(|i| (format!("k{i:02}"), "v".to_owned()))
            .collect();
        let append_refs: Vec<(&str, &str)> = append
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let config = plugin(
            60,
            &[("used_percent", "mem_used_percent", "Percent")],
            &append_refs,
            &[],
        );
        let mut builder = DatumBuilder::new(&config, &agent(false), &[]);
        let mut out = Vec::new();
        builder.build(
            &[Sample {
                field: "used_percent",
                value: 1.0,
                tags: crate::collect::no_tags(),
            }],
            0,
            &mut out,
        );
        assert_eq!(out[0].dimensions.len(), MAX_DIMENSIONS);
        assert_eq!(&*out[0].dimensions[0].0, "host");
    }

    #[test]
    fn a_datum_round_trips_through_json_for_the_spool() {
        let datum = MetricDatum {
            metric_name: Arc::from("cpu_usage_idle"),
            dimensions: vec![
                (Arc::from("host"), Arc::from("h")),
                (Arc::from("cpu"), Arc::from("cpu-total")),
            ]
            .into(),
            value: 99.5,
            unit: Arc::from("Percent"),
            timestamp_ms: 1,
            storage_resolution: 60,
            distribution: None,
        };
        let text = serde_json::to_string(&datum).unwrap();
        assert_eq!(serde_json::from_str::<MetricDatum>(&text).unwrap(), datum);
    }
}
