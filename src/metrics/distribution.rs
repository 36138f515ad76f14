//! Distributions: many values of one series in one datum, sent as `Values` and `Counts` with
//! `StatisticValues`, as the stock agent sends what statsd and collectd aggregate.
//!
//! Owns the exact distribution ([`Exact`]: each distinct value and its weight, exact minimum,
//! maximum, sum and count) and its conversion into datums' [`Distribution`]s the way the stock
//! exporter does it (`plugins/outputs/cloudwatch/aggregator.go`, `resize`, and
//! `seh1_distribution.go`): values fall into logarithmic buckets of width 1.1 and are sent as the
//! buckets' midpoints, at most [`MAX_VALUES_PER_DATUM`] buckets a datum, with exact statistics
//! per datum. It knows nothing of names, dimensions or requests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MAX_ABS_VALUE;

/// PutMetricData takes at most this many `Values` (and as many `Counts`) in one datum.
pub const MAX_VALUES_PER_DATUM: usize = 150;

/// The stock exporter's bucket width: a value is reported as the midpoint of its bucket
/// `[1.1^b, 1.1^(b+1))`, within 5 % of it.
pub const BUCKET_BASE: f64 = 1.1;

/// The distribution part of one datum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// `Values`: bucket midpoints, ascending.
    pub values: Vec<f64>,
    /// `Counts`, one per value.
    pub counts: Vec<f64>,
    /// `StatisticValues.Minimum`.
    pub minimum: f64,
    /// `StatisticValues.Maximum`.
    pub maximum: f64,
    /// `StatisticValues.Sum`.
    pub sum: f64,
    /// `StatisticValues.SampleCount`.
    pub sample_count: f64,
}

/// Why a value was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Negative values cannot be bucketed; the stock agent drops them too.
    #[error("negative value")]
    Negative,
    /// NaN, infinite, or beyond what CloudWatch takes.
    #[error("value CloudWatch does not take")]
    Unsupported,
    /// A weight that is not a positive finite number.
    #[error("invalid weight")]
    Weight,
}

/// The exact values of one series over one window, as the stock aggregator keeps them before
/// sending (its "regular" distribution).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exact {
    /// Weight by value; the keys are the values' bits, which for non-negative numbers sort
    /// as the numbers do.
    weights: BTreeMap<u64, f64>,
    minimum: f64,
    maximum: f64,
    sum: f64,
    count: f64,
}

impl Exact {
    /// Adds `value` with `weight` (1 for one sample; `1/rate` for a sampled timer).
    ///
    /// # Errors
    /// The value is negative, NaN, infinite or out of CloudWatch's range, or the weight is not
    /// positive.
    pub fn add(&mut self, value: f64, weight: f64) -> Result<(), Rejected> {
        if !value.is_finite() || value.abs() > MAX_ABS_VALUE {
            return Err(Rejected::Unsupported);
        }
        if value < 0.0 {
            return Err(Rejected::Negative);
        }
        if !weight.is_finite() || weight <= 0.0 {
            return Err(Rejected::Weight);
        }
        // -0.0 and 0.0 are one value.
        let value = value + 0.0;
        if self.count == 0.0 {
            self.minimum = value;
            self.maximum = value;
        } else {
            self.minimum = self.minimum.min(value);
            self.maximum = self.maximum.max(value);
        }
        *self.weights.entry(value.to_bits()).or_insert(0.0) += weight;
        self.sum += value * weight;
        self.count += weight;
        Ok(())
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Exact) {
        for (&bits, &weight) in &other.weights {
            // Both were checked when added.
            let _ = self.add(f64::from_bits(bits), weight);
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Distinct values.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// The total weight.
    pub fn sample_count(&self) -> f64 {
        self.count
    }

    /// The datums' distributions: values in ascending order fill buckets, and a datum is
    /// closed when the next value would open its 151st bucket (`resize`). Each has the exact
    /// statistics of its own values.
    pub fn into_distributions(self) -> Vec<Distribution> {
        let mut out = Vec::new();
        let mut current = Chunk::default();
        for (bits, weight) in self.weights {
            let value = f64::from_bits(bits);
            let bucket = bucket_of(value);
            if current.buckets.last().map(|(b, _)| *b) != Some(bucket)
                && current.buckets.len() == MAX_VALUES_PER_DATUM
            {
                out.push(std::mem::take(&mut current).finish());
            }
            current.add(bucket, value, weight);
        }
        if !current.buckets.is_empty() {
            out.push(current.finish());
        }
        out
    }
}

/// A bucket's number: `floor(ln v / ln 1.1)`; 0 has a bucket of its own.
fn bucket_of(value: f64) -> i16 {
    if value == 0.0 {
        i16::MIN
    } else {
        (value.ln() / BUCKET_BASE.ln()).floor() as i16
    }
}

/// The value a bucket is reported as: its midpoint on the logarithmic scale, or 0.
fn midpoint(bucket: i16) -> f64 {
    if bucket == i16::MIN {
        0.0
    } else {
        ((f64::from(bucket) + 0.5) * BUCKET_BASE.ln()).exp()
    }
}

#[derive(Debug, Default)]
struct Chunk {
    /// Buckets in ascending order with their summed weights.
    buckets: Vec<(i16, f64)>,
    minimum: f64,
    maximum: f64,
    sum: f64,
    count: f64,
}

impl Chunk {
    fn add(&mut self, bucket: i16, value: f64, weight: f64) {
        match self.buckets.last_mut() {
            Some((last, total)) if *last == bucket => *total += weight,
            _ => self.buckets.push((bucket, weight)),
        }
        if self.count == 0.0 {
            self.minimum = value;
        }
        // Values come in ascending order.
        self.maximum = value;
        self.sum += value * weight;
        self.count += weight;
    }

    fn finish(self) -> Distribution {
        Distribution {
            values: self.buckets.iter().map(|(b, _)| midpoint(*b)).collect(),
            counts: self.buckets.iter().map(|(_, w)| *w).collect(),
            minimum: self.minimum,
            maximum: self.maximum,
            sum: self.sum,
            sample_count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_per_datum_limit_is_the_documented_one() {
        assert_eq!(MAX_VALUES_PER_DATUM, 150);
    }

    #[test]
    fn values_are_sent_as_bucket_midpoints_with_exact_statistics() {
        let mut exact = Exact::default();
        for (value, weight) in [(1.0, 1.0), (1.01, 1.0), (100.0, 2.0), (0.0, 1.0)] {
            exact.add(value, weight).unwrap();
        }
        let sent = exact.into_distributions();
        assert_eq!(sent.len(), 1);
        let d = &sent[0];
        // 1 and 1.01 share the bucket [1, 1.1); its midpoint is 1.1^0.5.
        assert_eq!(d.values.len(), 3);
        assert_eq!(d.values[0], 0.0);
        assert!(
            (d.values[1] - 1.048_808_848).abs() < 1e-9,
            "{}",
            d.values[1]
        );
        assert!((d.values[2] - 101.75).abs() < 0.01, "{}", d.values[2]);
        assert_eq!(d.counts, [1.0, 2.0, 2.0]);
        assert_eq!((d.minimum, d.maximum), (0.0, 100.0));
        assert_eq!((d.sum, d.sample_count), (202.01, 5.0));
    }

    #[test]
    fn more_than_150_buckets_are_split_into_datums_each_with_its_own_statistics() {
        let mut exact = Exact::default();
        // Each power of 1.2 falls in a bucket of its own.
        let values: Vec<f64> = (0..400).map(|i| 1.2f64.powi(i)).collect();
        for v in &values {
            exact.add(*v, 1.0).unwrap();
        }
        let sent = exact.into_distributions();
        let sizes: Vec<usize> = sent.iter().map(|d| d.values.len()).collect();
        assert_eq!(sizes, [150, 150, 100]);
        assert!(sent.iter().all(|d| d.values.len() == d.counts.len()));
        assert_eq!(sent[0].minimum, 1.0);
        assert_eq!(sent[0].maximum, values[149]);
        assert_eq!(sent[1].minimum, values[150]);
        let total: f64 = sent.iter().map(|d| d.sample_count).sum();
        assert_eq!(total, 400.0);
    }

    #[test]
    fn what_cloudwatch_or_buckets_cannot_take_is_rejected() {
        let mut exact = Exact::default();
        assert_eq!(exact.add(-1.0, 1.0), Err(Rejected::Negative));
        assert_eq!(exact.add(f64::NAN, 1.0), Err(Rejected::Unsupported));
        assert_eq!(exact.add(f64::INFINITY, 1.0), Err(Rejected::Unsupported));
        assert_eq!(exact.add(1.0, 0.0), Err(Rejected::Weight));
        assert!(exact.is_empty());
        assert!(exact.into_distributions().is_empty());
    }

    #[test]
    fn merging_adds_weights_of_equal_values() {
        let mut a = Exact::default();
        a.add(5.0, 1.0).unwrap();
        let mut b = Exact::default();
        b.add(5.0, 2.0).unwrap();
        b.add(-0.0, 1.0).unwrap();
        a.merge(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(a.sample_count(), 4.0);
        assert_eq!(a.into_distributions()[0].counts, [1.0, 3.0]);
    }
}
