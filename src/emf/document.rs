//! Where an EMF document goes: the names in it, read as the stock exporter reads them.
//!
//! Owns [`Named`]: `_aws.LogGroupName` (and `_aws.LogStreamName`) first, then top-level
//! `log_group_name` (and `log_stream_name`), as `logToCWLog` in the stock exporter does; Go
//! matches the keys without regard to case, so the camel-case forms the client libraries
//! write are taken too. Everything else in the document is skipped unread (but must be valid
//! JSON). A name CloudWatch would refuse makes the document invalid here, not a refused
//! request for every other document of its batch.

use serde::Deserialize;

use crate::config::validate::{is_valid_log_group_name, is_valid_log_stream_name};

/// Why a document is dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(String),
    /// It names a group or stream CloudWatch refuses.
    #[error("\"{0}\" is not a valid log {1} name")]
    Name(String, &'static str),
}

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "_aws", default)]
    aws: Option<Metadata>,
    #[serde(default, alias = "LOG_GROUP_NAME", alias = "logGroupName")]
    log_group_name: Option<String>,
    #[serde(default, alias = "LOG_STREAM_NAME", alias = "logStreamName")]
    log_stream_name: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(
        rename = "LogGroupName",
        alias = "logGroupName",
        alias = "loggroupname",
        default
    )]
    group: Option<String>,
    #[serde(
        rename = "LogStreamName",
        alias = "logStreamName",
        alias = "logstreamname",
        default
    )]
    stream: Option<String>,
}

/// The group and stream a document names, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    group: Option<String>,
    stream: Option<String>,
}

impl Named {
    /// Reads a document's names.
    ///
    /// # Errors
    /// It is not a JSON object, or a name in it is not one CloudWatch takes.
    pub fn read(text: &[u8]) -> Result<Self, DocumentError> {
        let document: Document =
            serde_json::from_slice(text).map_err(|err| DocumentError::Json(err.to_string()))?;
        let empty = |name: Option<String>| name.filter(|n| !n.is_empty());
        let (group, stream) = match document.aws.map(|m| (empty(m.group), empty(m.stream))) {
            Some((Some(group), stream)) => (Some(group), stream),
            _ => (
                empty(document.log_group_name),
                empty(document.log_stream_name),
            ),
        };
        if let Some(group) = &group
            && !is_valid_log_group_name(group)
        {
            return Err(DocumentError::Name(group.clone(), "group"));
        }
        if let Some(stream) = &stream
            && !is_valid_log_stream_name(stream)
        {
            return Err(DocumentError::Name(stream.clone(), "stream"));
        }
        Ok(Named { group, stream })
    }

    /// The names, each falling back to `defaults` (group, stream).
    pub fn or<'a>(&'a self, defaults: &'a (String, String)) -> (&'a str, &'a str) {
        (
            self.group.as_deref().unwrap_or(&defaults.0),
            self.stream.as_deref().unwrap_or(&defaults.1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Result<(String, String), DocumentError> {
        let defaults = ("emf/logs/default".to_owned(), "host".to_owned());
        Named::read(text.as_bytes()).map(|n| {
            let (g, s) = n.or(&defaults);
            (g.to_owned(), s.to_owned())
        })
    }

    #[test]
    fn aws_metadata_names_come_first_then_top_level_names_then_the_defaults() {
        let pair = |g: &str, s: &str| Ok((g.to_owned(), s.to_owned()));
        assert_eq!(
            names(
                r#"{"_aws":{"LogGroupName":"app-metrics","LogStreamName":"i-1","CloudWatchMetrics":[]},"log_group_name":"other"}"#
            ),
            pair("app-metrics", "i-1")
        );
        assert_eq!(
            names(r#"{"_aws":{"LogGroupName":"app-metrics"},"log_stream_name":"top"}"#),
            pair("app-metrics", "host"),
            "a v1 group takes no top-level stream"
        );
        assert_eq!(
            names(
                r#"{"_aws":{"CloudWatchMetrics":[]},"log_group_name":"g0","log_stream_name":"s0"}"#
            ),
            pair("g0", "s0")
        );
        assert_eq!(names(r#"{"Latency":3}"#), pair("emf/logs/default", "host"));
        assert_eq!(
            names(r#"{"_aws":{"logGroupName":"camel"}}"#),
            pair("camel", "host")
        );
    }

    #[test]
    fn invalid_json_and_names_cloudwatch_refuses_are_errors() {
        assert!(matches!(names("{\"a\":"), Err(DocumentError::Json(_))));
        assert!(matches!(names("[1,2]"), Err(DocumentError::Json(_))));
        assert!(matches!(names("plain text"), Err(DocumentError::Json(_))));
        assert_eq!(
            names(r#"{"_aws":{"LogGroupName":"bad name!"}}"#),
            Err(DocumentError::Name("bad name!".into(), "group"))
        );
        assert_eq!(
            names(r#"{"log_group_name":"g","log_stream_name":"a:b"}"#),
            Err(DocumentError::Name("a:b".into(), "stream"))
        );
    }
}
