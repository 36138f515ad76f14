//! The one place that reads an SDK failure: what kind it is, whether to retry, and a message an
//! operator can act on.
//!
//! Owns [`AwsError`] and its classification. Shippers ask [`AwsError::is_retryable`] and
//! nothing else; no other module inspects SDK error types. Messages name the operation and the
//! endpoint and never contain credentials (the SDK does not put keys in errors, and credential
//! errors come from `credentials`, which never formats a key).

use std::error::Error as StdError;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What went wrong, as far as deciding what to do next is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// No connection: refused, reset, DNS failure, TLS failure.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// The service asked us to slow down.
    Throttled,
    /// The service failed (5xx).
    ServerError,
    /// Credentials could not be loaded.
    Credentials,
    /// The service refused our identity or permissions (403, bad signature, unknown key).
    AccessDenied,
    /// The log group or stream does not exist.
    NotFound,
    /// The service refused the request itself (4xx other than the above).
    InvalidRequest,
    /// Another client error (an unknown 4xx code, a proxy's answer, a clock skew): not a verdict
    /// on the data, so it is retried like an outage.
    OtherClientError,
    /// The answer could not be understood.
    BadResponse,
}

/// An SDK failure, classified, with an operator-facing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The API operation that failed (`PutLogEvents`).
    pub operation: &'static str,
    /// The classification.
    pub kind: AwsErrorKind,
    /// The service's error code, when it sent one (`ThrottlingException`).
    pub code: Option<String>,
    /// `operation to endpoint: detail`.
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for AwsError {}

impl AwsError {
    /// Whether sending again later can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            AwsErrorKind::Unreachable
                | AwsErrorKind::Timeout
                | AwsErrorKind::Throttled
                | AwsErrorKind::ServerError
        )
    }

    /// Whether to give up on this request for good: only when the service refused the request
    /// itself, so sending it again cannot succeed. Everything else (outages, throttling, bad
    /// credentials an operator can fix, garbled answers) keeps the data and tries again later.
    pub fn gives_up(&self) -> bool {
        self.kind == AwsErrorKind::InvalidRequest
    }

    /// What a failed logs request means for its destination (see [`Disposition`]). A
    /// ResourceNotFound that reaches here came after the shipper created the stream, so it
    /// counts as a refusal.
    pub fn disposition(&self) -> Disposition {
        match self.kind {
            AwsErrorKind::Throttled => Disposition::Throttled,
            AwsErrorKind::Unreachable
            | AwsErrorKind::Timeout
            | AwsErrorKind::ServerError
            | AwsErrorKind::Credentials
            | AwsErrorKind::OtherClientError
            | AwsErrorKind::BadResponse => Disposition::Transient,
            AwsErrorKind::AccessDenied | AwsErrorKind::NotFound => Disposition::Refused,
            AwsErrorKind::InvalidRequest
                if self.operation == "PutLogEvents" && self.about_events() =>
            {
                Disposition::BadEvents
            }
            AwsErrorKind::InvalidRequest => Disposition::Refused,
        }
    }

    /// Whether a refused request's answer is about its events (their size, count, time or
    /// order), rather than about the request as a whole (a name, a key, a parameter).
    /// CloudWatch names the event field (`logEvents.3.member.message`) or says what of the
    /// events is wrong ("Log event too large", "must be in chronological order", "cannot span
    /// more than 24 hours", "Upload too large").
    fn about_events(&self) -> bool {
        // Only the service's own words count: not the operation's name ("PutLogEvents") or the
        // endpoint before them, nor a quoted value (a configured stream name may say anything).
        let mut text = match &self.code {
            Some(code) => self
                .message
                .split_once(&format!("{code}: "))
                .map_or(self.message.as_str(), |(_, text)| text),
            None => self.message.as_str(),
        }
        .replace(self.operation, "")
        .to_ascii_lowercase();
        if let Some(start) = text.find("value '")
            && let Some(end) = text.rfind("' at '")
            && end > start
        {
            text.replace_range(start..end + 1, "value");
        }
        [
            "logevents",
            "log event",
            "chronological",
            "24 hours",
            "too large",
            "exceeds",
        ]
        .iter()
        .any(|needle| text.contains(needle))
    }

    /// The IAM permission (or key policy) the failed operation needs, for messages.
    pub fn permission(&self) -> String {
        let kms = self
            .code
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("kms"))
            || self.message.to_ascii_lowercase().contains("kms");
        if kms {
            "the log group's KMS key policy must allow CloudWatch Logs kms:Encrypt* and kms:GenerateDataKey*".into()
        } else {
            format!("logs:{}", self.operation)
        }
    }

    /// Classifies a failure of `operation` sent to `endpoint`.
    pub fn from_sdk<E>(
        operation: &'static str,
        endpoint: &str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let detail = error_chain(err);
        let (kind, code, what) = match err {
            SdkError::DispatchFailure(failure) => {
                let kind = if has_credentials_error(err) {
                    AwsErrorKind::Credentials
                } else if failure.is_timeout() {
                    AwsErrorKind::Timeout
                } else {
                    AwsErrorKind::Unreachable
                };
                (kind, None, describe_dispatch(kind))
            }
            SdkError::TimeoutError(_) => (AwsErrorKind::Timeout, None, "no answer in time"),
            SdkError::ConstructionFailure(_) if has_credentials_error(err) => {
                (AwsErrorKind::Credentials, None, "cannot load credentials")
            }
            SdkError::ConstructionFailure(_) => (
                AwsErrorKind::InvalidRequest,
                None,
                "cannot build the request",
            ),
            SdkError::ResponseError(response) => {
                let status = response.raw().status().as_u16();
                let kind = classify_status(status, None);
                (
                    if matches!(
                        kind,
                        AwsErrorKind::InvalidRequest | AwsErrorKind::OtherClientError
                    ) {
                        AwsErrorKind::BadResponse
                    } else {
                        kind
                    },
                    None,
                    "unreadable answer",
                )
            }
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().map(str::to_owned);
                (classify_status(status, code.as_deref()), code, "refused")
            }
            _ if has_credentials_error(err) => {
                (AwsErrorKind::Credentials, None, "cannot load credentials")
            }
            _ => (AwsErrorKind::InvalidRequest, None, "failed"),
        };
        let message = match (&code, err) {
            (Some(code), SdkError::ServiceError(service)) => {
                let text = clip(service.err().message().unwrap_or(""));
                format!("{operation} to {endpoint} {what}: {code}: {text}")
            }
            _ => format!("{operation} to {endpoint} {what}: {}", clip(&detail)),
        };
        Self {
            operation,
            kind,
            code,
            message,
        }
    }
}

/// What a failed logs request means for its destination: decided in one place,
/// [`AwsError::disposition`], and acted on by the shipper alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// An outage, a 5xx, a timeout, a garbled answer, credentials that cannot be loaded:
    /// sent again after a short, capped backoff.
    Transient,
    /// The account's request quota: the process slows down for every stream, and the data
    /// waits to go out merged with what follows it.
    Throttled,
    /// Something no quick retry fixes: a permission or KMS key policy, a refused create, a
    /// group that is gone again after its creation, a request refused as a whole. Tried again
    /// with a long backoff, for as long as cwlite runs; never given up.
    Refused,
    /// CloudWatch refused events of the request (size, count, time, order): the shipper
    /// isolates the refused event and gives only that one up.
    BadEvents,
}

/// Most characters of an answer's text kept in a message: an endpoint (or a proxy in front of
/// it) may answer with megabytes, and every retry logs the message.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// `text` cut to [`MAX_MESSAGE_CHARS`], saying how much was left out.
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

/// Each error of the chain once, joined by ": " (the SDK's own display adds a Debug dump that
/// makes log lines unreadable).
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

fn describe_dispatch(kind: AwsErrorKind) -> &'static str {
    match kind {
        AwsErrorKind::Credentials => "cannot load credentials",
        AwsErrorKind::Timeout => "timed out",
        _ => "cannot reach the endpoint",
    }
}

fn has_credentials_error(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Maps an HTTP status and error code to a kind; codes win over statuses.
fn classify_status(status: u16, code: Option<&str>) -> AwsErrorKind {
    match code {
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
            | "LimitExceeded",
        ) => {
            return AwsErrorKind::Throttled;
        }
        Some(
            "ServiceUnavailableException"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalServiceError"
            | "InternalServiceFault",
        ) => {
            return AwsErrorKind::ServerError;
        }
        Some("ResourceNotFoundException") => return AwsErrorKind::NotFound,
        // A KMS key that is disabled, missing, or whose policy leaves CloudWatch Logs out.
        Some(code) if code.to_ascii_lowercase().contains("kms") => {
            return AwsErrorKind::AccessDenied;
        }
        Some(
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken",
        ) => return AwsErrorKind::AccessDenied,
        // The service's verdict that this request's content is wrong: sending it again cannot help.
        Some(
            "InvalidParameterValue"
            | "InvalidParameterValueException"
            | "InvalidParameterCombination"
            | "InvalidParameterException"
            | "MissingParameter"
            | "MissingRequiredParameter"
            | "ValidationError"
            | "ValidationException"
            | "SerializationException",
        ) => return AwsErrorKind::InvalidRequest,
        _ => {}
    }
    match status {
        429 => AwsErrorKind::Throttled,
        401 | 403 => AwsErrorKind::AccessDenied,
        404 => AwsErrorKind::NotFound,
        500..=599 => AwsErrorKind::ServerError,
        _ => AwsErrorKind::OtherClientError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(
            classify_status(400, Some("ThrottlingException")),
            AwsErrorKind::Throttled
        );
        assert_eq!(
            classify_status(400, Some("ResourceNotFoundException")),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify_status(400, Some("UnrecognizedClientException")),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(
            classify_status(400, Some("InvalidParameterException")),
            AwsErrorKind::InvalidRequest
        );
        assert_eq!(classify_status(503, None), AwsErrorKind::ServerError);
        assert_eq!(classify_status(429, None), AwsErrorKind::Throttled);
        assert_eq!(classify_status(403, None), AwsErrorKind::AccessDenied);
    }

    #[test]
    fn only_transient_kinds_are_retried() {
        let error = |kind| AwsError {
            operation: "PutLogEvents",
            kind,
            code: None,
            message: String::new(),
        };
        for kind in [
            AwsErrorKind::Unreachable,
            AwsErrorKind::Timeout,
            AwsErrorKind::Throttled,
            AwsErrorKind::ServerError,
        ] {
            assert!(error(kind).is_retryable(), "{kind:?}");
        }
        for kind in [
            AwsErrorKind::Credentials,
            AwsErrorKind::AccessDenied,
            AwsErrorKind::NotFound,
            AwsErrorKind::InvalidRequest,
            AwsErrorKind::BadResponse,
        ] {
            assert!(!error(kind).is_retryable(), "{kind:?}");
        }
    }

    #[test]
    fn unknown_client_errors_are_not_verdicts_on_the_data() {
        assert_eq!(
            classify_status(400, Some("RequestExpired")),
            AwsErrorKind::OtherClientError
        );
        assert_eq!(classify_status(400, None), AwsErrorKind::OtherClientError);
        assert_eq!(
            classify_status(400, Some("InvalidParameterValue")),
            AwsErrorKind::InvalidRequest
        );
        let error = AwsError {
            operation: "PutLogEvents",
            kind: AwsErrorKind::OtherClientError,
            code: None,
            message: String::new(),
        };
        assert!(!error.gives_up());
    }

    #[test]
    fn only_a_refused_request_is_given_up() {
        let error = |kind| AwsError {
            operation: "PutLogEvents",
            kind,
            code: None,
            message: String::new(),
        };
        assert!(error(AwsErrorKind::InvalidRequest).gives_up());
        for kind in [
            AwsErrorKind::Unreachable,
            AwsErrorKind::Throttled,
            AwsErrorKind::Credentials,
            AwsErrorKind::AccessDenied,
            AwsErrorKind::BadResponse,
        ] {
            assert!(!error(kind).gives_up(), "{kind:?}");
        }
    }

    #[test]
    fn only_answers_about_events_isolate_events_and_refusals_of_the_request_wait() {
        let refused = |kind, code: &str, text: &str| AwsError {
            operation: "PutLogEvents",
            kind,
            code: Some(code.into()),
            message: format!("PutLogEvents to http://x refused: {code}: {text}"),
        };
        let invalid = |text| {
            refused(
                AwsErrorKind::InvalidRequest,
                "InvalidParameterException",
                text,
            )
        };
        for text in [
            "Log event too large: 1048600 bytes exceeds limit of 1048576",
            "Log events in a single PutLogEvents request must be in chronological order.",
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            "1 validation error detected: Value '' at 'logEvents.1.member.message' failed to satisfy constraint",
            "logEvents.3 has an empty message",
        ] {
            assert_eq!(
                invalid(text).disposition(),
                Disposition::BadEvents,
                "{text}"
            );
        }
        for text in [
            "1 validation error detected: Value 'a:b' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*",
            "1 validation error detected: Value 'too large logevents: x' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*",
            "The specified KMS key is disabled",
        ] {
            assert_eq!(invalid(text).disposition(), Disposition::Refused, "{text}");
        }
        let denied = refused(
            AwsErrorKind::AccessDenied,
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/cw is not authorized to perform: logs:PutLogEvents",
        );
        assert_eq!(denied.disposition(), Disposition::Refused);
        assert_eq!(denied.permission(), "logs:PutLogEvents");
        assert_eq!(
            classify_status(400, Some("KmsAccessDeniedException")),
            AwsErrorKind::AccessDenied
        );
        let kms = refused(
            AwsErrorKind::AccessDenied,
            "KmsAccessDeniedException",
            "denied",
        );
        assert!(
            kms.permission().contains("KMS key policy"),
            "{}",
            kms.permission()
        );
        assert_eq!(
            refused(
                AwsErrorKind::Throttled,
                "ThrottlingException",
                "Rate exceeded"
            )
            .disposition(),
            Disposition::Throttled
        );
        assert_eq!(
            refused(AwsErrorKind::ServerError, "ServiceUnavailableException", "").disposition(),
            Disposition::Transient
        );
    }

    #[test]
    fn a_huge_answer_text_is_clipped_in_the_message() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let clipped = clip(&long);
        assert!(clipped.starts_with(&"é".repeat(MAX_MESSAGE_CHARS)));
        assert!(clipped.ends_with("… (20 more bytes)"), "{clipped}");
        assert_eq!(clip("short"), "short");
    }
}
