//! One collection interval of statsd series, as the stock agent's statsd input keeps them
//! between two gathers (`aggregate`, `Gather`, with every `delete_*` on): counters sum,
//! gauges keep the last value (`+x`/`-x` add to the window's, from 0), sets count distinct
//! members, timings and histograms keep every value with its sample-rate weight.
//!
//! Owns the series of the open window, keyed by name, type and sorted tags. [`Window::take`]
//! closes it and starts an empty one: nothing carries over, as in the stock agent. Nothing
//! here reads sockets or builds datums.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::parse::{Kind, Line};
use crate::metrics::distribution::Exact;
use crate::metrics::{is_valid_dimension, is_valid_metric_name};

#[derive(Debug)]
enum Acc {
    Counter(i64),
    Gauge(f64),
    Set(HashSet<String>),
    Values(Exact),
}

#[derive(Debug)]
struct Series {
    name: Arc<str>,
    tags: Vec<(Arc<str>, Arc<str>)>,
    acc: Acc,
}

/// Most series one collection window holds: a sender inventing names (or tag values) is
/// bounded here, its further new series dropped and counted, instead of growing memory.
pub const MAX_SERIES: usize = 100_000;
/// Most distinct members a set counts in one window; beyond, new members are dropped.
pub const MAX_SET_MEMBERS: usize = 100_000;

/// What a closed window holds for one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// A counter's sum, a gauge, or a set's distinct count.
    Number(f64),
    /// A timing's or histogram's values.
    Values(Exact),
}

/// One series of a closed window.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedSeries {
    /// The metric name.
    pub name: Arc<str>,
    /// Its tags, `metric_type` included, sorted by key.
    pub tags: Vec<(Arc<str>, Arc<str>)>,
    /// Its value.
    pub value: Closed,
}

/// The open window.
#[derive(Debug, Default)]
pub struct Window {
    series: HashMap<String, Series>,
    key: String,
    /// Timing and histogram values refused (beyond CloudWatch's range), cumulative.
    pub rejected: u64,
}

impl Window {
    /// Adds every value of `line`; `false` (nothing added) when CloudWatch would refuse its
    /// name or a tag, or the window holds [`MAX_SERIES`] series already and this is a new one.
    pub fn add(&mut self, line: &Line<'_>) -> bool {
        if !is_valid_metric_name(&line.name)
            || !line.tags.iter().all(|(k, v)| is_valid_dimension(k, v))
        {
            return false;
        }
        let mut added = true;
        for value in &line.values {
            let metric_type = value.kind.metric_type();
            let mut tags: Vec<(&str, &str)> = line.tags.clone();
            // A DataDog `metric_type` tag wins, as in the stock agent.
            if !tags.iter().any(|(k, _)| *k == "metric_type") {
                tags.push(("metric_type", metric_type));
            }
            tags.sort_unstable_by(|a, b| a.0.cmp(b.0));
            self.key.clear();
            self.key.push_str(&line.name);
            self.key.push('\u{1}');
            self.key.push_str(metric_type);
            for (k, v) in &tags {
                self.key.push('\u{1}');
                self.key.push_str(k);
                self.key.push('=');
                self.key.push_str(v);
            }
            let full = self.series.len() >= MAX_SERIES;
            let series = match self.series.get_mut(self.key.as_str()) {
                Some(series) => series,
                None if full => {
                    added = false;
                    continue;
                }
                None => {
                    let acc = match value.kind {
                        Kind::Counter => Acc::Counter(0),
                        Kind::Gauge => Acc::Gauge(0.0),
                        Kind::Set => Acc::Set(HashSet::new()),
                        Kind::Timing | Kind::Histogram => Acc::Values(Exact::default()),
                    };
                    let series = Series {
                        name: Arc::from(line.name.as_str()),
                        tags: tags
                            .iter()
                            .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
                            .collect(),
                        acc,
                    };
                    self.series.entry(self.key.clone()).or_insert(series)
                }
            };
            match &mut series.acc {
                Acc::Counter(sum) => *sum = sum.saturating_add(value.number as i64),
                Acc::Gauge(gauge) if value.additive => *gauge += value.number,
                Acc::Gauge(gauge) => *gauge = value.number,
                Acc::Set(members) => {
                    if !members.contains(value.member) {
                        if members.len() >= MAX_SET_MEMBERS {
                            added = false;
                            continue;
                        }
                        members.insert(value.member.to_owned());
                    }
                }
                Acc::Values(values) => {
                    let weight = match value.rate {
                        Some(rate) if rate > 0.0 => 1.0 / rate,
                        _ => 1.0,
                    };
                    if values.add(value.number, weight).is_err() {
                        self.rejected += 1;
                    }
                }
            }
        }
        added
    }

    /// Closes the window: every series with what it gathered, and an empty window after.
    pub fn take(&mut self) -> Vec<ClosedSeries> {
        self.series
            .drain()
            .filter_map(|(_, series)| {
                let value = match series.acc {
                    Acc::Counter(sum) => Closed::Number(sum as f64),
                    Acc::Gauge(gauge) => Closed::Number(gauge),
                    Acc::Set(members) => Closed::Number(members.len() as f64),
                    Acc::Values(values) if values.is_empty() => return None,
                    Acc::Values(values) => Closed::Values(values),
                };
                Some(ClosedSeries {
                    name: series.name,
                    tags: series.tags,
                    value,
                })
            })
            .collect()
    }

    /// Series in the open window.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the open window is empty.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_line;
    use super::*;

    fn feed(window: &mut Window, lines: &[&str]) {
        let mut line = Line::default();
        for text in lines {
            parse_line(text, "_", &mut line).unwrap();
            assert!(window.add(&line), "{text}");
        }
    }

    fn numbers(closed: &[ClosedSeries]) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = closed
            .iter()
            .filter_map(|c| match &c.value {
                Closed::Number(n) => Some((c.name.to_string(), *n)),
                Closed::Values(_) => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn a_window_sums_counters_keeps_the_last_gauge_and_counts_set_members() {
        let mut window = Window::default();
        feed(
            &mut window,
            &[
                "hits:2|c",
                "hits:3|c",
                "temp:10|g",
                "temp:12|g",
                "temp:+3|g",
                "users:a|s",
                "users:b|s",
                "users:a|s",
            ],
        );
        let closed = window.take();
        assert_eq!(
            numbers(&closed),
            [
                ("hits".into(), 5.0),
                ("temp".into(), 15.0),
                ("users".into(), 2.0)
            ]
        );
        let hits = closed.iter().find(|c| &*c.name == "hits").unwrap();
        assert_eq!(
            hits.tags,
            [(Arc::from("metric_type"), Arc::from("counter"))]
        );
        // Nothing carries over: a gauge delta in a new window starts from 0.
        assert!(window.is_empty());
        feed(&mut window, &["temp:-2|g"]);
        assert_eq!(numbers(&window.take()), [("temp".into(), -2.0)]);
    }

    #[test]
    fn tags_in_any_order_are_one_series_and_different_tags_two() {
        let mut window = Window::default();
        feed(
            &mut window,
            &[
                "q:1|c|#a:1,b:2",
                "q:1|c|#b:2,a:1",
                "q,a=1,b=2:1|c",
                "q:1|c|#a:9",
            ],
        );
        assert_eq!(window.len(), 2);
        let closed = window.take();
        let sums: Vec<f64> = {
            let mut s: Vec<f64> = closed
                .iter()
                .map(|c| match c.value {
                    Closed::Number(n) => n,
                    _ => unreachable!(),
                })
                .collect();
            s.sort_by(f64::total_cmp);
            s
        };
        assert_eq!(sums, [1.0, 3.0]);
    }

    #[test]
    fn names_and_tags_cloudwatch_refuses_and_series_beyond_the_bound_are_not_added() {
        assert_eq!((MAX_SERIES, MAX_SET_MEMBERS), (100_000, 100_000));
        let mut window = Window::default();
        let mut line = Line::default();
        let long = format!("{}:1|c", "n".repeat(256));
        parse_line(&long, "_", &mut line).unwrap();
        assert!(!window.add(&line));
        parse_line("ok:1|c|#cl\u{e9}:x", "_", &mut line).unwrap();
        assert!(!window.add(&line));
        assert!(window.is_empty());
        for i in 0..MAX_SERIES {
            let text = format!("s{i}:1|c");
            let mut each = Line::default();
            parse_line(&text, "_", &mut each).unwrap();
            assert!(window.add(&each));
        }
        let mut line = Line::default();
        parse_line("one_more:1|c", "_", &mut line).unwrap();
        assert!(!window.add(&line), "a new series beyond the bound");
        parse_line("s7:1|c", "_", &mut line).unwrap();
        assert!(window.add(&line), "a known series still counts");
    }

    #[test]
    fn timings_keep_every_value_with_its_rate_and_refuse_what_cloudwatch_cannot_take() {
        let mut window = Window::default();
        feed(&mut window, &["t:10|ms", "t:10|ms|@0.5", "t:20|ms"]);
        let closed = window.take();
        let Closed::Values(values) = &closed[0].value else {
            panic!("{closed:?}")
        };
        assert_eq!(values.sample_count(), 4.0);
        assert_eq!(values.len(), 2);
        assert_eq!(
            closed[0].tags,
            [(Arc::from("metric_type"), Arc::from("timing"))]
        );
        // Beyond what CloudWatch takes (2^360).
        feed(&mut window, &["h:1e200|h"]);
        assert_eq!(window.rejected, 1);
        assert!(window.take().is_empty());
    }
}
