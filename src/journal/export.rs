//! journalctl's export format (`--output=export`), read into an entry's fields.
//!
//! Owns the framing: `FIELD=value` lines, a binary field as its name, a newline, a 64-bit
//! little-endian length and the bytes, and a blank line after each entry. Export is what
//! journalctl writes cheapest: its JSON output cost four times the CPU for the same entries
//! (`benches/journal_read.rs`). The fields are then what journalctl's JSON would show: text
//! that is valid, printable UTF-8 as a string, anything else as an array of byte values, and a
//! field that appears several times as an array of its values. An entry keeps at most
//! [`MAX_ENTRY_BYTES`] of values. It knows nothing of messages.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// Most bytes of field values an entry keeps: an entry CloudWatch could take whole is at most
/// 1 MiB, and journald allows fields of up to 768 MiB. Fields beyond it are dropped, and a
/// text field that crosses it is cut, so one entry cannot take the process's memory.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Room for a field's name beyond the entry's bound.
const NAME_ROOM: usize = 256;

/// The longest binary field kept: journalctl shows one as an array of byte values, which takes
/// about 70 bytes of memory a byte here. Longer ones (core dumps) are dropped.
pub const MAX_BINARY_FIELD_BYTES: u64 = 64 * 1024;

/// Reads the next entry's fields into `fields` (emptied first), using `line` as scratch.
/// `Ok(false)` at the end of the stream with no entry started. Fields past
/// [`MAX_ENTRY_BYTES`] are dropped; `Ok(true)` is returned all the same.
///
/// # Errors
/// The stream failed or ended inside a binary field.
pub async fn read_entry<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    fields: &mut BTreeMap<String, Value>,
) -> std::io::Result<bool> {
    fields.clear();
    let mut kept = 0usize;
    loop {
        line.clear();
        let room = MAX_ENTRY_BYTES.saturating_sub(kept);
        // A field name (at most 64 bytes in journald) always fits, so a binary field's size
        // and bytes that follow its name are never taken for lines.
        let (read, whole) = read_line_capped(reader, line, room + NAME_ROOM).await?;
        if read == 0 {
            return Ok(!fields.is_empty());
        }
        if line.is_empty() && whole {
            if fields.is_empty() {
                continue;
            }
            return Ok(true);
        }
        match memchr::memchr(b'=', line) {
            Some(eq) => {
                let mut value = &line[eq + 1..];
                let whole = whole && value.len() <= room;
                value = &value[..value.len().min(room)];
                if !whole {
                    // Cut on a character boundary, as a file's over-long line is.
                    let mut end = value.len();
                    while end > 0
                        && std::str::from_utf8(&value[..end]).is_err()
                        && value.len() - end < 4
                    {
                        end -= 1;
                    }
                    value = &value[..end];
                    if value.is_empty() {
                        continue;
                    }
                }
                kept += value.len();
                insert(fields, &line[..eq], value);
            }
            None if !whole => {}
            None => {
                let name = String::from_utf8_lossy(line).into_owned();
                let mut size = [0u8; 8];
                reader.read_exact(&mut size).await?;
                let size = u64::from_le_bytes(size);
                if size > MAX_BINARY_FIELD_BYTES || size as usize > room {
                    let wanted = size.saturating_add(1);
                    let skipped =
                        tokio::io::copy(&mut (&mut *reader).take(wanted), &mut tokio::io::sink())
                            .await?;
                    if skipped < wanted {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    continue;
                }
                let mut value = vec![0u8; size as usize + 1];
                reader.read_exact(&mut value).await?;
                value.pop();
                kept += value.len();
                insert(fields, name.as_bytes(), &value);
            }
        }
    }
}

/// Reads one line into `line` (without its newline), keeping at most `cap` bytes of it and
/// reading past the rest. Returns the bytes read (0 at the end of the stream) and whether
/// the line was kept whole.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<(usize, bool)> {
    let (mut read, mut whole) = (0, true);
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((read, whole));
        }
        let (taken, end) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, Some(i)),
            None => (available.len(), None),
        };
        let piece = &available[..end.unwrap_or(taken)];
        let room = cap.saturating_sub(line.len());
        if piece.len() > room {
            whole = false;
        }
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        reader.consume(taken);
        read += taken;
        if end.is_some() {
            return Ok((read, whole));
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
        input.extend_from_slice(&(MAX_BINARY_FIELD_BYTES + 1).to_le_bytes());
        input.extend(std::iter::repeat_n(
            b'z',
            MAX_BINARY_FIELD_BYTES as usize + 1,
        ));
        input.extend_from_slice(b"\nAFTER=1\n\n");
        let got = entries(&input).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["MESSAGE"], "kept");
        assert_eq!(got[0]["AFTER"], "1");
        assert!(!got[0].contains_key("HUGE"));
    }

    #[tokio::test]
    async fn an_entry_keeps_at_most_its_bound_of_text_and_the_next_entry_is_whole() {
        let mut input = b"A=".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_ENTRY_BYTES - 10));
        input.extend_from_slice(b"\nMESSAGE=");
        input.extend(std::iter::repeat_n(b'm', 100));
        input.extend_from_slice(b"\nLATER=dropped\n\nMESSAGE=next\n\n");
        let got = entries(&input).await;
        assert_eq!(got.len(), 2);
        let a = got[0]["A"].as_str().unwrap().len();
        let message = got[0]["MESSAGE"].as_str().unwrap().len();
        assert_eq!(a, MAX_ENTRY_BYTES - 10);
        assert_eq!(message, 10, "cut to what is left");
        assert!(!got[0].contains_key("LATER"), "nothing is left for it");
        assert_eq!(got[1]["MESSAGE"], "next");
    }

    #[tokio::test]
    async fn a_binary_size_that_cannot_be_read_is_the_end_not_a_panic() {
        let mut input = b"B\n".to_vec();
        input.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut reader = tokio::io::BufReader::new(input.as_slice());
        let (mut line, mut fields) = (Vec::new(), BTreeMap::new());
        assert!(
            read_entry(&mut reader, &mut line, &mut fields)
                .await
                .is_err()
        );
    }
}
