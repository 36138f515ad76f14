//! What `cwlite run` does with a validated configuration: start-up checks, then run until told
//! to stop.
//!
//! Owns the order of start-up (state directory, clients, credentials) and the wait for SIGTERM
//! or SIGINT. The metrics and logs pipelines plug in here as they are built; this module will
//! then also own the ordered shutdown (stop producers, drain shippers, write checkpoints).

use std::future::Future;
use std::path::PathBuf;

use tracing::info;

use crate::aws::{ClientSetupError, Clients};
use crate::config::Config;

/// Where cwlite keeps its state when `--state-dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cwlite";

/// How the process runs, as opposed to what it does (which is the configuration).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Send nothing; print each request that would be sent.
    pub dry_run: bool,
    /// Directory for checkpoints and spools.
    pub state_dir: PathBuf,
}

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Clients or credentials could not be set up.
    #[error(transparent)]
    Setup(#[from] ClientSetupError),
    /// The state directory cannot be created.
    #[error("cannot create state directory {path}: {reason}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// Runs until `shutdown` completes (a signal in production, a future in tests).
///
/// With `dry_run` it builds everything, sends nothing and returns at once: there is nothing to
/// print until the pipelines exist.
///
/// # Errors
/// A start-up check failed: state directory, region, CA bundle, proxy or credentials.
pub async fn run(
    config: &Config,
    options: &RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let clients = Clients::build(config).await?;
    info!(region = %clients.region, logs = %clients.logs_endpoint, metrics = %clients.metrics_endpoint, "clients ready");
    if options.dry_run {
        // Loading credentials may itself be a request (instance metadata in the default
        // chain), and a dry run sends nothing, so credentials are not checked.
        info!("dry run: configuration loaded and clients built; nothing was sent");
        return Ok(());
    }
    std::fs::create_dir_all(&options.state_dir).map_err(|err| RunError::StateDir {
        path: options.state_dir.clone(),
        reason: err.to_string(),
    })?;
    let access_key_id = clients.check_credentials().await?;
    info!(access_key_id = %access_key_id, state_dir = %options.state_dir.display(), "started");
    shutdown.await;
    info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = int.recv() => info!("SIGINT received"),
            }
        }
        // Without signal handlers the process can still be killed; waiting forever is the
        // only behaviour that does not stop a daemon for no reason.
        _ => std::future::pending::<()>().await,
    }
}
