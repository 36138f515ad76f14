//! Reading the stock agent's JSON files and merging several of them into one document.
//!
//! Owns file and directory discovery, JSON syntax errors (file, line, column) and the merge rules
//! of the stock agent's `append-config`: a scalar may appear in several files only with the same
//! value, arrays are concatenated with exact duplicates removed, objects merge recursively.
//! It does not interpret any key; that is the validator's job.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::diag::{ConfigErrors, Diagnostic, JsonPath, Provenance};

/// The merged JSON of every configuration file, with the file each part came from.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// The merged document; always an object.
    pub value: Value,
    /// Which file supplied which subtree.
    pub provenance: Provenance,
    /// Every file read, in merge order.
    pub files: Vec<PathBuf>,
}

/// Expands `--config` arguments into files: a file is itself; a directory is every `*.json` in it
/// (plus the stock downloader's extension-less `default` and `ssm_*` files), sorted by name.
///
/// # Errors
/// A path that does not exist, an unreadable directory, or a directory with no configuration file.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigErrors> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => match fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(Result::ok)
                        .map(|entry| entry.path())
                        .filter(|p| p.is_file() && is_config_file_name(p))
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        errors.push(Diagnostic::file(
                            path,
                            "directory holds no *.json configuration file",
                        ));
                    }
                    files.extend(found);
                }
                Err(err) => errors.push(Diagnostic::file(
                    path,
                    format!("cannot read directory: {err}"),
                )),
            },
            Ok(_) => files.push(path.clone()),
            Err(err) => errors.push(Diagnostic::file(
                path,
                format!("cannot read configuration: {err}"),
            )),
        }
    }
    // The same file named twice (directly and through its directory) is read once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Whether a file in a configuration directory is read: `*.json` and the stock downloader's
/// names, never a hidden or staged (`.tmp`) file.
pub fn is_config_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with(".tmp") {
        return false;
    }
    // The stock downloader names its files `file_<basename>`, `ssm_<parameter>` and `default`,
    // with no extension unless the source had one.
    name.ends_with(".json")
        || name == "default"
        || name.starts_with("ssm_")
        || name.starts_with("file_")
}

/// Reads and merges `files` in order.
///
/// # Errors
/// Every unreadable file, syntax error, non-object document and merge conflict, all at once.
pub fn load_files(files: &[PathBuf]) -> Result<SourceDocument, ConfigErrors> {
    let texts = files.iter().map(|file| {
        fs::read_to_string(file)
            .map(|text| (file.clone(), text))
            .map_err(|err| Diagnostic::file(file, format!("cannot read configuration: {err}")))
    });
    load_texts(texts)
}

/// Merges documents already read, each named by the file it is (or will be) in.
///
/// # Errors
/// As [`load_files`].
pub fn load_texts(
    texts: impl IntoIterator<Item = Result<(PathBuf, String), Diagnostic>>,
) -> Result<SourceDocument, ConfigErrors> {
    let mut errors = Vec::new();
    let mut merged = Value::Object(Map::new());
    let mut provenance = Provenance::default();
    let mut files = Vec::new();
    for read in texts {
        let (file, text) = match read {
            Ok(read) => read,
            Err(diagnostic) => {
                errors.push(diagnostic);
                continue;
            }
        };
        files.push(file.clone());
        let file = &file;
        let value: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(err) => {
                errors.push(Diagnostic {
                    file: Some(file.clone()),
                    path: JsonPath::root(),
                    position: Some(syntax_position(&text, err.line(), err.column())),
                    message: format!("invalid json: {}", strip_position(&err.to_string())),
                });
                continue;
            }
        };
        if !value.is_object() {
            errors.push(Diagnostic::file(
                file,
                "the configuration must be a json object",
            ));
            continue;
        }
        merge_into(
            &mut merged,
            value,
            &JsonPath::root(),
            file,
            &mut provenance,
            &mut errors,
        );
    }
    if errors.is_empty() {
        Ok(SourceDocument {
            value: merged,
            provenance,
            files,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// serde_json reports column 0 when the error is found at a line break; point at the end of the
/// previous line instead, where the incomplete token is.
fn syntax_position(text: &str, line: usize, column: usize) -> (usize, usize) {
    if column == 0 && line > 1 {
        let previous = text.lines().nth(line - 2).unwrap_or("");
        (line - 1, previous.chars().count() + 1)
    } else {
        (line, column.max(1))
    }
}

/// serde_json appends " at line L column C"; the diagnostic shows the position itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn merge_into(
    target: &mut Value,
    incoming: Value,
    path: &JsonPath,
    file: &Path,
    provenance: &mut Provenance,
    errors: &mut Vec<Diagnostic>,
) {
    match (target, incoming) {
        (Value::Object(existing), Value::Object(new)) => {
            for (key, value) in new {
                let child = path.key(&key);
                match existing.get_mut(&key) {
                    Some(slot) => merge_into(slot, value, &child, file, provenance, errors),
                    None => {
                        provenance.record(child, file);
                        existing.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(existing), Value::Array(new)) => {
            for item in new {
                if !existing.contains(&item) {
                    provenance.record(path.index(existing.len()), file);
                    existing.push(item);
                }
            }
        }
        (slot, value) => {
            if *slot != value {
                let first = provenance
                    .file_of(path)
                    .map_or_else(|| "an earlier file".to_owned(), |f| f.display().to_string());
                errors.push(Diagnostic {
                    file: Some(file.to_owned()),
                    path: path.clone(),
                    position: None,
                    message: format!(
                        "different values are specified: {} in {first} and {} in {}",
                        short(slot),
                        short(&value),
                        file.display()
                    ),
                });
            }
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}…", &text[..text.floor_char_boundary(60)])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn syntax_error_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "bad.json",
            "{\n  \"agent\": {\n    \"region\": \"x\",\n  }\n}",
        );
        let err = load_files(std::slice::from_ref(&file)).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].position, Some((4, 3)));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{}:4:3: invalid json: trailing comma",
                file.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn an_error_at_a_line_break_points_at_the_end_of_the_previous_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "bad.json", "{\n  \"debug\": tru\n}");
        let err = load_files(&[file]).unwrap_err();
        assert_eq!(err.0[0].position, Some((2, 15)));
    }

    #[test]
    fn a_non_object_document_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "list.json", "[1, 2]");
        let err = load_files(&[file]).unwrap_err();
        assert!(err.to_string().contains("must be a json object"));
    }

    #[test]
    fn lists_concatenate_without_exact_duplicates_and_objects_merge() {
        let dir = tempfile::tempdir().unwrap();
        let entry_a = json!({"file_path": "/var/log/a"});
        let entry_b = json!({"file_path": "/var/log/b"});
        let a = write(
            dir.path(),
            "a.json",
            &json!({"agent": {"region": "eu-west-1"}, "logs": {"logs_collected": {"files": {"collect_list": [entry_a]}}}})
                .to_string(),
        );
        let b = write(
            dir.path(),
            "b.json",
            &json!({"agent": {"region": "eu-west-1", "debug": true},
                    "logs": {"logs_collected": {"files": {"collect_list": [entry_a, entry_b]}}}})
            .to_string(),
        );
        let doc = load_files(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            doc.value["logs"]["logs_collected"]["files"]["collect_list"],
            json!([entry_a, entry_b])
        );
        assert_eq!(
            doc.value["agent"],
            json!({"region": "eu-west-1", "debug": true})
        );
        let list = JsonPath::parse_dotted("logs.logs_collected.files.collect_list");
        assert_eq!(doc.provenance.file_of(&list.index(0)), Some(a.as_path()));
        assert_eq!(
            doc.provenance.file_of(&list.index(1).key("file_path")),
            Some(b.as_path())
        );
        assert_eq!(
            doc.provenance
                .file_of(&JsonPath::parse_dotted("agent.debug")),
            Some(b.as_path())
        );
    }

    #[test]
    fn a_scalar_conflict_names_the_key_and_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.json",
            r#"{"agent": {"region": "eu-west-1"}}"#,
        );
        let b = write(
            dir.path(),
            "b.json",
            r#"{"agent": {"region": "us-east-1"}}"#,
        );
        let err = load_files(&[a.clone(), b.clone()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("agent.region"), "{text}");
        assert!(
            text.contains(&a.display().to_string()) && text.contains(&b.display().to_string()),
            "{text}"
        );
        assert!(
            text.contains("\"eu-west-1\"") && text.contains("\"us-east-1\""),
            "{text}"
        );
    }

    #[test]
    fn every_broken_file_is_reported_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", "{");
        let b = write(dir.path(), "b.json", "nope");
        let err = load_files(&[a, b]).unwrap_err();
        assert_eq!(err.0.len(), 2);
    }

    #[test]
    fn a_directory_means_its_json_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.json", "{}");
        write(dir.path(), "a.json", "{}");
        write(dir.path(), "default", "{}");
        write(dir.path(), "ssm_AmazonCloudWatch-linux", "{}");
        write(dir.path(), "file_config", "{}");
        write(dir.path(), "file_pending.json.tmp", "{");
        write(dir.path(), "README.md", "#");
        let files = expand_paths(&[dir.path().to_owned()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "a.json",
                "b.json",
                "default",
                "file_config",
                "ssm_AmazonCloudWatch-linux"
            ]
        );
    }

    #[test]
    fn a_missing_path_and_an_empty_directory_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = expand_paths(&[dir.path().join("nope.json"), dir.path().to_owned()]).unwrap_err();
        assert_eq!(err.0.len(), 2);
        assert!(err.0[0].message.contains("cannot read configuration"));
        assert!(err.0[1].message.contains("no *.json"));
    }

    #[test]
    fn the_same_file_named_twice_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", "{}");
        let files = expand_paths(&[a, dir.path().to_owned()]).unwrap();
        assert_eq!(files.len(), 1);
    }
}
