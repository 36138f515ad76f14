//! The logs shipper: per-stream batches to PutLogEvents.
//!
//! Owns the PutLogEvents limits and batching (`batch`), the request body written straight from
//! the read buffers (`body`), the sender with several requests in flight per stream and its
//! retries (`shipper`), the process's pace under throttling (`rate`), and the calls themselves
//! (`sink`). Delivered byte ranges go back to
//! `state` as acknowledgements; it never reads files.

pub mod batch;
pub mod body;
pub mod rate;
pub mod shipper;
pub mod sink;
