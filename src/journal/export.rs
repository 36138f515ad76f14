//! journalctl's export format (`--output=export`), read into an entry's fields.
//!
//! Owns the framing: `FIELD=value` lines, a binary field as its name, a newline, a 64-bit
//! little-endian length and the bytes, and a blank line after each entry. Export is what
//! journalctl writes cheapest: its JSON output cost four times the CPU for the same entries
//! (`benches/journal_read.rs`). The fields are then what journalctl's JSON would show: text
//! that is valid, printable UTF-8 as a string, anything else as an array of byte values, and a
//! field that appears several times as an array of its values. It knows nothing of messages.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The longest binary field kept: a larger one (journald allows up to 768 MiB) is read past
/// and dropped, so one entry cannot take the process's memory.
pub const MAX_FIELD_BYTES: u64 = 8 * 1024 * 1024;

/// Reads the next entry's fields into `fields` (emptied first), using `line` as scratch.
/// `Ok(false)` at the end of the stream with no entry started.
///
/// # Errors
/// The stream failed or ended inside a binary field.
pub async fn read_entry<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    fields: &mut BTreeMap<String, Value>,
) -> std::io::Result<bool> {
    fields.clear();
    loop {
        line.clear();
        if reader.read_until(b'\n', line).await? == 0 {
            return Ok(!fields.is_empty());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            if fields.is_empty() {
                continue;
            }
            return Ok(true);
        }
        match memchr::memchr(b'=', line) {
            Some(eq) => insert(fields, &line[..eq], &line[eq + 1..]),
            None => {
                let name = String::from_utf8_lossy(line).into_owned();
                let mut size = [0u8; 8];
                reader.read_exact(&mut size).await?;
                let size = u64::from_le_bytes(size);
                if size > MAX_FIELD_BYTES {
                    let skipped =
                        tokio::io::copy(&mut (&mut *reader).take(size + 1), &mut tokio::io::sink())
                            .await?;
                    if skipped < size + 1 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    continue;
                }
                let mut value = vec![0u8; size as usize + 1];
                reader.read_exact(&mut value).await?;
                value.pop();
                insert(fields, name.as_bytes(), &value);
            }
        }
    }
}

fn insert(fields: &mut BTreeMap<String, Value>, name: &[u8], value: &[u8]) {
    let value = match std::str::from_utf8(value) {
        Ok(text) if is_printable(text) => Value::String(text.to_owned()),
        _ => Value::Array(value.iter().map(|&b| Value::from(b)).collect()),
    };
    let name = String::from_utf8_lossy(name);
    match fields.get_mut(name.as_ref()) {
        None => {
            fields.insert(name.into_owned(), value);
        }
        Some(Value::Array(values)) if values.first().is_some_and(|v| !v.is_number()) => {
            values.push(value)
        }
        Some(first) => {
            let first = std::mem::take(first);
            fields.insert(name.into_owned(), Value::Array(vec![first, value]));
        }
    }
}

/// systemd's `utf8_is_printable` (`is_unicode_control`): no C0 or C1 control character but
/// tab and newline.
fn is_printable(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || c == '\t' || c == '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn entries(input: &[u8]) -> Vec<BTreeMap<String, Value>> {
        let mut reader = tokio::io::BufReader::new(input);
        let (mut line, mut fields, mut all) = (Vec::new(), BTreeMap::new(), Vec::new());
        while read_entry(&mut reader, &mut line, &mut fields)
            .await
            .unwrap()
        {
            all.push(std::mem::take(&mut fields));
        }
        all
    }

    #[tokio::test]
    async fn text_binary_and_repeated_fields_read_as_journalctls_json_shows_them() {
        let mut input = b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=5\nMESSAGE=caf\xc3\xa9\tok\nTAG=a\nTAG=b\nBIN\n".to_vec();
        input.extend_from_slice(&3u64.to_le_bytes());
        input.extend_from_slice(b"x\x01y\nMULTI\n");
        input.extend_from_slice(&3u64.to_le_bytes());
        input.extend_from_slice(b"a\nb\n\nMESSAGE=second\n\n");
        let got = entries(&input).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["MESSAGE"], "café\tok");
        assert_eq!(got[0]["TAG"], serde_json::json!(["a", "b"]));
        assert_eq!(
            got[0]["BIN"],
            serde_json::json!([120, 1, 121]),
            "unprintable: bytes"
        );
        assert_eq!(
            got[0]["MULTI"], "a\nb",
            "a newline is printable, as in systemd"
        );
        assert_eq!(got[1]["MESSAGE"], "second");
    }

    #[tokio::test]
    async fn invalid_utf8_is_bytes_and_an_entry_cut_by_the_end_still_counts() {
        let got = entries(b"MESSAGE=\xff\xfe\nA=1").await;
        assert_eq!(got[0]["MESSAGE"], serde_json::json!([255, 254]));
        assert_eq!(got[0]["A"], "1");
    }

    #[tokio::test]
    async fn an_over_long_binary_field_is_skipped_and_the_entry_kept() {
        let mut input = b"MESSAGE=kept\nHUGE\n".to_vec();
        input.extend_from_slice(&(MAX_FIELD_BYTES + 1).to_le_bytes());
        input.extend(std::iter::repeat_n(b'z', MAX_FIELD_BYTES as usize + 1));
        input.extend_from_slice(b"\nAFTER=1\n\n");
        let got = entries(&input).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["MESSAGE"], "kept");
        assert_eq!(got[0]["AFTER"], "1");
        assert!(!got[0].contains_key("HUGE"));
    }
}
