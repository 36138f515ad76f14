//! Regular expressions written for the stock agent (Go, RE2 syntax), compiled with Rust's `regex`.
//!
//! Owns the translation from Go's dialect to `regex`'s: where the two read a pattern differently
//! or `regex` rejects what Go accepts, the pattern is rewritten so that it matches exactly what the
//! stock agent matches. The differences handled here:
//!
//! - `\d \w \s \b` and their negations are ASCII-only in Go, Unicode-aware in `regex`;
//! - a `{` that starts no valid `{n}`, `{n,}` or `{n,m}` is a literal in Go, an error in `regex`;
//! - `\Q…\E` quotes literal text in Go only; octal escapes `\0`…`\377` exist in Go only;
//! - `\<` and `\>` are literal `<` `>` in Go, word boundaries in `regex`;
//! - inside a class, `[`, `&&`, `--` and `~~` are literal in Go, nesting and set operators in `regex`.
//!
//! It also rejects what Go rejects and `regex` would accept (`(?x)`, `\1`, counts over 1000), so a
//! pattern is valid in cwlite exactly when it is valid for the stock agent. Nothing here knows
//! which configuration key a pattern came from.

use std::fmt;

use regex::bytes::Regex;

/// Go's `\s`: `[\t\n\f\r ]` (no vertical tab, unlike Perl).
const ASCII_SPACE: &str = r"\t\n\x0C\r ";
const ASCII_WORD: &str = "0-9A-Za-z_";
const ASCII_DIGIT: &str = "0-9";
/// RE2's largest repetition count.
const MAX_REPEAT: u32 = 1000;

/// A compiled pattern that remembers the text it was written as.
#[derive(Clone)]
pub struct GoRegex {
    source: String,
    regex: Regex,
}

impl GoRegex {
    /// Translates and compiles a Go (RE2) pattern.
    ///
    /// # Errors
    /// A message (lowercase, Go's wording where it has one) when Go would reject the pattern or
    /// the translation does not compile.
    pub fn new(source: &str) -> Result<Self, String> {
        let translated = translate(source)?;
        let regex = Regex::new(&translated).map_err(|err| {
            format!(
                "invalid regular expression: {}",
                first_line(&err.to_string())
            )
        })?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled `regex`, over bytes: log text is valid UTF-8 by the time it is matched, so
    /// this matches exactly what the `str` form would, without a UTF-8 check of every line.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text.as_bytes())
    }
}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoRegex({:?})", self.source)
    }
}

impl PartialEq for GoRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl serde::Serialize for GoRegex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_owned()
}

/// Rewrites a Go pattern into an equivalent `regex` pattern.
///
/// # Errors
/// When Go itself would reject the pattern.
pub fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    // Go (Perl mode) refuses a repetition of a repetition (`a**`, `a+{2}`); `regex` allows it.
    let mut after_repeat = false;
    while i < chars.len() {
        let c = chars[i];
        let is_repeat =
            matches!(c, '*' | '+' | '?') || (c == '{' && parse_repeat(&chars, i).is_some());
        if is_repeat && after_repeat {
            return Err(format!(
                "invalid nested repetition operator: `{}`",
                chars[..=i].iter().collect::<String>()
            ));
        }
        after_repeat = is_repeat;
        match c {
            '\\' => i = translate_escape(&chars, i, &mut out)?,
            '[' => i = translate_class(&chars, i, &mut out)?,
            '{' => match parse_repeat(&chars, i) {
                Some((end, min, max)) => {
                    if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
                        return Err(format!(
                            "invalid repeat count: `{}`",
                            chars[i..end].iter().collect::<String>()
                        ));
                    }
                    out.extend(&chars[i..end]);
                    i = end;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            '}' => {
                out.push_str(r"\}");
                i += 1;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                i = translate_group_flags(&chars, i, &mut out)?
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
        // A `?` right after a repetition makes it non-greedy and is part of it.
        if is_repeat && chars.get(i) == Some(&'?') {
            out.push('?');
            i += 1;
        }
    }
    Ok(out)
}

/// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` with decimal numbers; returns the end index.
fn parse_repeat(chars: &[char], start: usize) -> Option<(usize, u32, Option<u32>)> {
    let mut i = start + 1;
    let (min, next) = parse_decimal(chars, i)?;
    i = next;
    let max = if chars.get(i) == Some(&',') {
        i += 1;
        if chars.get(i) == Some(&'}') {
            None
        } else {
            let (max, next) = parse_decimal(chars, i)?;
            i = next;
            Some(max)
        }
    } else {
        Some(min)
    };
    if chars.get(i) == Some(&'}') {
        Some((i + 1, min, max))
    } else {
        None
    }
}

fn parse_decimal(chars: &[char], start: usize) -> Option<(u32, usize)> {
    let mut i = start;
    while chars.get(i).is_some_and(char::is_ascii_digit) {
        i += 1;
    }
    if i == start {
        return None;
    }
    // Go rejects leading zeros ("01") as a repeat, so the `{` is a literal.
    if i - start > 1 && chars[start] == '0' {
        return None;
    }
    let text: String = chars[start..i].iter().collect();
    // Absurdly long numbers overflow; treat as over the maximum.
    Some((text.parse().unwrap_or(u32::MAX), i))
}

/// `(?flags)`, `(?flags:`, `(?P<name>` and `(?<name>`: Go knows only `i m s U` and `-`.
fn translate_group_flags(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let mut i = start + 2;
    match chars.get(i) {
        Some('P') | Some('<') => {
            out.push_str("(?");
            return Ok(i);
        }
        _ => {}
    }
    let flag_start = i;
    while let Some(&c) = chars.get(i) {
        match c {
            'i' | 'm' | 's' | 'U' | '-' => i += 1,
            ')' | ':' => {
                out.extend(&chars[start..=i]);
                return Ok(i + 1);
            }
            _ => {
                let text: String = chars[start..(i + 1).min(chars.len())].iter().collect();
                return Err(format!("invalid or unsupported perl syntax: `{text}`"));
            }
        }
    }
    let _ = flag_start;
    Err("missing closing ): unterminated group flags".to_owned())
}

/// What an escape outside or inside a class stands for.
enum Escape {
    /// A single character.
    Char(char),
    /// A class such as `[0-9]` (already in `regex` syntax, usable inside a class too).
    Class(String),
    /// An assertion or item to copy as it is (`\A`, `\z`, `\pL`, `\p{Greek}`).
    Verbatim(String),
}

fn translate_escape(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    if chars.get(start + 1) == Some(&'Q') {
        let mut i = start + 2;
        while i < chars.len() {
            if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                return Ok(i + 2);
            }
            push_literal(chars[i], out);
            i += 1;
        }
        return Ok(i);
    }
    match chars.get(start + 1) {
        Some('b') => {
            out.push_str(r"(?-u:\b)");
            return Ok(start + 2);
        }
        // `(?-u:\B)` can match inside a UTF-8 sequence, which `regex` forbids for text; Unicode
        // `\B` differs from Go's only next to non-ASCII letters and digits.
        Some('B') => {
            out.push_str(r"\B");
            return Ok(start + 2);
        }
        Some('A') | Some('z') => {
            out.push('\\');
            out.push(chars[start + 1]);
            return Ok(start + 2);
        }
        _ => {}
    }
    let (escape, next) = parse_escape(chars, start)?;
    match escape {
        Escape::Char(c) => push_literal(c, out),
        Escape::Class(class) => out.push_str(&class),
        Escape::Verbatim(text) => out.push_str(&text),
    }
    Ok(next)
}

/// Parses one escape that Go allows both outside and inside a class.
fn parse_escape(chars: &[char], start: usize) -> Result<(Escape, usize), String> {
    let Some(&c) = chars.get(start + 1) else {
        return Err("trailing backslash at end of expression".to_owned());
    };
    let next = start + 2;
    let escape = match c {
        'd' => Escape::Class(format!("[{ASCII_DIGIT}]")),
        'D' => Escape::Class(format!("[^{ASCII_DIGIT}]")),
        'w' => Escape::Class(format!("[{ASCII_WORD}]")),
        'W' => Escape::Class(format!("[^{ASCII_WORD}]")),
        's' => Escape::Class(format!("[{ASCII_SPACE}]")),
        'S' => Escape::Class(format!("[^{ASCII_SPACE}]")),
        'p' | 'P' => {
            return match chars.get(next) {
                Some('{') => {
                    let close = chars[next..]
                        .iter()
                        .position(|&x| x == '}')
                        .ok_or("invalid character class range: missing }")?;
                    let text: String = chars[start..next + close + 1].iter().collect();
                    Ok((Escape::Verbatim(text), next + close + 1))
                }
                Some(&name) => Ok((Escape::Verbatim(format!("\\{c}{name}")), next + 1)),
                None => Err("invalid character class range: missing name".to_owned()),
            };
        }
        'a' => Escape::Char('\x07'),
        'f' => Escape::Char('\x0C'),
        't' => Escape::Char('\t'),
        'n' => Escape::Char('\n'),
        'r' => Escape::Char('\r'),
        'v' => Escape::Char('\x0B'),
        'x' => return parse_hex(chars, next),
        '0'..='7' => {
            // A lone non-zero digit is a backreference, which RE2 does not support.
            let more = chars.get(next).is_some_and(|d| ('0'..='7').contains(d));
            if c != '0' && !more {
                return Err(format!("invalid escape sequence: `\\{c}`"));
            }
            let mut value = c as u32 - '0' as u32;
            let mut i = next;
            while i < next + 2 && chars.get(i).is_some_and(|d| ('0'..='7').contains(d)) {
                value = value * 8 + (chars[i] as u32 - '0' as u32);
                i += 1;
            }
            let ch = char::from_u32(value).ok_or("invalid escape sequence")?;
            return Ok((Escape::Char(ch), i));
        }
        // Go (Perl mode) lets any ASCII punctuation be escaped to stand for itself.
        c if c.is_ascii_punctuation() => Escape::Char(c),
        'C' => Escape::Class("(?s:.)".to_owned()),
        c => return Err(format!("invalid escape sequence: `\\{c}`")),
    };
    Ok((escape, next))
}

fn parse_hex(chars: &[char], start: usize) -> Result<(Escape, usize), String> {
    let bad = || "invalid escape sequence: `\\x`".to_owned();
    if chars.get(start) == Some(&'{') {
        let close = chars[start..]
            .iter()
            .position(|&x| x == '}')
            .ok_or_else(bad)?;
        let digits: String = chars[start + 1..start + close].iter().collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let value = u32::from_str_radix(&digits, 16).map_err(|_| bad())?;
        let ch = char::from_u32(value).ok_or_else(bad)?;
        return Ok((Escape::Char(ch), start + close + 1));
    }
    let digits: String = chars
        .get(start..start + 2)
        .ok_or_else(bad)?
        .iter()
        .collect();
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let value = u32::from_str_radix(&digits, 16).map_err(|_| bad())?;
    Ok((
        Escape::Char(char::from_u32(value).ok_or_else(bad)?),
        start + 2,
    ))
}

/// Writes `c` so that `regex` reads it as that one character, in or out of a class.
fn push_literal(c: char, out: &mut String) {
    if c.is_ascii_punctuation()
        && !matches!(
            c,
            '<' | '>' | '_' | '"' | '\'' | '`' | '@' | '%' | ',' | ';' | ':' | '=' | '!' | '/'
        )
    {
        out.push('\\');
        out.push(c);
    } else if c.is_control() || c == ' ' {
        out.push_str(&format!("\\x{{{:X}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// One member of a Go character class.
enum ClassItem {
    Range(char, char),
    Nested(String),
}

/// Go's `parseClass`: returns the index after the closing `]`.
fn translate_class(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let mut i = start + 1;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            let text: String = chars[start..].iter().collect();
            return Err(format!("missing closing ]: `{text}`"));
        };
        if c == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        if c == '['
            && chars.get(i + 1) == Some(&':')
            && let Some(len) = chars[i + 2..].windows(2).position(|w| w == [':', ']'])
        {
            let text: String = chars[i..i + 2 + len + 2].iter().collect();
            items.push(ClassItem::Nested(format!("[{text}]")));
            i += 2 + len + 2;
            continue;
        }
        let (low, next) = class_char(chars, i)?;
        i = next;
        let low = match low {
            Escape::Char(ch) => ch,
            Escape::Class(class) | Escape::Verbatim(class) => {
                items.push(ClassItem::Nested(if class.starts_with('[') {
                    class
                } else {
                    format!("[{class}]")
                }));
                continue;
            }
        };
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            let (high, next) = class_char(chars, i + 1)?;
            let Escape::Char(high) = high else {
                return Err("invalid character class range".to_owned());
            };
            if high < low {
                return Err(format!("invalid character class range: `{low}-{high}`"));
            }
            items.push(ClassItem::Range(low, high));
            i = next;
        } else {
            items.push(ClassItem::Range(low, low));
        }
    }
    out.push('[');
    if negated {
        out.push('^');
    }
    for item in items {
        match item {
            ClassItem::Range(low, high) => {
                push_class_literal(low, out);
                if high != low {
                    out.push('-');
                    push_class_literal(high, out);
                }
            }
            ClassItem::Nested(class) => out.push_str(&class),
        }
    }
    out.push(']');
    Ok(i)
}

fn class_char(chars: &[char], i: usize) -> Result<(Escape, usize), String> {
    match chars[i] {
        '\\' => {
            if chars.get(i + 1) == Some(&'Q') || chars.get(i + 1) == Some(&'b') {
                return Err(format!("invalid escape sequence: `\\{}`", chars[i + 1]));
            }
            parse_escape(chars, i)
        }
        c => Ok((Escape::Char(c), i + 1)),
    }
}

/// Inside a `regex` class `[ ] \ - ^ & ~` carry meaning; Go treats most of them as plain.
fn push_class_literal(c: char, out: &mut String) {
    if matches!(c, '[' | ']' | '\\' | '-' | '^' | '&' | '~') {
        out.push('\\');
        out.push(c);
    } else if c.is_control() || c == ' ' {
        out.push_str(&format!("\\x{{{:X}}}", c as u32));
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        GoRegex::new(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .is_match(text)
    }

    fn rejected(pattern: &str) -> String {
        GoRegex::new(pattern)
            .err()
            .unwrap_or_else(|| panic!("{pattern} should be rejected"))
    }

    #[test]
    fn the_stock_default_start_pattern_means_non_ascii_space() {
        assert!(matches(r"^[\S]", "Nov 25 host app: x"));
        assert!(!matches(r"^[\S]", "  at java.lang.Thread"));
        assert!(!matches(r"^[\S]", "\tcontinued"));
        // Go's \S is ASCII: a no-break space is "not space" there, so it starts an event.
        assert!(matches(r"^[\S]", "\u{a0}x"));
        // Go's \s has no vertical tab.
        assert!(matches(r"^\S", "\x0Bx"));
    }

    #[test]
    fn perl_classes_are_ascii_only() {
        assert!(matches(r"^\d+$", "2026"));
        assert!(!matches(r"^\d$", "٣"));
        assert!(!matches(r"^[\d]$", "٣"));
        assert!(!matches(r"^\w$", "é"));
        assert!(matches(r"^\W$", "é"));
        assert!(matches(r"^[^\d]$", "x"));
        assert!(matches(r"^[\D]$", "x") && !matches(r"^[\D]$", "7"));
    }

    #[test]
    fn word_boundary_is_ascii() {
        assert!(matches(r"\bERROR\b", "an ERROR here"));
        assert!(!matches(r"\bERROR\b", "xERROR"));
        // é is not a word character for Go, so there is a boundary between it and E.
        assert!(matches(r"\bERROR", "éERROR"));
    }

    #[test]
    fn a_brace_that_starts_no_repetition_is_literal() {
        assert!(matches(r"a{", "a{"));
        assert!(matches(r"^{timestamp}$", "{timestamp}"));
        assert!(matches(r"x{,3}", "x{,3}"));
        assert!(matches(r"^\d{4}-\d{2}$", "2026-11"));
        assert!(matches(r"^a{2,}$", "aaa") && !matches(r"^a{2,}$", "a"));
        assert!(matches(r"^{\}$", "{}"));
        assert!(matches(r#"^\{"level":"#, r#"{"level":"info"}"#));
    }

    #[test]
    fn quoted_text_and_octal_escapes() {
        assert!(matches(r"^\Q.*+\E$", ".*+"));
        assert!(!matches(r"^\Q.*\E$", "ab"));
        assert!(matches(r"^\101$", "A"));
        assert!(matches(r"^\0$", "\0"));
    }

    #[test]
    fn angle_bracket_escapes_are_literals() {
        assert!(matches(r"\<tag\>", "<tag>"));
    }

    #[test]
    fn class_punctuation_is_literal_as_in_go() {
        assert!(matches(r"^[[]$", "["));
        assert!(matches(r"^[a&&b]$", "&"));
        assert!(matches(r"^[a~~b]$", "~"));
        assert!(matches(r"^[+--]$", ","));
        assert!(matches(r"^[]a]$", "]"));
        assert!(matches(r"^[a-]$", "-"));
        assert!(matches(r"^[[:alpha:]]+$", "abc") && !matches(r"^[[:alpha:]]$", "1"));
        assert!(matches(r"^[\pL]$", "é"));
        assert!(matches(r"^[\x41-\x43]$", "B"));
    }

    #[test]
    fn flags_and_groups_behave_as_in_go() {
        assert!(matches(r"(?i)error", "ERROR"));
        assert!(matches(r"(?P<lvl>WARN|ERROR)", "WARN"));
        assert!(matches(r"(?<lvl>WARN)", "WARN"));
        assert!(matches(r"(?s:a.b)", "a\nb"));
    }

    #[test]
    fn what_go_rejects_is_rejected() {
        assert!(rejected(r"(?x)a b").contains("perl syntax"));
        assert!(rejected(r"\1").contains("escape"));
        assert!(rejected(r"\8").contains("escape"));
        assert!(rejected(r"\e").contains("escape"));
        assert!(rejected(r"a{1001}").contains("repeat count"));
        assert!(rejected(r"a{3,2}").contains("repeat count"));
        assert!(rejected(r"[z-a]").contains("range"));
        assert!(rejected(r"[abc").contains("missing closing ]"));
        assert!(rejected(r"(abc").contains("invalid regular expression"));
        assert!(rejected(r"abc\").contains("trailing backslash"));
    }

    #[test]
    fn nested_repetitions_are_refused_as_go_does() {
        assert!(rejected("a**").contains("nested repetition"));
        assert!(rejected("a+*").contains("nested repetition"));
        assert!(rejected("a{2}{3}").contains("nested repetition"));
        assert!(rejected("a*??").contains("nested repetition"));
        assert!(
            matches("^a*?b$", "aab"),
            "a non-greedy suffix is part of the repetition"
        );
        assert!(matches("^a+?$", "aa"));
        assert!(matches("^(a*)*$", "aa"), "a group in between is fine");
        assert!(matches("^a{2}?$", "aa"));
    }

    #[test]
    fn hex_escapes_take_hex_digits_only() {
        assert!(rejected(r"\x+4").contains("escape"));
        assert!(rejected(r"\x{+41}").contains("escape"));
        assert!(matches(r"^\x{41}\x42$", "AB"));
    }

    #[test]
    fn the_source_text_is_kept() {
        let regex = GoRegex::new(r"^\d").unwrap();
        assert_eq!(regex.as_str(), r"^\d");
        assert_eq!(serde_json::to_string(&regex).unwrap(), r#""^\\d""#);
    }
}
