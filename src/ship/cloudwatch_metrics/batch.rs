//! PutMetricData limits and the batch that respects them.
//!
//! Owns the named limits of one request and [`BatchBuilder`], which closes a batch before a datum
//! would break one. The size is estimated from an upper bound of each datum's encoded size, so
//! a batch never reaches the 1 MB request limit whatever the protocol encoding.

use serde::{Deserialize, Serialize};

use crate::metrics::MetricDatum;

/// CloudWatch accepts at most this many metric datums in one PutMetricData call.
pub const MAX_DATUMS_PER_REQUEST: usize = 1000;
/// CloudWatch refuses PutMetricData requests larger than this (1 MB).
pub const MAX_REQUEST_BYTES: usize = 1_048_576;
/// Room left for the request envelope (namespace, framing, headers).
pub const REQUEST_ENVELOPE_BYTES: usize = 48_576;
/// What the datums of one batch may add up to, by [`estimated_bytes`].
pub const MAX_BATCH_BYTES: usize = MAX_REQUEST_BYTES - REQUEST_ENVELOPE_BYTES;

/// CloudWatch refuses datums older than this (two weeks), naming only the first of a request.
pub const MAX_DATUM_AGE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// CloudWatch refuses datums further ahead than this (two hours).
pub const MAX_DATUM_AHEAD_MS: i64 = 2 * 60 * 60 * 1000;

/// Whether CloudWatch takes a datum stamped `timestamp_ms` at `now_ms`.
pub fn in_time_window(timestamp_ms: i64, now_ms: i64) -> bool {
    timestamp_ms >= now_ms - MAX_DATUM_AGE_MS && timestamp_ms <= now_ms + MAX_DATUM_AHEAD_MS
}

/// An upper bound of a datum's encoded size in any of the API's encodings: every field name
/// written out, fixed-size numbers and timestamp, and each string plus its framing.
pub fn estimated_bytes(datum: &MetricDatum) -> usize {
    const FIXED: usize = 128;
    const PER_DIMENSION: usize = 24;
    // A value and its count in the most verbose encoding (awsQuery: each a numbered member of
    // its list, with up to 24 characters of number), and the statistic set once.
    const PER_VALUE: usize = 128;
    const STATISTICS: usize = 256;
    let distribution = datum
        .distribution
        .as_ref()
        .map_or(0, |d| STATISTICS + PER_VALUE * d.values.len());
    FIXED
        + distribution
        + datum.metric_name.len()
        + datum.unit.len()
        + datum
            .dimensions
            .iter()
            .map(|(k, v)| PER_DIMENSION + k.len() + v.len())
            .sum::<usize>()
}

/// A closed batch, as spooled and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricBatch {
    /// Format version of the spooled form.
    pub version: u32,
    /// The namespace the datums were collected for, so a batch spooled before a configuration
    /// change is still published where it belongs.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The datums, in collection order.
    pub datums: Vec<MetricDatum>,
}

impl MetricBatch {
    /// The spooled form's current version.
    pub const VERSION: u32 = 1;
}

/// Accumulates datums into batches within the request limits.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    datums: Vec<MetricDatum>,
    bytes: usize,
}

impl BatchBuilder {
    /// Adds a datum; returns the batch that had to be closed first to make room, if any.
    pub fn push(&mut self, datum: MetricDatum) -> Option<MetricBatch> {
        let size = estimated_bytes(&datum);
        let full =
            self.datums.len() >= MAX_DATUMS_PER_REQUEST || self.bytes + size > MAX_BATCH_BYTES;
        let closed = if full && !self.datums.is_empty() {
            self.take()
        } else {
            None
        };
        self.bytes += size;
        self.datums.push(datum);
        closed
    }

    /// Closes the open batch, if it holds anything.
    pub fn take(&mut self) -> Option<MetricBatch> {
        if self.datums.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(MetricBatch {
            namespace: None,
            version: MetricBatch::VERSION,
            datums: std::mem::take(&mut self.datums),
        })
    }

    /// Datums in the open batch.
    pub fn len(&self) -> usize {
        self.datums.len()
    }

    /// Whether the open batch is empty.
    pub fn is_empty(&self) -> bool {
        self.datums.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn datum(name_len: usize) -> MetricDatum {
        MetricDatum {
            metric_name: Arc::from("m".repeat(name_len)),
            dimensions: vec![(Arc::from("host"), Arc::from("web-01"))].into(),
            value: 1.0,
            unit: Arc::from("Percent"),
            timestamp_ms: 0,
            storage_resolution: 60,
            distribution: None,
        }
    }

    #[test]
    fn request_limits_are_the_documented_ones() {
        assert_eq!(MAX_DATUMS_PER_REQUEST, 1000);
        assert_eq!(MAX_REQUEST_BYTES, 1024 * 1024);
        assert_eq!(MAX_BATCH_BYTES, 1_000_000);
    }

    #[test]
    fn a_batch_holds_exactly_one_thousand_datums() {
        let mut builder = BatchBuilder::default();
        for _ in 0..MAX_DATUMS_PER_REQUEST {
            assert!(builder.push(datum(10)).is_none());
        }
        let closed = builder
            .push(datum(10))
            .expect("the 1001st datum closes the batch");
        assert_eq!(closed.datums.len(), MAX_DATUMS_PER_REQUEST);
        assert_eq!(builder.len(), 1);
    }

    #[test]
    fn a_batch_closes_before_the_byte_limit() {
        let big = datum(250);
        let per = estimated_bytes(&big);
        let fit = MAX_BATCH_BYTES / per;
        let mut builder = BatchBuilder::default();
        let mut closed = None;
        for _ in 0..=fit {
            if let Some(batch) = builder.push(big.clone()) {
                closed = Some(batch);
            }
        }
        // 1000 datums of this size would exceed the budget only if `fit` < 1000.
        if fit < MAX_DATUMS_PER_REQUEST {
            let closed = closed.expect("closed at the byte limit");
            assert_eq!(closed.datums.len(), fit);
            assert!(closed.datums.iter().map(estimated_bytes).sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn the_estimate_bounds_the_real_encoding() {
        let datum = MetricDatum {
            metric_name: Arc::from("disk_used_percent"),
            dimensions: vec![
                (Arc::from("host"), Arc::from("web-01.example.internal")),
                (Arc::from("device"), Arc::from("mapper/vg-root")),
                (Arc::from("fstype"), Arc::from("xfs")),
                (Arc::from("path"), Arc::from("/")),
            ]
            .into(),
            value: 42.123456789,
            unit: Arc::from("Percent"),
            timestamp_ms: 1_764_000_000_000,
            storage_resolution: 60,
            distribution: None,
        };
        // The awsQuery form encoding is the most verbose the API has; JSON shows the same names.
        let json = serde_json::json!({
            "MetricName": &*datum.metric_name,
            "Dimensions": datum.dimensions.iter().map(|(k, v)| serde_json::json!({"Name": &**k, "Value": &**v})).collect::<Vec<_>>(),
            "Value": datum.value, "Unit": &*datum.unit, "Timestamp": datum.timestamp_ms as f64 / 1000.0, "StorageResolution": 60
        });
        assert!(
            estimated_bytes(&datum) >= json.to_string().len(),
            "{} < {}",
            estimated_bytes(&datum),
            json.to_string().len()
        );
    }

    #[test]
    fn the_estimate_bounds_a_full_distribution_in_the_query_encoding() {
        let n = crate::metrics::distribution::MAX_VALUES_PER_DATUM;
        let long = 1.048_808_848_170_151_6e-100;
        let full = MetricDatum {
            distribution: Some(Box::new(crate::metrics::Distribution {
                values: vec![long; n],
                counts: vec![3.333_333_333_333_333_5; n],
                minimum: long,
                maximum: long,
                sum: long,
                sample_count: long,
            })),
            ..datum(20)
        };
        // The datum's members as the last datum of a full request would write them.
        let member = "MetricData.member.1000";
        let mut query = String::new();
        for i in 1..=n {
            query.push_str(&format!("&{member}.Values.member.{i}={long:e}"));
            query.push_str(&format!(
                "&{member}.Counts.member.{i}={:e}",
                3.333_333_333_333_333_5
            ));
        }
        for stat in ["Minimum", "Maximum", "Sum", "SampleCount"] {
            query.push_str(&format!("&{member}.StatisticValues.{stat}={long:e}"));
        }
        let plain = estimated_bytes(&datum(20));
        assert!(
            estimated_bytes(&full) - plain >= query.len(),
            "{} < {}",
            estimated_bytes(&full) - plain,
            query.len()
        );
    }

    #[test]
    fn a_batch_spooled_before_distributions_existed_still_reads() {
        let spooled = r#"{"version":1,"namespace":"CWAgent","datums":[{"metric_name":"mem_used_percent","dimensions":[["host","a"]],"value":1.5,"unit":"Percent","timestamp_ms":1764000000000,"storage_resolution":60}]}"#;
        let batch: MetricBatch = serde_json::from_str(spooled).unwrap();
        assert_eq!(batch.datums[0].distribution, None);
        // And a datum without one is spooled as before.
        assert!(
            !serde_json::to_string(&batch)
                .unwrap()
                .contains("distribution")
        );
    }

    #[test]
    fn take_on_an_empty_builder_is_nothing() {
        assert!(BatchBuilder::default().take().is_none());
    }

    #[test]
    fn the_datum_time_window_is_two_weeks_back_and_two_hours_ahead() {
        assert_eq!(MAX_DATUM_AGE_MS, 1_209_600_000);
        assert_eq!(MAX_DATUM_AHEAD_MS, 7_200_000);
        let now = 2_000_000_000_000;
        assert!(in_time_window(now - MAX_DATUM_AGE_MS, now));
        assert!(!in_time_window(now - MAX_DATUM_AGE_MS - 1, now));
        assert!(in_time_window(now + MAX_DATUM_AHEAD_MS, now));
        assert!(!in_time_window(now + MAX_DATUM_AHEAD_MS + 1, now));
    }
}
