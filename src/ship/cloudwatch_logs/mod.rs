//! The logs shipper: per-stream batches to PutLogEvents.
//!
//! Owns the PutLogEvents limits and batching (`batch`). The sender with several requests in
//! flight per stream, stream and group creation, retention and retries comes next; it will ack
//! delivered byte ranges back to `state`.

pub mod batch;
pub mod shipper;
pub mod sink;
