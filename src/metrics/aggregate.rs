//! The stock exporter's aggregation of statsd and collectd series over
//! `metrics_aggregation_interval` (`plugins/outputs/cloudwatch/aggregator.go`).
//!
//! Owns the open windows: one [`Exact`] distribution per metric name, dimension set and
//! window (timestamps truncated to the interval). Every value a window receives (a statsd
//! counter's 10 s sum, a gauge, a timer's values) is an entry of its distribution; at each
//! wall-clock multiple of the interval every window is sent, as datums with `Values`, `Counts`
//! and `StatisticValues`, stamped with its first entry's time. Below 60 s they are
//! high-resolution. Nothing here reads packets or names series.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::distribution::{Exact, Rejected};
use super::{Dimensions, MetricDatum};

#[derive(Debug)]
struct Window {
    unit: Arc<str>,
    timestamp_ms: i64,
    values: Exact,
}

/// Open windows of one aggregation interval.
#[derive(Debug)]
pub struct Aggregator {
    interval_ms: i64,
    windows: HashMap<(Arc<str>, Dimensions, i64), Window>,
    /// Entries refused (negative, NaN, out of range), cumulative.
    pub rejected: u64,
}

impl Aggregator {
    /// Windows of `interval` (at least a second; the stock agent truncates to seconds).
    pub fn new(interval: Duration) -> Self {
        Self {
            interval_ms: (interval.as_secs().max(1) * 1000) as i64,
            windows: HashMap::new(),
            rejected: 0,
        }
    }

    /// `StorageResolution` of what an interval sends: 1 below a minute.
    pub fn storage_resolution(&self) -> u8 {
        if self.interval_ms < 60_000 { 1 } else { 60 }
    }

    /// Adds `values` to the window of `timestamp_ms` for this series.
    pub fn add(
        &mut self,
        name: &Arc<str>,
        dimensions: &Dimensions,
        unit: &Arc<str>,
        timestamp_ms: i64,
        values: &Exact,
    ) {
        let start = timestamp_ms - timestamp_ms.rem_euclid(self.interval_ms);
        let window = self
            .windows
            .entry((name.clone(), dimensions.clone(), start))
            .or_insert_with(|| Window {
                unit: unit.clone(),
                timestamp_ms,
                values: Exact::default(),
            });
        window.values.merge(values);
    }

    /// Adds one value as an entry of weight 1.
    ///
    /// # Errors
    /// CloudWatch or the buckets cannot take it (negative, NaN, out of range); it is counted
    /// in `rejected`.
    pub fn add_value(
        &mut self,
        name: &Arc<str>,
        dimensions: &Dimensions,
        unit: &Arc<str>,
        timestamp_ms: i64,
        value: f64,
    ) -> Result<(), Rejected> {
        let mut one = Exact::default();
        if let Err(err) = one.add(value, 1.0) {
            self.rejected += 1;
            return Err(err);
        }
        self.add(name, dimensions, unit, timestamp_ms, &one);
        Ok(())
    }

    /// Sends every window: one datum per 150 buckets of each.
    pub fn flush(&mut self, out: &mut Vec<MetricDatum>) {
        let storage_resolution = self.storage_resolution();
        for ((name, dimensions, _), window) in self.windows.drain() {
            for distribution in window.values.into_distributions() {
                out.push(MetricDatum {
                    metric_name: name.clone(),
                    dimensions: dimensions.clone(),
                    value: 0.0,
                    unit: window.unit.clone(),
                    timestamp_ms: window.timestamp_ms,
                    storage_resolution,
                    distribution: Some(Box::new(distribution)),
                });
            }
        }
    }

    /// Open windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window is open.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Time from `now_ms` to the next wall-clock multiple of the interval, when windows are
    /// sent.
    pub fn until_next_flush(&self, now_ms: i64) -> Duration {
        let left = self.interval_ms - now_ms.rem_euclid(self.interval_ms);
        Duration::from_millis(left as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(host: &str) -> Dimensions {
        vec![(Arc::from("host"), Arc::from(host))].into()
    }

    #[test]
    fn entries_of_one_window_become_one_datum_stamped_with_the_first() {
        let mut aggregator = Aggregator::new(Duration::from_secs(60));
        let name: Arc<str> = Arc::from("requests");
        let unit: Arc<str> = Arc::from("None");
        // Three 10 s counter sums in the minute starting at 120 s, one in the next minute.
        for (t, v) in [
            (125_000, 4.0),
            (135_000, 6.0),
            (145_000, 4.0),
            (185_000, 1.0),
        ] {
            aggregator
                .add_value(&name, &dims("a"), &unit, t, v)
                .unwrap();
        }
        assert_eq!(aggregator.len(), 2);
        let mut out = Vec::new();
        aggregator.flush(&mut out);
        out.sort_by_key(|d| d.timestamp_ms);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].timestamp_ms, 125_000);
        assert_eq!(out[0].storage_resolution, 60);
        let d = out[0].distribution.as_ref().unwrap();
        assert_eq!(
            (d.sum, d.sample_count, d.minimum, d.maximum),
            (14.0, 3.0, 4.0, 6.0)
        );
        assert_eq!(d.counts, [2.0, 1.0]);
        assert!(aggregator.is_empty());
    }

    #[test]
    fn series_differ_by_name_and_dimensions() {
        let mut aggregator = Aggregator::new(Duration::from_secs(10));
        let unit: Arc<str> = Arc::from("None");
        aggregator
            .add_value(&Arc::from("a"), &dims("x"), &unit, 1_000, 1.0)
            .unwrap();
        aggregator
            .add_value(&Arc::from("a"), &dims("y"), &unit, 1_000, 1.0)
            .unwrap();
        aggregator
            .add_value(&Arc::from("b"), &dims("x"), &unit, 1_000, 1.0)
            .unwrap();
        assert_eq!(aggregator.len(), 3);
        assert_eq!(aggregator.storage_resolution(), 1);
        assert_eq!(
            aggregator.add_value(&Arc::from("a"), &dims("x"), &unit, 1_000, -1.0),
            Err(Rejected::Negative)
        );
        assert_eq!(aggregator.rejected, 1);
    }

    #[test]
    fn windows_are_sent_at_wall_clock_multiples_of_the_interval() {
        let aggregator = Aggregator::new(Duration::from_secs(60));
        assert_eq!(
            aggregator.until_next_flush(1_764_000_010_000),
            Duration::from_secs(50)
        );
        assert_eq!(
            // On a multiple: the whole next interval.
            aggregator.until_next_flush(1_764_000_060_000),
            Duration::from_secs(60)
        );
    }
}
