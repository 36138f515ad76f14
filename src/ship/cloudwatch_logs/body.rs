//! The PutLogEvents request body, written straight from the read buffers.
//!
//! Owns the one copy an event's bytes make on their way out: the slices of the read buffer that
//! a [`RawEvent`](crate::tail::multiline::RawEvent) holds are JSON-escaped directly into the
//! body, which the SDK then signs and sends as it is (see `sink`). There is no `String` per
//! event and no second serialisation by the SDK. The body is the JSON 1.1 wire form of
//! PutLogEvents; it knows nothing of the network or of batching rules.
//!
//! Messages are valid UTF-8 by construction: `tail` decodes every encoding and replaces invalid
//! sequences before an event exists.

use bytes::Bytes;

use crate::event::LogEvent;

/// What each byte becomes inside a JSON string: 0 for itself, `u` for `\u00XX`, or the letter
/// of a short escape.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Bytes a body adds around each event besides its message (`{"timestamp":…,"message":""},`).
const EVENT_FRAME_BYTES: usize = 48;

/// Appends `text` to `out` as the inside of a JSON string.
pub fn escape_into(out: &mut Vec<u8>, text: &[u8]) {
    let mut run_start = 0;
    let mut i = 0;
    while i < text.len() {
        // Eight bytes at a time while none of them needs escaping, as in almost every log line.
        while let Some(word) = text.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if needs_escape(word) {
                break;
            }
            i += 8;
        }
        let end = (i + 8).min(text.len());
        for (j, &byte) in text.iter().enumerate().take(end).skip(i) {
            let escape = ESCAPE[byte as usize];
            if escape == 0 {
                continue;
            }
            out.extend_from_slice(&text[run_start..j]);
            run_start = j + 1;
            if escape == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xf)],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
        }
        i = end;
    }
    out.extend_from_slice(&text[run_start..]);
}

/// Whether any of the eight bytes of `word` is a control character, `"` or `\\` (exact for
/// "any": the classic zero-byte test, which may misplace a flag but never invents one).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    below_space
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        != 0
}

/// The body of one PutLogEvents call for `events` (already sorted and within the limits).
pub fn put_log_events_body(group: &str, stream: &str, events: &[LogEvent]) -> Bytes {
    let messages: usize = events.iter().map(|e| e.message.len).sum();
    let mut body = Vec::with_capacity(
        messages + events.len() * EVENT_FRAME_BYTES + group.len() + stream.len() + 64,
    );
    body.extend_from_slice(br#"{"logGroupName":""#);
    escape_into(&mut body, group.as_bytes());
    body.extend_from_slice(br#"","logStreamName":""#);
    escape_into(&mut body, stream.as_bytes());
    body.extend_from_slice(br#"","logEvents":["#);
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(br#"{"timestamp":"#);
        body.extend_from_slice(itoa::Buffer::new().format(event.timestamp_ms).as_bytes());
        body.extend_from_slice(br#","message":""#);
        for (j, part) in event.message.parts.iter().enumerate() {
            if j > 0 {
                body.extend_from_slice(br"\n");
            }
            escape_into(&mut body, part);
        }
        body.extend_from_slice(br#""}"#);
    }
    body.extend_from_slice(b"]}");
    body.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::multiline::RawEvent;

    fn event(ts: i64, parts: &[&[u8]]) -> LogEvent {
        let parts: crate::tail::multiline::Parts =
            parts.iter().map(|p| Bytes::copy_from_slice(p)).collect();
        let len = parts.iter().map(Bytes::len).sum::<usize>() + parts.len() - 1;
        LogEvent {
            timestamp_ms: ts,
            message: RawEvent {
                parts,
                len,
                start_offset: 0,
                end_offset: len as u64 + 1,
            },
            file: 1,
        }
    }

    #[test]
    fn every_byte_escapes_as_serde_json_escapes_it() {
        // At every place of a 19-byte text: inside an eight-byte word, across two, in the tail.
        for (byte, at) in (0u8..0x80).flat_map(|b| (0..19).map(move |at| (b, at))) {
            let mut text = *b"abcdefghijklmnopqrs";
            text[at] = byte;
            let mut mine = vec![b'"'];
            escape_into(&mut mine, &text);
            mine.push(b'"');
            let theirs = serde_json::to_vec(std::str::from_utf8(&text).unwrap()).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&mine),
                String::from_utf8_lossy(&theirs),
                "byte {byte:#04x} at {at}"
            );
        }
    }

    #[test]
    fn the_body_parses_back_to_the_messages_with_multi_line_events_joined() {
        let events = [
            event(1_000, &[b"plain \"quoted\" \\ tab\t".as_slice()]),
            event(
                2_000,
                &[
                    b"Exception: boom".as_slice(),
                    b"    at a.b(C.java:1)",
                    b"caf\xc3\xa9 \x01",
                ],
            ),
        ];
        let body = put_log_events_body("grp\"1", "stream/é", &events);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "logGroupName": "grp\"1",
                "logStreamName": "stream/é",
                "logEvents": [
                    {"timestamp": 1000, "message": "plain \"quoted\" \\ tab\t"},
                    {"timestamp": 2000, "message": "Exception: boom\n    at a.b(C.java:1)\ncafé \u{1}"},
                ]
            })
        );
    }

    #[test]
    fn an_empty_batch_is_still_a_valid_body() {
        let body = put_log_events_body("g", "s", &[]);
        assert_eq!(
            &body[..],
            br#"{"logGroupName":"g","logStreamName":"s","logEvents":[]}"#
        );
    }
}
