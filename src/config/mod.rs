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
pub mod layout;
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
pub use layout::Layout;
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
    match source::expand_paths(config_paths) {
        Ok(files) => load_files(&files, common_config, env, region_policy),
        Err(errors) => Err(with_common_errors(errors, common_config, env)),
    }
}

/// Reads, merges and validates what a [`Layout`] holds: its single file and its directory's
/// files, with its common-config when there is one.
///
/// # Errors
/// As [`load`]; and no configuration file at all is an error naming both places.
pub fn load_layout(
    layout: &Layout,
    env: &Environment,
    region_policy: RegionPolicy,
) -> Result<Loaded, LoadError> {
    let files = layout.config_files();
    let common = layout.common_config_if_present();
    if files.is_empty() {
        let errors = ConfigErrors(vec![Diagnostic::file(
            layout.etc(),
            format!(
                "no configuration: neither {} nor a file in {} (`cwlite ctl -a fetch-config` puts one there)",
                layout.single_file().display(),
                layout.dir().display()
            ),
        )]);
        return Err(with_common_errors(errors, common.as_deref(), env));
    }
    load_files(&files, common.as_deref(), env, region_policy)
}

/// Reads, merges and validates exactly `files`, in that order.
///
/// # Errors
/// As [`load`].
pub fn load_files(
    files: &[PathBuf],
    common_config: Option<&Path>,
    env: &Environment,
    region_policy: RegionPolicy,
) -> Result<Loaded, LoadError> {
    validate_document(source::load_files(files), common_config, env, region_policy)
}

/// Validates one document not written yet, named as the file it will be (the wizard's output).
///
/// # Errors
/// As [`load`].
pub fn load_text(
    file: &Path,
    text: &str,
    common_config: Option<&Path>,
    env: &Environment,
    region_policy: RegionPolicy,
) -> Result<Loaded, LoadError> {
    validate_document(
        source::load_texts([Ok((file.to_owned(), text.to_owned()))]),
        common_config,
        env,
        region_policy,
    )
}

fn validate_document(
    document: Result<source::SourceDocument, ConfigErrors>,
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

/// The errors of the JSON files that could not be found, with the common-config's own.
fn with_common_errors(
    errors: ConfigErrors,
    common_config: Option<&Path>,
    env: &Environment,
) -> LoadError {
    let (mut all, warnings) = match CommonConfig::load(common_config, env) {
        Ok((_, common_warnings)) => (Vec::new(), common_warnings),
        Err(err) => (err.0, Vec::new()),
    };
    all.extend(errors.0);
    LoadError {
        errors: ConfigErrors(all),
        warnings,
    }
}
