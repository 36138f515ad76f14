//! Where a log batch goes: PutLogEvents through the SDK (with stream and group creation and
//! retention), or one JSON line on stdout in a dry run.
//!
//! Owns the translation of [`LogBatch`] into requests and the mapping of failures to `AwsError`.
//! No sequence tokens and no DescribeLogStreams: a put is tried first, and only a
//! ResourceNotFound creates the stream (then the group, with its class) before the put is tried
//! again. It keeps no state between calls; the shipper remembers what was created.

use std::io::Write;

use aws_sdk_cloudwatchlogs::types::LogGroupClass as SdkClass;
use aws_smithy_types::body::SdkBody;

use super::batch::LogBatch;
use super::body::put_log_events_body;
use super::rate::Pace;
use crate::aws::{AwsError, AwsErrorKind};
use crate::config::LogGroupClass;
pub use crate::event::Destination;

/// Events CloudWatch accepted the call for but refused individually.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Events before this index were too old.
    pub too_old_end: Option<i32>,
    /// Events from this index on were too new.
    pub too_new_start: Option<i32>,
    /// Events before this index were older than the group's retention.
    pub expired_end: Option<i32>,
}

impl Rejected {
    /// Whether anything was refused.
    pub fn any(&self) -> bool {
        self.too_old_end.is_some() || self.too_new_start.is_some() || self.expired_end.is_some()
    }
}

/// How CloudWatch Logs is to read a request's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain log events.
    Plain,
    /// Embedded Metric Format: the request says so ([`EMF_HEADER`]), and CloudWatch extracts
    /// the metrics of the events that are EMF documents (plain ones stay plain logs).
    Emf,
}

/// The header that marks a PutLogEvents request as EMF, with its value.
pub const EMF_HEADER: (&str, &str) = ("x-amzn-logs-format", "json/emf");

/// A PutLogEvents destination.
#[derive(Debug, Clone)]
pub enum LogsSink {
    /// The service (or the configured endpoint).
    CloudWatch {
        /// The client.
        client: aws_sdk_cloudwatchlogs::Client,
        /// For messages.
        endpoint: String,
    },
    /// Print the request, send nothing.
    DryRun,
}

impl LogsSink {
    /// Sends one batch (sorted by timestamp).
    ///
    /// # Errors
    /// The classified failure; `NotFound` means the stream or group must be created first.
    pub async fn put(
        &self,
        destination: &Destination,
        format: Format,
        batch: &LogBatch,
    ) -> Result<Rejected, AwsError> {
        // The one copy of each message: from the read buffers into the body.
        let body = put_log_events_body(&destination.group, &destination.stream, &batch.events);
        match self {
            LogsSink::DryRun => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout
                    .write_all(match format {
                        Format::Plain => br#"{"operation":"PutLogEvents","#.as_slice(),
                        Format::Emf => br#"{"operation":"PutLogEvents","format":"json/emf","#,
                    })
                    .and_then(|()| stdout.write_all(&body[1..]))
                    .and_then(|()| stdout.write_all(b"\n"))
                    .and_then(|()| stdout.flush());
                Ok(Rejected::default())
            }
            LogsSink::CloudWatch { client, endpoint } => {
                // The SDK serialises an empty event list; the body built above replaces it
                // before signing, so the signature covers exactly what is sent.
                let output = client
                    .put_log_events()
                    .log_group_name(&destination.group)
                    .log_stream_name(&destination.stream)
                    .set_log_events(Some(Vec::new()))
                    .customize()
                    .mutate_request(move |request| {
                        let length = body.len().to_string();
                        *request.body_mut() = SdkBody::from(body.clone());
                        request.headers_mut().insert("content-length", length);
                        if format == Format::Emf {
                            request.headers_mut().insert(EMF_HEADER.0, EMF_HEADER.1);
                        }
                    })
                    .send()
                    .await
                    .map_err(|err| AwsError::from_sdk("PutLogEvents", endpoint, &err))?;
                Ok(output
                    .rejected_log_events_info()
                    .map(|r| Rejected {
                        too_old_end: r.too_old_log_event_end_index(),
                        too_new_start: r.too_new_log_event_start_index(),
                        expired_end: r.expired_log_event_end_index(),
                    })
                    .unwrap_or_default())
            }
        }
    }

    /// Creates the stream, and the group first when it is missing too. Already existing is fine.
    /// Each call waits for a token of `pace`: these APIs have low account quotas, and a fleet
    /// starting at once must converge instead of storming them.
    ///
    /// # Errors
    /// A failure other than "already exists". A resource quota reached (LimitExceededException:
    /// too many groups or streams) is a refusal, not throttling: no quick retry fixes it.
    pub async fn create_stream(
        &self,
        destination: &Destination,
        pace: &Pace,
    ) -> Result<bool, AwsError> {
        let LogsSink::CloudWatch { client, endpoint } = self else {
            return Ok(false);
        };
        let quota = |mut err: AwsError| {
            if err.code.as_deref() == Some("LimitExceededException") {
                err.kind = AwsErrorKind::InvalidRequest;
            }
            err
        };
        let create_stream = || async {
            pace.take().await;
            client
                .create_log_stream()
                .log_group_name(&destination.group)
                .log_stream_name(&destination.stream)
                .send()
                .await
        };
        let already =
            |err: &AwsError| err.code.as_deref() == Some("ResourceAlreadyExistsException");
        match create_stream()
            .await
            .map_err(|err| quota(AwsError::from_sdk("CreateLogStream", endpoint, &err)))
        {
            Ok(_) => Ok(false),
            Err(err) if already(&err) => Ok(false),
            Err(err) if err.kind == AwsErrorKind::NotFound => {
                let mut request = client.create_log_group().log_group_name(&destination.group);
                if let Some(class) = destination.class {
                    request = request.log_group_class(match class {
                        LogGroupClass::Standard => SdkClass::Standard,
                        LogGroupClass::InfrequentAccess => SdkClass::InfrequentAccess,
                    });
                }
                pace.take().await;
                match request
                    .send()
                    .await
                    .map_err(|err| quota(AwsError::from_sdk("CreateLogGroup", endpoint, &err)))
                {
                    Ok(_) => {}
                    Err(err) if already(&err) => {}
                    Err(err) => return Err(err),
                }
                match create_stream()
                    .await
                    .map_err(|err| quota(AwsError::from_sdk("CreateLogStream", endpoint, &err)))
                {
                    Ok(_) => Ok(true),
                    Err(err) if already(&err) => Ok(true),
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Sets the group's retention.
    ///
    /// # Errors
    /// The call failed.
    pub async fn put_retention(&self, group: &str, days: u32) -> Result<(), AwsError> {
        let LogsSink::CloudWatch { client, endpoint } = self else {
            return Ok(());
        };
        client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(i32::try_from(days).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| AwsError::from_sdk("PutRetentionPolicy", endpoint, &err))
    }
}
