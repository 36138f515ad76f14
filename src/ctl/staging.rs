//! The stock agent's `amazon-cloudwatch-agent.d` directory discipline: what a fetched
//! configuration is called there, its `.tmp` staging, and how staged files replace
//! (`fetch-config`) or join (`append-config`) what is there.
//!
//! Owns every write to the layout's configuration files. It knows nothing of where a
//! configuration came from (that is `source`) or whether it is valid (`config`).

use std::io;
use std::path::{Path, PathBuf};

use super::Location;
use crate::config::Layout;

/// The suffix of a staged, not yet applied, configuration.
pub const STAGED_SUFFIX: &str = ".tmp";

/// The file name a location's configuration has in the directory, as the stock downloader
/// names it: `default`, `ssm_<name>`, `file_<basename>`, with `/`, space and `:` made `_`.
/// `None` for `all`, which names no file.
pub fn file_name(location: &Location) -> Option<String> {
    let raw = match location {
        Location::All => return None,
        Location::Default => "default".to_owned(),
        Location::Ssm(name) => format!("ssm_{name}"),
        Location::File(path) => format!(
            "file_{}",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
    };
    Some(raw.replace(['/', ' ', ':'], "_"))
}

/// Whether the directory's readers would read a file of this name: not hidden, not staged.
/// A source named so (`file:/x/cw.tmp`) is refused rather than applied and never read.
pub fn is_readable_name(name: &str) -> bool {
    crate::config::source::is_config_file_name(Path::new(name))
}

/// Which configuration files apply once a staged file is committed, in the order they are
/// merged: what `fetch-config` or `append-config` would leave in place.
pub fn files_after(layout: &Layout, staged: &Path, replace_all: bool) -> Vec<PathBuf> {
    if replace_all {
        return vec![staged.to_owned()];
    }
    let target = committed_path(staged);
    let mut files: Vec<PathBuf> = layout
        .config_files()
        .into_iter()
        .filter(|file| *file != target)
        .collect();
    files.push(staged.to_owned());
    files
}

/// Deletes every staged file left by an earlier run that stopped half-way (the stock
/// downloader does the same before it fetches).
///
/// # Errors
/// The directory cannot be read or a file cannot be deleted.
pub fn discard_staged(layout: &Layout) -> io::Result<()> {
    let entries = match std::fs::read_dir(layout.dir()) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(STAGED_SUFFIX) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Writes `bytes` as `<dir>/<name>.tmp` (0644, as the stock downloader writes it: the daemon
/// may run as another user), creating the directory if needed. Returns the staged path.
///
/// # Errors
/// The directory cannot be created or the file written.
pub fn stage(layout: &Layout, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let existed = layout.dir().is_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(layout.dir())?;
    if !existed {
        // Whatever root's umask: the daemon's user must enter it.
        std::fs::set_permissions(
            layout.dir(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
    }
    let path = layout.dir().join(format!("{name}{STAGED_SUFFIX}"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)?;
    file.write_all(bytes)?;
    // Whatever root's umask: the daemon's user must read it.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    file.sync_all()?;
    Ok(path)
}

/// Applies a staged file. With `replace_all` (`fetch-config`) every other configuration goes,
/// the single file included; otherwise (`append-config`) only a file of the same name is
/// replaced.
///
/// # Errors
/// A file cannot be deleted or the staged file renamed.
pub fn commit(layout: &Layout, staged: &Path, replace_all: bool) -> io::Result<()> {
    let target = committed_path(staged);
    // The new file first, over its namesake: stopped at any point after this, the new
    // configuration is in place (with some old files beside it), never none at all.
    std::fs::rename(staged, &target)?;
    sync_dir(&layout.dir())?;
    if replace_all {
        remove_if_present(&layout.single_file())?;
        for file in layout.dir_files() {
            if file != target {
                remove_if_present(&file)?;
            }
        }
        sync_dir(&layout.dir())?;
    }
    Ok(())
}

/// Deletes the configuration a location names, or all of them (the single file too).
/// Returns the files deleted.
///
/// # Errors
/// The named file does not exist (as the stock agent says), or a file cannot be deleted.
pub fn remove(layout: &Layout, location: &Location) -> io::Result<Vec<PathBuf>> {
    let files = files_removed(layout, location)?;
    for file in &files {
        remove_if_present(file)?;
    }
    sync_dir(&layout.dir())?;
    Ok(files)
}

/// The files [`remove`] would delete.
///
/// # Errors
/// The named file does not exist.
pub fn files_removed(layout: &Layout, location: &Location) -> io::Result<Vec<PathBuf>> {
    match file_name(location) {
        None => {
            let mut files = layout.dir_files();
            let single = layout.single_file();
            if single.is_file() {
                files.insert(0, single);
            }
            Ok(files)
        }
        Some(name) => {
            let path = layout.dir().join(name);
            if path.is_file() {
                Ok(vec![path])
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist", path.display()),
                ))
            }
        }
    }
}

fn committed_path(staged: &Path) -> PathBuf {
    let text = staged.as_os_str().to_string_lossy();
    PathBuf::from(text.strip_suffix(STAGED_SUFFIX).unwrap_or(&text))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Makes the renames and deletions durable before the service is told to start on them.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(handle) => handle.sync_all(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(layout: &Layout) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(layout.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_follow_the_stock_downloader() {
        assert_eq!(file_name(&Location::Default).unwrap(), "default");
        assert_eq!(
            file_name(&Location::Ssm("/team/a b:c".into())).unwrap(),
            "ssm__team_a_b_c"
        );
        assert_eq!(
            file_name(&Location::File("/tmp/x/config.json".into())).unwrap(),
            "file_config.json"
        );
        assert_eq!(file_name(&Location::All), None);
    }

    #[test]
    fn fetch_replaces_everything_and_append_replaces_only_its_namesake() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::write(layout.single_file(), "{}").unwrap();
        let first = stage(&layout, "ssm_a", b"{}").unwrap();
        assert_eq!(
            files_after(&layout, &first, true),
            std::slice::from_ref(&first)
        );
        commit(&layout, &first, true).unwrap();
        assert!(!layout.single_file().exists());
        assert_eq!(names(&layout), ["ssm_a"]);

        let second = stage(&layout, "file_b.json", b"{}").unwrap();
        commit(&layout, &second, false).unwrap();
        let again = stage(&layout, "ssm_a", b"{\"agent\":{}}").unwrap();
        assert_eq!(
            files_after(&layout, &again, false),
            [layout.dir().join("file_b.json"), again.clone()]
        );
        commit(&layout, &again, false).unwrap();
        assert_eq!(names(&layout), ["file_b.json", "ssm_a"]);
        assert_eq!(
            std::fs::read_to_string(layout.dir().join("ssm_a")).unwrap(),
            "{\"agent\":{}}"
        );

        let third = stage(&layout, "default", b"{}").unwrap();
        commit(&layout, &third, true).unwrap();
        assert_eq!(names(&layout), ["default"]);
    }

    #[test]
    fn remove_needs_the_file_and_all_takes_the_single_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::write(layout.single_file(), "{}").unwrap();
        let staged = stage(&layout, "ssm_a", b"{}").unwrap();
        commit(&layout, &staged, false).unwrap();
        let err = remove(&layout, &Location::Ssm("b".into())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("ssm_b"), "{err}");
        assert_eq!(names(&layout), ["ssm_a"]);
        let removed = remove(&layout, &Location::All).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!layout.is_configured());
    }

    #[test]
    fn leftover_staged_files_are_discarded_and_a_second_stage_of_a_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        stage(&layout, "ssm_a", b"{}").unwrap();
        assert!(stage(&layout, "ssm_a", b"{}").is_err());
        std::fs::write(layout.dir().join("file_c"), "{}").unwrap();
        discard_staged(&layout).unwrap();
        assert_eq!(names(&layout), ["file_c"]);
    }
}
