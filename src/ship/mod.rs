//! Shipping: draining batches into CloudWatch, retrying what can be retried.
//!
//! Owns the senders (`cloudwatch_metrics`) and the backoff (`retry`). A shipper consumes what
//! producers queued, asks `aws::AwsError::is_retryable` whether a failure is worth another
//! attempt, and reports what was delivered. Shippers never read log files or sample the host.

pub mod cloudwatch_logs;
pub mod cloudwatch_metrics;
pub mod retry;
