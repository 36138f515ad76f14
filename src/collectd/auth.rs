//! collectd's auth file (`collectd_auth_file`): `user: password` lines, read as go-collectd's
//! `AuthFile` reads them (split at the first `:`, both sides trimmed, lines without `:` or
//! whose user starts with `#` skipped), and read again whenever its modification time
//! changes. Nothing here checks signatures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

/// Passwords by user, as of the file's last change.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    modified: Option<SystemTime>,
    passwords: HashMap<String, String>,
}

impl AuthFile {
    /// The auth file at `path` (read at the first lookup).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            modified: None,
            passwords: HashMap::new(),
        }
    }

    /// `user`'s password, reading the file again if it changed.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn password(&mut self, user: &str) -> std::io::Result<Option<&str>> {
        let modified = std::fs::metadata(&self.path)?.modified().ok();
        if modified.is_none() || modified != self.modified {
            let text = std::fs::read_to_string(&self.path)?;
            self.passwords = parse(&text);
            self.modified = modified;
        }
        Ok(self.passwords.get(user).map(String::as_str))
    }
}

fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (user, password) = line.split_once(':')?;
            let user = user.trim();
            (!user.is_empty() && !user.starts_with('#'))
                .then(|| (user.to_owned(), password.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_passwords_are_read_and_comments_skipped() {
        let parsed = parse("alice: s3cret\n# bob: no\nno colon here\n carol :x:y \n");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["alice"], "s3cret");
        assert_eq!(parsed["carol"], "x:y");
    }

    #[test]
    fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_file");
        std::fs::write(&path, "alice: one\n").unwrap();
        let mut auth = AuthFile::new(&path);
        assert_eq!(auth.password("alice").unwrap(), Some("one"));
        std::fs::write(&path, "alice: two\n").unwrap();
        // A different modification time, whatever the file system's resolution.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(auth.password("alice").unwrap(), Some("two"));
        assert_eq!(auth.password("mallory").unwrap(), None);
        std::fs::remove_file(&path).unwrap();
        assert!(auth.password("alice").is_err());
    }
}
