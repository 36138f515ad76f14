//! collectd's `types.db`: each type's data sources, which name the metrics a value list
//! becomes (`collectd_<plugin>_<source>`), read as the stock agent's parser reads it
//! (`go-collectd` `api.NewTypesDB`): `name source:TYPE:min:max[, ...]`, `#` comments, several
//! files merged with later entries winning, and lines with `ABSOLUTE` or a malformed source
//! skipped. Nothing here reads packets.

use std::collections::HashMap;
use std::path::Path;

/// Data sources by type name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypesDb {
    types: HashMap<String, Vec<String>>,
}

/// A `types.db` that cannot be read: the stock agent does not start then.
#[derive(Debug, thiserror::Error)]
#[error("cannot read collectd_typesdb {path}: {source}")]
pub struct TypesDbError {
    /// The file.
    pub path: String,
    /// Why.
    pub source: std::io::Error,
}

impl TypesDb {
    /// Reads and merges `paths`, in order.
    ///
    /// # Errors
    /// A file cannot be read.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Self, TypesDbError> {
        let mut db = TypesDb::default();
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| TypesDbError {
                path: path.display().to_string(),
                source,
            })?;
            db.add(&text);
        }
        Ok(db)
    }

    /// Adds the types of one file's `text`.
    pub fn add(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else { continue };
            let sources: Option<Vec<String>> = words
                .map(|source| {
                    let source = source.trim_end_matches(',');
                    let mut fields = source.split(':');
                    let (Some(ds), Some(kind), Some(_), Some(_), None) = (
                        fields.next(),
                        fields.next(),
                        fields.next(),
                        fields.next(),
                        fields.next(),
                    ) else {
                        return None;
                    };
                    matches!(kind, "COUNTER" | "DERIVE" | "GAUGE").then(|| ds.to_owned())
                })
                .collect();
            if let Some(sources) = sources.filter(|s| !s.is_empty()) {
                self.types.insert(name.to_owned(), sources);
            }
        }
    }

    /// The data sources of `type_name`.
    pub fn sources(&self, type_name: &str) -> Option<&[String]> {
        self.types.get(type_name).map(Vec::as_slice)
    }

    /// Types known.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether no type is known.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_read_and_bad_lines_skipped() {
        let mut db = TypesDb::default();
        db.add(
            "# comment\n\
             cpu                     value:DERIVE:0:U\n\
             if_octets               rx:DERIVE:0:U, tx:DERIVE:0:U\n\
             load                    shortterm:GAUGE:0:5000, midterm:GAUGE:0:5000, longterm:GAUGE:0:5000\n\
             old                     value:ABSOLUTE:0:U\n\
             broken                  value:GAUGE\n",
        );
        assert_eq!(db.sources("cpu").unwrap(), ["value"]);
        assert_eq!(db.sources("if_octets").unwrap(), ["rx", "tx"]);
        assert_eq!(db.sources("load").unwrap().len(), 3);
        assert_eq!(db.sources("old"), None);
        assert_eq!(db.sources("broken"), None);
        db.add("cpu value:GAUGE:0:100\n");
        assert_eq!(db.len(), 3, "later files win");
    }

    #[test]
    fn a_missing_file_names_itself() {
        let err = TypesDb::load(&["/nonexistent/types.db"]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read collectd_typesdb /nonexistent/types.db:"),
            "{err}"
        );
    }
}
