//! The log level `cwlite ctl -a set-log-level` leaves in `env-config.json`, applied to the
//! running daemon within one status tick (the stock agent looks every 30 s).
//!
//! Owns reading that file and deciding when the level changes. How a level is applied (the
//! logging set-up) is `main`'s, handed in as a function; nothing here writes the file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{info, warn};

/// The key the stock agent keeps the level under.
pub const LEVEL_KEY: &str = "CWAGENT_LOG_LEVEL";

/// Sets the level: `Some("DEBUG")` and so on, or `None` for the configured one.
pub type ApplyLevel = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// Where to look for a level, and how to apply it.
#[derive(Clone)]
pub struct LevelFile {
    /// `<etc>/env-config.json`.
    pub path: PathBuf,
    /// Applies a level.
    pub apply: ApplyLevel,
}

impl std::fmt::Debug for LevelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Follows the file: looks at its modification time on every [`Watch::check`], and reads it
/// only when that changed.
#[derive(Debug)]
pub struct Watch {
    file: LevelFile,
    /// The modification time last seen (`None`: no file), once looked at.
    seen: Option<Option<SystemTime>>,
    /// The level applied from the file.
    level: Option<String>,
}

impl Watch {
    /// Follows `file`; nothing is applied before the first check.
    pub fn new(file: LevelFile) -> Self {
        Self {
            file,
            seen: None,
            level: None,
        }
    }

    /// Applies the file's level if the file changed (or went away) since the last check.
    pub fn check(&mut self) {
        let modified = std::fs::metadata(&self.file.path)
            .and_then(|m| m.modified())
            .ok();
        if self.seen == Some(modified) {
            return;
        }
        self.seen = Some(modified);
        let level = match modified {
            None => None,
            Some(_) => match read_level(&self.file.path) {
                Ok(level) => level,
                Err(why) => {
                    warn!(file = %crate::telemetry::shown(&self.file.path), "log level ignored: {why}");
                    return;
                }
            },
        };
        if level == self.level {
            return;
        }
        (self.file.apply)(level.as_deref());
        match &level {
            Some(level) => {
                info!(file = %crate::telemetry::shown(&self.file.path), "log level set to {level}");
            }
            None if self.level.is_some() => info!("log level back to the configured one"),
            None => {}
        }
        self.level = level;
    }
}

/// The level in the file; `None` when the file sets none.
fn read_level(path: &std::path::Path) -> Result<Option<String>, String> {
    let text = std::fs::read(path).map_err(|err| err.to_string())?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|err| format!("not JSON: {err}"))?;
    match value.get(LEVEL_KEY) {
        None => Ok(None),
        Some(serde_json::Value::String(level))
            if crate::ctl::LOG_LEVELS.contains(&level.as_str()) =>
        {
            Ok(Some(level.clone()))
        }
        Some(other) => Err(format!(
            "{LEVEL_KEY} is {other}, not one of {}",
            crate::ctl::LOG_LEVELS.join("|")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_level_is_applied_once_per_change_and_dropped_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env-config.json");
        let applied = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
        let sink = Arc::clone(&applied);
        let mut watch = Watch::new(LevelFile {
            path: path.clone(),
            apply: Arc::new(move |level| sink.lock().unwrap().push(level.map(str::to_owned))),
        });
        watch.check();
        assert!(applied.lock().unwrap().is_empty());
        std::fs::write(&path, "{\"CWAGENT_LOG_LEVEL\": \"DEBUG\"}").unwrap();
        watch.check();
        watch.check();
        std::fs::write(&path, "{\"CWAGENT_LOG_LEVEL\": \"LOUD\"}").unwrap();
        filetime_bump(&path);
        watch.check();
        std::fs::remove_file(&path).unwrap();
        watch.check();
        assert_eq!(*applied.lock().unwrap(), [Some("DEBUG".into()), None]);
    }

    /// A rewrite within the file system's timestamp granularity must still count as a change.
    fn filetime_bump(path: &std::path::Path) {
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
}
