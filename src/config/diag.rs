//! Diagnostics for configuration: where a problem is (file and JSON path) and what it is.
//!
//! Owns [`JsonPath`], [`Diagnostic`], [`ConfigErrors`] and the [`Provenance`] map that remembers
//! which file supplied each part of a merged configuration. It knows nothing about what the keys
//! mean; the loader and the validator decide that.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One step into a JSON document: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of an object.
    Key(String),
    /// An index into an array.
    Index(usize),
}

/// A position inside the JSON configuration, displayed as `metrics.metrics_collected.cpu.measurement[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(Vec<Segment>);

impl JsonPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Builds a path from dotted keys, for tests and fixed locations (`"logs.log_stream_name"`).
    pub fn parse_dotted(dotted: &str) -> Self {
        Self(
            dotted
                .split('.')
                .filter(|k| !k.is_empty())
                .map(|k| Segment::Key(k.to_owned()))
                .collect(),
        )
    }

    /// This path extended by an object key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The enclosing path, `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        if self.0.is_empty() {
            None
        } else {
            Some(Self(self.0[..self.0.len() - 1].to_vec()))
        }
    }

    /// True for the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends a path produced by `serde_path_to_error` (relative to `self`).
    pub fn join_serde(&self, inner: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let mut segments = self.0.clone();
        for segment in inner.iter() {
            match segment {
                S::Map { key } => segments.push(Segment::Key(key.clone())),
                S::Seq { index } => segments.push(Segment::Index(*index)),
                S::Enum { variant } => segments.push(Segment::Key(variant.clone())),
                S::Unknown => {}
            }
        }
        Self(segments)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.0 {
            match segment {
                Segment::Key(key) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// One error or warning, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the offending value came from, when known.
    pub file: Option<PathBuf>,
    /// Where inside the JSON document; the root for whole-file problems.
    pub path: JsonPath,
    /// Line and column for syntax errors, 1-based.
    pub position: Option<(usize, usize)>,
    /// What is wrong, lowercase, without a final period.
    pub message: String,
}

impl Diagnostic {
    /// A problem with a whole file (unreadable, not a directory, ...).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: Some(file.to_owned()),
            path: JsonPath::root(),
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, column)) = self.position {
                write!(f, ":{line}:{column}")?;
            }
            f.write_str(": ")?;
        }
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in one pass over the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Remembers which file supplied each part of a merged document.
///
/// Only the point where a file first contributed a subtree is recorded; a lookup walks up the
/// path until it finds one, so a deep error is attributed to the file that brought its subtree.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    origins: HashMap<JsonPath, PathBuf>,
}

impl Provenance {
    /// Records that `file` supplied the value at `path`.
    pub fn record(&mut self, path: JsonPath, file: &Path) {
        self.origins.insert(path, file.to_owned());
    }

    /// The file that supplied the value at `path` (or the nearest recorded ancestor).
    pub fn file_of(&self, path: &JsonPath) -> Option<&Path> {
        let mut current = Some(path.clone());
        while let Some(p) = current {
            if let Some(file) = self.origins.get(&p) {
                return Some(file);
            }
            current = p.parent();
        }
        None
    }
}

/// Collects errors and warnings while walking a configuration, attributing each to its file.
#[derive(Debug, Default)]
pub struct Collector {
    provenance: Provenance,
    /// Errors so far, in the order found.
    pub errors: Vec<Diagnostic>,
    /// Warnings so far, in the order found.
    pub warnings: Vec<Diagnostic>,
}

impl Collector {
    /// A collector that attributes paths through `provenance`.
    pub fn new(provenance: Provenance) -> Self {
        Self {
            provenance,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn diagnostic(&self, path: &JsonPath, message: String) -> Diagnostic {
        Diagnostic {
            file: self.provenance.file_of(path).map(Path::to_owned),
            path: path.clone(),
            position: None,
            message,
        }
    }

    /// Records an error at `path`.
    pub fn error(&mut self, path: &JsonPath, message: impl Into<String>) {
        let diagnostic = self.diagnostic(path, message.into());
        self.errors.push(diagnostic);
    }

    /// Records a warning at `path`.
    pub fn warn(&mut self, path: &JsonPath, message: impl Into<String>) {
        let diagnostic = self.diagnostic(path, message.into());
        self.warnings.push(diagnostic);
    }

    /// Deserializes `value` into `T`, recording a located error instead of failing.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &JsonPath,
        value: &serde_json::Value,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(decoded) => Some(decoded),
            Err(err) => {
                let at = path.join_serde(err.path());
                self.error(&at, err.into_inner().to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_displays_keys_and_indexes() {
        let path = JsonPath::root()
            .key("metrics")
            .key("metrics_collected")
            .key("cpu")
            .key("measurement")
            .index(2);
        assert_eq!(
            path.to_string(),
            "metrics.metrics_collected.cpu.measurement[2]"
        );
    }

    #[test]
    fn provenance_walks_up_to_the_nearest_recorded_ancestor() {
        let mut provenance = Provenance::default();
        provenance.record(JsonPath::parse_dotted("logs"), Path::new("/a.json"));
        provenance.record(
            JsonPath::parse_dotted("logs.logs_collected.files.collect_list").index(1),
            Path::new("/b.json"),
        );
        let deep = JsonPath::parse_dotted("logs.logs_collected.files.collect_list")
            .index(1)
            .key("file_path");
        assert_eq!(provenance.file_of(&deep), Some(Path::new("/b.json")));
        let other = JsonPath::parse_dotted("logs.force_flush_interval");
        assert_eq!(provenance.file_of(&other), Some(Path::new("/a.json")));
        assert_eq!(provenance.file_of(&JsonPath::parse_dotted("metrics")), None);
    }

    #[test]
    fn diagnostic_shows_file_position_path_and_message() {
        let diagnostic = Diagnostic {
            file: Some(PathBuf::from("/etc/a.json")),
            path: JsonPath::parse_dotted("agent.region"),
            position: None,
            message: "must not be empty".into(),
        };
        assert_eq!(
            diagnostic.to_string(),
            "/etc/a.json: agent.region: must not be empty"
        );
        let syntax = Diagnostic {
            position: Some((3, 7)),
            path: JsonPath::root(),
            ..diagnostic
        };
        assert_eq!(syntax.to_string(), "/etc/a.json:3:7: must not be empty");
    }

    #[test]
    fn decode_reports_the_inner_path_of_a_type_error() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Entry {
            retention_in_days: i64,
        }
        let mut collector = Collector::default();
        let value = serde_json::json!({"retention_in_days": "x"});
        let decoded: Option<Entry> =
            collector.decode(&JsonPath::parse_dotted("logs.entry"), &value);
        assert!(decoded.is_none());
        assert_eq!(
            collector.errors[0].path.to_string(),
            "logs.entry.retention_in_days"
        );
        assert!(
            collector.errors[0].message.contains("invalid type"),
            "{}",
            collector.errors[0].message
        );
    }
}
