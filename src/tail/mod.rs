//! Tailing: files into lines and events. Knows nothing of AWS.
//!
//! Owns framing (`line_reader`). Discovery, rotation and multi-line assembly build on it.

pub mod discovery;
pub mod events;
pub mod line_reader;
pub mod multiline;
pub mod source;
pub mod timestamp;
pub mod watcher;
