//! Where a metric batch goes: PutMetricData through the SDK, or one JSON line on stdout in a
//! dry run.
//!
//! Owns the translation from [`MetricDatum`] to the SDK's request and to the dry-run line, and
//! the mapping of failures to `AwsError`. It keeps no state between calls.

use std::io::Write;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum as SdkDatum, StandardUnit, StatisticSet};

use crate::aws::AwsError;
use crate::metrics::MetricDatum;

/// A PutMetricData destination.
#[derive(Debug, Clone)]
pub enum MetricsSink {
    /// The real service (or the configured endpoint).
    CloudWatch {
        /// The client.
        client: aws_sdk_cloudwatch::Client,
        /// For messages.
        endpoint: String,
    },
    /// Print the request, send nothing.
    DryRun,
}

impl MetricsSink {
    /// Sends one batch.
    ///
    /// # Errors
    /// The classified failure.
    pub async fn put(&self, namespace: &str, datums: &[MetricDatum]) -> Result<(), AwsError> {
        match self {
            MetricsSink::DryRun => {
                let line = dry_run_line(namespace, datums);
                let mut stdout = std::io::stdout().lock();
                // A closed stdout (the reader went away) is not a reason to stop collecting.
                let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
                Ok(())
            }
            MetricsSink::CloudWatch { client, endpoint } => {
                let data: Vec<SdkDatum> = datums.iter().map(to_sdk).collect();
                client
                    .put_metric_data()
                    .namespace(namespace)
                    .set_metric_data(Some(data))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|err| AwsError::from_sdk("PutMetricData", endpoint, &err))
            }
        }
    }
}

fn to_sdk(datum: &MetricDatum) -> SdkDatum {
    let dimensions = datum
        .dimensions
        .iter()
        .map(|(k, v)| Dimension::builder().name(&**k).value(&**v).build())
        .collect();
    let builder = SdkDatum::builder()
        .metric_name(&*datum.metric_name)
        .set_dimensions(Some(dimensions))
        .unit(StandardUnit::from(&*datum.unit))
        .timestamp(DateTime::from_millis(datum.timestamp_ms))
        .storage_resolution(i32::from(datum.storage_resolution));
    match &datum.distribution {
        None => builder.value(datum.value).build(),
        Some(d) => builder
            .set_values(Some(d.values.clone()))
            .set_counts(Some(d.counts.clone()))
            .statistic_values(
                StatisticSet::builder()
                    .minimum(d.minimum)
                    .maximum(d.maximum)
                    .sum(d.sum)
                    .sample_count(d.sample_count)
                    .build(),
            )
            .build(),
    }
}

/// The dry-run form of a request: the operation and its fields as the API names them.
pub fn dry_run_line(namespace: &str, datums: &[MetricDatum]) -> serde_json::Value {
    let data: Vec<serde_json::Value> = datums
        .iter()
        .map(|d| {
            let timestamp = jiff::Timestamp::from_millisecond(d.timestamp_ms).map(|t| t.to_string()).unwrap_or_default();
            let mut line = serde_json::json!({
                "MetricName": &*d.metric_name,
                "Dimensions": d.dimensions.iter().map(|(k, v)| serde_json::json!({"Name": &**k, "Value": &**v})).collect::<Vec<_>>(),
                "Timestamp": timestamp,
                "Unit": &*d.unit,
                "StorageResolution": d.storage_resolution,
            });
            match &d.distribution {
                None => line["Value"] = d.value.into(),
                Some(dist) => {
                    line["Values"] = dist.values.clone().into();
                    line["Counts"] = dist.counts.clone().into();
                    line["StatisticValues"] = serde_json::json!({
                        "Minimum": dist.minimum,
                        "Maximum": dist.maximum,
                        "Sum": dist.sum,
                        "SampleCount": dist.sample_count,
                    });
                }
            }
            line
        })
        .collect();
    serde_json::json!({"operation": "PutMetricData", "Namespace": namespace, "MetricData": data})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_dry_run_line_names_the_operation_and_api_fields() {
        let datum = MetricDatum {
            metric_name: Arc::from("mem_used_percent"),
            dimensions: vec![(Arc::from("host"), Arc::from("web-01"))].into(),
            value: 12.5,
            unit: Arc::from("Percent"),
            timestamp_ms: 1_764_000_000_000,
            storage_resolution: 60,
            distribution: None,
        };
        let line = dry_run_line("CWAgent", &[datum]);
        assert_eq!(line["operation"], "PutMetricData");
        assert_eq!(line["Namespace"], "CWAgent");
        assert_eq!(line["MetricData"][0]["MetricName"], "mem_used_percent");
        assert_eq!(
            line["MetricData"][0]["Dimensions"][0],
            serde_json::json!({"Name": "host", "Value": "web-01"})
        );
        assert_eq!(line["MetricData"][0]["Timestamp"], "2025-11-24T16:00:00Z");
        assert_eq!(line["MetricData"][0]["Unit"], "Percent");
        assert_eq!(line["MetricData"][0]["StorageResolution"], 60);
        assert_eq!(line["MetricData"][0]["Value"], 12.5);
    }

    #[test]
    fn an_aggregated_datum_sends_values_counts_and_statistics_instead_of_a_value() {
        let datum = MetricDatum {
            metric_name: Arc::from("latency"),
            dimensions: vec![(Arc::from("metric_type"), Arc::from("timing"))].into(),
            value: 0.0,
            unit: Arc::from("None"),
            timestamp_ms: 1_764_000_000_000,
            storage_resolution: 1,
            distribution: Some(Box::new(crate::metrics::Distribution {
                values: vec![1.0, 2.0],
                counts: vec![3.0, 1.0],
                minimum: 1.0,
                maximum: 2.0,
                sum: 5.0,
                sample_count: 4.0,
            })),
        };
        let line = &dry_run_line("CWAgent", std::slice::from_ref(&datum))["MetricData"][0];
        assert!(line.get("Value").is_none(), "{line}");
        assert_eq!(line["Values"], serde_json::json!([1.0, 2.0]));
        assert_eq!(line["Counts"], serde_json::json!([3.0, 1.0]));
        assert_eq!(
            line["StatisticValues"],
            serde_json::json!({"Minimum": 1.0, "Maximum": 2.0, "Sum": 5.0, "SampleCount": 4.0})
        );
        let sdk = to_sdk(&datum);
        assert_eq!(sdk.value(), None);
        assert_eq!(sdk.values(), [1.0, 2.0]);
        assert_eq!(sdk.counts(), [3.0, 1.0]);
        assert_eq!(
            sdk.statistic_values().and_then(|s| s.sample_count()),
            Some(4.0)
        );
    }

    #[test]
    fn units_map_to_the_sdk_enum() {
        assert_eq!(StandardUnit::from("Percent"), StandardUnit::Percent);
        assert_eq!(
            StandardUnit::from("Bytes/Second"),
            StandardUnit::BytesSecond
        );
        assert_eq!(StandardUnit::from("None"), StandardUnit::None);
    }
}
