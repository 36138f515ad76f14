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

/// The values of one series over one window, as the stock aggregator sends them: each value
/// lands in its bucket, which keeps its weight and the exact minimum, maximum and sum of what
/// it received. A datum is whole buckets, so this is all a datum needs, and a series holds at
/// most one entry per bucket however many distinct values a sender makes up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exact {
    /// By bucket number, ascending, which is the values' order.
    buckets: BTreeMap<i16, Bucket>,
    count: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    weight: f64,
    minimum: f64,
    maximum: f64,
    sum: f64,
}

impl Exact {
    /// Adds `value` with `weight` (1 for one sample; `1/rate` for a sampled timer).
    ///
    /// # Errors
    /// The value is negative, NaN, infinite or out of CloudWatch's range, the weight is not
    /// positive, or the sum or count would leave CloudWatch's range.
    pub fn add(&mut self, value: f64, weight: f64) -> Result<(), Rejected> {
        if !value.is_finite() || value.abs() > MAX_ABS_VALUE {
            return Err(Rejected::Unsupported);
        }
        if value < 0.0 {
            return Err(Rejected::Negative);
        }
        if !weight.is_finite() || weight <= 0.0 || weight > MAX_ABS_VALUE {
            return Err(Rejected::Weight);
        }
        // -0.0 and 0.0 are one value.
        let value = value + 0.0;
        let bucket = bucket_of(value);
        let added = value * weight;
        let fits =
            |total: f64, more: f64| (total + more).is_finite() && total + more <= MAX_ABS_VALUE;
        let current = self.buckets.get(&bucket);
        if !fits(current.map_or(0.0, |b| b.sum), added) || !fits(self.count, weight) {
            return Err(Rejected::Unsupported);
        }
        let entry = self.buckets.entry(bucket).or_insert(Bucket {
            weight: 0.0,
            minimum: value,
            maximum: value,
            sum: 0.0,
        });
        entry.weight += weight;
        entry.minimum = entry.minimum.min(value);
        entry.maximum = entry.maximum.max(value);
        entry.sum += added;
        self.count += weight;
        Ok(())
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Exact) {
        for (&number, theirs) in &other.buckets {
            let fits = self
                .buckets
                .get(&number)
                .is_none_or(|ours| (ours.sum + theirs.sum).is_finite())
                && (self.count + theirs.weight).is_finite();
            if !fits {
                continue;
            }
            let ours = self.buckets.entry(number).or_insert(Bucket {
                weight: 0.0,
                minimum: theirs.minimum,
                maximum: theirs.maximum,
                sum: 0.0,
            });
            ours.weight += theirs.weight;
            ours.minimum = ours.minimum.min(theirs.minimum);
            ours.maximum = ours.maximum.max(theirs.maximum);
            ours.sum += theirs.sum;
            self.count += theirs.weight;
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Buckets in use (at most a few hundred for any real range of values).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// The total weight.
    pub fn sample_count(&self) -> f64 {
        self.count
    }

    /// The datums' distributions: buckets in ascending order, at most
    /// [`MAX_VALUES_PER_DATUM`] a datum (`resize`), each datum with the exact statistics of
    /// its own values.
    pub fn into_distributions(self) -> Vec<Distribution> {
        let buckets: Vec<(i16, Bucket)> = self.buckets.into_iter().collect();
        buckets
            .chunks(MAX_VALUES_PER_DATUM)
            .map(|chunk| Distribution {
                values: chunk.iter().map(|(b, _)| midpoint(*b)).collect(),
                counts: chunk.iter().map(|(_, b)| b.weight).collect(),
                minimum: chunk[0].1.minimum,
                maximum: chunk[chunk.len() - 1].1.maximum,
                sum: chunk.iter().map(|(_, b)| b.sum).sum(),
                sample_count: chunk.iter().map(|(_, b)| b.weight).sum(),
            })
            .collect()
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
    fn a_weight_or_sum_beyond_cloudwatchs_range_is_rejected_not_sent_as_infinity() {
        let mut exact = Exact::default();
        exact.add(1e9, 1.0).unwrap();
        assert_eq!(exact.add(1e9, 1e300), Err(Rejected::Weight));
        assert_eq!(exact.add(1e108, 1e10), Err(Rejected::Unsupported));
        let sent = exact.into_distributions();
        assert!(sent[0].sum.is_finite() && sent[0].sample_count == 1.0);
    }

    #[test]
    fn many_distinct_values_take_one_entry_per_bucket() {
        let mut exact = Exact::default();
        for i in 0..100_000 {
            exact.add(1000.0 + f64::from(i) * 1e-3, 1.0).unwrap();
        }
        // 1000 to 1100 spans one or two buckets of 1.1.
        assert!(exact.len() <= 2, "{}", exact.len());
        assert_eq!(exact.sample_count(), 100_000.0);
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
        assert_eq!(a.len(), 2, "buckets of 0 and 5");
        assert_eq!(a.sample_count(), 4.0);
        assert_eq!(a.into_distributions()[0].counts, [1.0, 3.0]);
    }
}
