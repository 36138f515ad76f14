//! Configuration: the stock agent's JSON files and `common-config.toml`, read unchanged.
//!
//! Two stages, as the style guide asks: `raw` mirrors the JSON, `validate` turns it into the
//! `model` types that runtime code uses. `source` reads and merges files, `diag` locates
//! problems, `expand` substitutes `${ENV}` and `{placeholders}`, `go_regex` makes Go patterns
//! mean the same in Rust, `measurements` holds the metric allow-list, `charset` names files' encodings as the stock agent does, `common` reads
//! `common-config.toml`, and `profile_files` reads shared credentials files. Runtime code sees
//! only [`Config`]; nothing here talks to the network.

pub mod charset;
pub mod common;
pub mod diag;
pub mod expand;
pub mod file_glob;
pub mod go_regex;
mod journald;
pub mod measurements;
pub mod model;
pub mod profile_files;
mod raw;
pub mod source;
pub mod validate;

use std::path::{Path, PathBuf};

pub use charset::Charset;
pub use common::{CommonConfig, CredentialsSource};
pub use diag::{ConfigErrors, Diagnostic};
pub use expand::Environment;
pub use model::*;
pub use validate::RegionPolicy;

/// A valid configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Every warning, in the order found.
    pub warnings: Vec<Diagnostic>,
}

/// An invalid configuration: every error, and the warnings found as well.
#[derive(Debug, thiserror::Error)]
#[error("{errors}")]
pub struct LoadError {
    /// Every error.
    pub errors: ConfigErrors,
    /// Every warning.
    pub warnings: Vec<Diagnostic>,
}

/// Reads, merges and validates the configuration named on the command line.
///
/// `config_paths` are JSON files or directories of them; `common_config` is the optional
/// `common-config.toml`.
///
/// # Errors
/// Every problem found, each naming its file and JSON path (or line and column).
pub fn load(
    config_paths: &[PathBuf],
    common_config: Option<&Path>,
    env: &Environment,
    region_policy: RegionPolicy,
) -> Result<Loaded, LoadError> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let common = match CommonConfig::load(common_config, env) {
        Ok((common, common_warnings)) => {
            warnings.extend(common_warnings);
            Some(common)
        }
        Err(err) => {
            errors.extend(err.0);
            None
        }
    };
    let document = source::expand_paths(config_paths).and_then(|files| source::load_files(&files));
    let document = match document {
        Ok(document) => Some(document),
        Err(err) => {
            errors.extend(err.0);
            None
        }
    };
    if let (Some(common), Some(document)) = (common, document) {
        let validation = validate::validate(document, common, env, region_policy);
        errors.extend(validation.errors);
        warnings.extend(validation.warnings);
        if let Some(config) = validation.config.filter(|_| errors.is_empty()) {
            return Ok(Loaded { config, warnings });
        }
    }
    Err(LoadError {
        errors: ConfigErrors(errors),
        warnings,
    })
}
