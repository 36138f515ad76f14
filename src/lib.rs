//! cwlite: a small, drop-in replacement for the Amazon CloudWatch Agent on Linux servers.
//!
//! Modules in reading order:
//! - [`config`]: the stock agent's JSON and `common-config.toml`, validated into [`config::Config`].
//! - [`aws`]: SDK clients for CloudWatch Logs and CloudWatch built from that configuration
//!   (credentials, region, endpoints, proxy, CA) and the one place that describes SDK failures.
//! - [`daemon`]: what `cwlite run` does with a configuration.
//! - [`ctl`]: `cwlite ctl`, the stock `amazon-cloudwatch-agent-ctl` (configurations and the service).
//! - [`wizard`]: `cwlite wizard`, the stock configuration wizard's Linux questions.
//! - [`telemetry`]: the counters every part updates, and the status report built from them.
//! - [`regular`]: how every file others may swap is opened (no link, no FIFO).
//!
//! `main.rs` only parses the command line and maps errors to exit codes.

pub mod aws;
pub mod collect;
pub mod collectd;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod emf;
pub mod event;
pub mod journal;
pub mod listen;
pub mod metrics;
pub mod queue;
pub mod regular;
pub mod ship;
pub mod state;
pub mod statsd;
pub mod tail;
pub mod telemetry;
pub mod wizard;
