//! `file_path` globs as the stock agent reads them, for validation and discovery alike.
//!
//! Owns [`compile`] and [`META`]: the stock agent's `plugins/inputs/logfile/globpath` matches
//! with gobwas/glob (`*` and `?` within a directory, `[…]`, `{a,b}`, `**` across directories,
//! `\` escapes), and treats a path with any of [`META`] as a pattern. `globset` does the
//! matching here; the one difference, `/**/` (at least one directory for gobwas, possibly none
//! for globset), is written out before compiling. It knows nothing of walking directories
//! (`tail::discovery` does).

/// Characters that make a path a pattern for the stock agent (`hasMeta` and `hasSuperMeta` in
/// its `globpath`); only `*`, `?` and `[` end the literal root it walks from.
pub const META: [char; 6] = ['*', '?', '[', '{', '}', '!'];

/// A glob with the stock agent's semantics: `*` and `?` stay within a directory, hidden files
/// match, `{a,b}` are alternatives, `\` escapes, and `/**/` is one directory or more.
///
/// # Errors
/// The pattern is not a valid glob (an unclosed `[` or `{`).
pub fn compile(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    // gobwas/glob's `**` is any sequence, so `/var/log/**/x.log` needs `/var/log/` and
    // `/x.log` around it: one directory at least.
    let pattern = pattern.replace("/**/", "/*/**/");
    Ok(globset::GlobBuilder::new(&pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

/// The first directory component with a brace that the walk takes literally: it comes before
/// the first component with `*`, `?` or `[` (the stock agent's `findRootDir` stops only at
/// those), so `/var/log/{nginx,apache2}/*.log` looks in a directory named `{nginx,apache2}`.
pub fn literal_braces(pattern: &str) -> Option<&str> {
    let components: Vec<&str> = pattern.split('/').collect();
    let (_, directories) = components.split_last()?;
    directories
        .iter()
        .take_while(|c| !c.contains(['*', '?', '[']))
        .find(|c| c.contains(['{', '}']))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_within_a_directory_and_double_stars_need_one() {
        let glob = compile("/var/log/**/x.log").unwrap();
        assert!(glob.is_match("/var/log/a/x.log"));
        assert!(glob.is_match("/var/log/a/b/x.log"));
        assert!(
            !glob.is_match("/var/log/x.log"),
            "gobwas: at least one directory"
        );
        let glob = compile("/var/log/*.log").unwrap();
        assert!(glob.is_match("/var/log/.hidden.log"));
        assert!(!glob.is_match("/var/log/a/b.log"));
        let glob = compile("/var/log/app.{log,txt}").unwrap();
        assert!(glob.is_match("/var/log/app.log") && glob.is_match("/var/log/app.txt"));
        assert!(!glob.is_match("/var/log/app.out"));
        assert!(compile("/var/log/[a").is_err());
    }

    #[test]
    fn braces_before_the_first_star_are_found_as_literal() {
        assert_eq!(
            literal_braces("/var/log/{nginx,apache2}/*.log"),
            Some("{nginx,apache2}")
        );
        assert_eq!(literal_braces("/var/log/*/{a,b}.log"), None);
        assert_eq!(literal_braces("/var/log/app.{log,txt}"), None);
        assert_eq!(literal_braces("/var/*/{a,b}/x.log"), None);
    }
}
