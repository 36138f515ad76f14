//! The statsd line protocol as the stock agent's statsd input reads it
//! (`plugins/inputs/statsd/statsd.go`, `parseStatsdLine`, with `parse_data_dog_tags` on):
//! `bucket[,k=v...]:value|type[|@rate][|#k:v,...]`, several `:value|type` parts per line.
//!
//! Owns the parsing of one line into borrowed parts; it allocates only for a name whose
//! `.`-separated parts are joined with `metric_separator`. Nothing here keeps state.

/// The statsd types the stock agent accepts (`d` is not one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `c`.
    Counter,
    /// `g`.
    Gauge,
    /// `s`.
    Set,
    /// `ms`.
    Timing,
    /// `h`.
    Histogram,
}

impl Kind {
    /// The `metric_type` dimension.
    pub fn metric_type(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Set => "set",
            Kind::Timing => "timing",
            Kind::Histogram => "histogram",
        }
    }
}

/// One `:value|type` part of a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Value<'a> {
    /// The type.
    pub kind: Kind,
    /// The number (counters truncated toward 0 and divided by the rate, as the stock agent
    /// does); 0 for a set.
    pub number: f64,
    /// A set's member.
    pub member: &'a str,
    /// A gauge given as `+x` or `-x`: added to the window's gauge.
    pub additive: bool,
    /// `@rate`, if given and valid.
    pub rate: Option<f64>,
}

/// Why a line, or the rest of it, was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// No `:` after the bucket.
    #[error("no ':' in the line")]
    NoValue,
    /// A `:` part without `|type`.
    #[error("no '|' type in \"{0}\"")]
    NoType(String),
    /// A type other than c, g, s, ms and h.
    #[error("unsupported type \"{0}\"")]
    UnsupportedType(String),
    /// A number that does not parse, or a sign on a set, timing or histogram.
    #[error("invalid value \"{0}\"")]
    InvalidValue(String),
    /// An empty name.
    #[error("empty name")]
    EmptyName,
}

/// A parsed line: its series and its values.
#[derive(Debug, Default)]
pub struct Line<'a> {
    /// The metric name, `.` parts joined with the separator.
    pub name: String,
    /// Tags from the bucket (`name,k=v`), then DataDog tags (`|#k:v`), later ones winning.
    pub tags: Vec<(&'a str, &'a str)>,
    /// The values, in order.
    pub values: Vec<Value<'a>>,
}

/// A DataDog tag without a value gets this one, as in the stock agent.
pub const EMPTY_TAG_VALUE: &str = "<empty>";

/// Parses `text` (one line, already trimmed) into `line` (cleared first), joining the name's
/// parts with `separator`.
///
/// # Errors
/// The line is malformed. Values parsed before the fault are kept in `line`, as the stock
/// agent aggregates them before it gives up on the rest.
pub fn parse_line<'a>(
    text: &'a str,
    separator: &str,
    line: &mut Line<'a>,
) -> Result<(), LineError> {
    line.name.clear();
    line.tags.clear();
    line.values.clear();
    // DataDog tags: every `|`-segment starting with `#`, wherever it is.
    for segment in text.split('|').filter(|s| s.starts_with('#')) {
        for tag in segment[1..].split(',') {
            let (key, value) = match tag.split_once(':') {
                Some((k, v)) => (k, v),
                None => (tag, EMPTY_TAG_VALUE),
            };
            if !key.is_empty() {
                push_tag(&mut line.tags, key, value);
            }
        }
    }
    let mut parts = ColonParts::new(text);
    let bucket = parts.next().unwrap_or("");
    let mut bucket_parts = bucket.split(',');
    let name = bucket_parts.next().unwrap_or("");
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    // Bucket tags come first; DataDog tags, parsed above, win over them.
    let dd_count = line.tags.len();
    for tag in bucket_parts {
        if let Some((key, value)) = tag.split_once('=')
            && !line.tags[..dd_count].iter().any(|(k, _)| *k == key)
        {
            push_tag(&mut line.tags, key, value);
        }
    }
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            line.name.push_str(separator);
        }
        line.name.push_str(part);
    }
    for part in parts {
        // Without its DataDog segments: `5|c|#a:b` and `5|c|@0.5|#a:b`.
        let mut fields = part.split('|').filter(|s| !s.starts_with('#'));
        let value = fields.next().unwrap_or("");
        let Some(kind) = fields.next() else {
            return Err(LineError::NoType(part.to_owned()));
        };
        let rate = fields
            .next()
            .and_then(|r| r.strip_prefix('@'))
            .and_then(|r| r.parse::<f64>().ok());
        line.values.push(parse_value(value, kind, rate)?);
    }
    if line.values.is_empty() {
        return Err(LineError::NoValue);
    }
    Ok(())
}

/// `text` split at each `:` outside DataDog segments (`|#k:v,...`, up to the next `|`): the
/// stock agent removes those segments before it splits the line at `:`.
struct ColonParts<'a> {
    text: &'a str,
    start: usize,
    done: bool,
}

impl<'a> ColonParts<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            start: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for ColonParts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let bytes = self.text.as_bytes();
        let mut in_tags = false;
        for i in self.start..bytes.len() {
            match bytes[i] {
                b'|' => in_tags = bytes.get(i + 1) == Some(&b'#'),
                b':' if !in_tags => {
                    let part = &self.text[self.start..i];
                    self.start = i + 1;
                    return Some(part);
                }
                _ => {}
            }
        }
        self.done = true;
        Some(&self.text[self.start..])
    }
}

fn push_tag<'a>(tags: &mut Vec<(&'a str, &'a str)>, key: &'a str, value: &'a str) {
    match tags.iter_mut().find(|(k, _)| *k == key) {
        Some(existing) => existing.1 = value,
        None => tags.push((key, value)),
    }
}

fn parse_value<'a>(value: &'a str, kind: &str, rate: Option<f64>) -> Result<Value<'a>, LineError> {
    let kind = match kind {
        "c" => Kind::Counter,
        "g" => Kind::Gauge,
        "s" => Kind::Set,
        "ms" => Kind::Timing,
        "h" => Kind::Histogram,
        other => return Err(LineError::UnsupportedType(other.to_owned())),
    };
    let signed = value.starts_with(['+', '-']);
    if signed && !matches!(kind, Kind::Gauge | Kind::Counter) {
        return Err(LineError::InvalidValue(value.to_owned()));
    }
    let invalid = || LineError::InvalidValue(value.to_owned());
    let number = match kind {
        Kind::Set => 0.0,
        Kind::Counter => {
            // ParseInt, else the float truncated toward 0; then divided by the rate and
            // truncated again (`int64(float64(v) / rate)`).
            let n = match value.parse::<i64>() {
                Ok(n) => n,
                Err(_) => value.parse::<f64>().map_err(|_| invalid())?.trunc() as i64,
            };
            match rate {
                Some(rate) if rate != 0.0 => (n as f64 / rate).trunc(),
                _ => n as f64,
            }
        }
        _ => value.parse::<f64>().map_err(|_| invalid())?,
    };
    if !number.is_finite() {
        return Err(invalid());
    }
    Ok(Value {
        kind,
        number,
        member: if kind == Kind::Set { value } else { "" },
        additive: kind == Kind::Gauge && signed,
        rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed<'a> = (String, Vec<(String, String)>, Vec<Value<'a>>);

    fn parse(text: &str) -> Result<Parsed<'_>, LineError> {
        let mut line = Line::default();
        parse_line(text, "_", &mut line)?;
        let tags = line
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok((line.name, tags, line.values))
    }

    #[test]
    fn counters_gauges_sets_timers_and_histograms() {
        let (name, tags, values) = parse("api.requests:3|c").unwrap();
        assert_eq!(name, "api_requests");
        assert!(tags.is_empty());
        assert_eq!((values[0].kind, values[0].number), (Kind::Counter, 3.0));
        assert!(parse("temp:-4.5|g").unwrap().2[0].additive);
        assert!(!parse("temp:4.5|g").unwrap().2[0].additive);
        assert_eq!(parse("users:alice|s").unwrap().2[0].member, "alice");
        assert_eq!(parse("latency:12.5|ms").unwrap().2[0].kind, Kind::Timing);
        assert_eq!(parse("size:7|h").unwrap().2[0].kind, Kind::Histogram);
    }

    #[test]
    fn sample_rates_scale_counters_with_truncation() {
        let values = parse("hits:3|c|@0.1").unwrap().2;
        assert_eq!((values[0].number, values[0].rate), (30.0, Some(0.1)));
        // 2.9 is truncated to 2 first, then 2 / 0.3 = 6.67 truncated to 6.
        assert_eq!(parse("hits:2.9|c|@0.3").unwrap().2[0].number, 6.0);
        assert_eq!(parse("t:5|ms|@0.5").unwrap().2[0].rate, Some(0.5));
        // A rate that does not parse is ignored, and the value kept.
        assert_eq!(parse("hits:3|c|0.1").unwrap().2[0].number, 3.0);
    }

    #[test]
    fn several_values_in_one_line_each_count() {
        let values = parse("a:1|c:2|g").unwrap().2;
        assert_eq!(
            values
                .iter()
                .map(|v| (v.kind, v.number))
                .collect::<Vec<_>>(),
            [(Kind::Counter, 1.0), (Kind::Gauge, 2.0)]
        );
    }

    #[test]
    fn bucket_and_datadog_tags_become_tags_and_datadog_wins() {
        let (name, tags, _) =
            parse("web.hits,region=eu,tier=1:1|c|#tier:2,canary,:x,env:prod").unwrap();
        assert_eq!(name, "web_hits");
        assert_eq!(
            tags,
            [
                ("tier".into(), "2".into()),
                ("canary".into(), EMPTY_TAG_VALUE.into()),
                ("env".into(), "prod".into()),
                ("region".into(), "eu".into()),
            ]
        );
        let (_, tags, values) = parse("q:5|ms|@0.5|#a:b").unwrap();
        assert_eq!(tags, [("a".into(), "b".into())]);
        assert_eq!(values[0].rate, Some(0.5));
    }

    #[test]
    fn malformed_lines_are_refused_with_the_reason() {
        assert_eq!(parse("nocolon").unwrap_err(), LineError::NoValue);
        assert_eq!(parse("a:1").unwrap_err(), LineError::NoType("1".into()));
        assert_eq!(
            parse("a:1|d").unwrap_err(),
            LineError::UnsupportedType("d".into())
        );
        assert_eq!(
            parse("a:x|c").unwrap_err(),
            LineError::InvalidValue("x".into())
        );
        assert_eq!(
            parse("a:-1|ms").unwrap_err(),
            LineError::InvalidValue("-1".into())
        );
        assert_eq!(parse(":1|c").unwrap_err(), LineError::EmptyName);
        // Values before the fault are kept, as the stock agent has aggregated them.
        let mut line = Line::default();
        assert!(parse_line("a:1|c:2", "_", &mut line).is_err());
        assert_eq!(line.values.len(), 1);
    }

    #[test]
    fn the_separator_joins_name_parts() {
        let mut line = Line::default();
        parse_line("a.b.c:1|c", ".", &mut line).unwrap();
        assert_eq!(line.name, "a.b.c");
        parse_line("a.b.c:1|c", "__", &mut line).unwrap();
        assert_eq!(line.name, "a__b__c");
    }
}
