//! The PutLogEvents request body, written straight from the read buffers.
//!
//! Owns the one copy an event's bytes make on their way out: the slices of the read buffer that
//! a [`RawEvent`](crate::tail::multiline::RawEvent) holds are JSON-escaped directly into the
//! body, which the SDK then signs and sends as it is (see `sink`). There is no `String` per
//! event and no second serialisation by the SDK. The body is the JSON 1.1 wire form of
//! PutLogEvents; it knows nothing of the network or of batching rules.
//!
//! Escaping looks for the next byte to escape 16 bytes at a time (SSE2 on x86-64, a `u64` word
//! elsewhere) and copies the plain run before it in one call.
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
    let mut rest = text;
    loop {
        let plain = plain_len(rest);
        out.extend_from_slice(&rest[..plain]);
        let Some(&byte) = rest.get(plain) else {
            return;
        };
        let escape = ESCAPE[usize::from(byte)];
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
        rest = &rest[plain + 1..];
    }
}

/// How many bytes at the start of `text` need no escaping: sixteen at a time with SSE2 (part
/// of every x86-64), about twice as fast on log lines as eight at a time in a `u64`.
#[cfg(target_arch = "x86_64")]
fn plain_len(text: &[u8]) -> usize {
    // SAFETY: SSE2 is part of the x86-64 architecture itself: every CPU that can run this
    // binary has it. (A build's target features do not make the call safe by themselves.)
    unsafe { plain_len_sse2(text) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn plain_len_sse2(text: &[u8]) -> usize {
    let mut at = 0;
    while let Some(block) = text.get(at..at + 16) {
        let found = flags_sse2(block);
        if found != 0 {
            return at + found.trailing_zeros() as usize;
        }
        at += 16;
    }
    if at == text.len() {
        return at;
    }
    if text.len() >= 16 {
        // The last 16 bytes, overlapping the plain ones before `at` (which flag nothing).
        let last = text.len() - 16;
        let found = flags_sse2(&text[last..]);
        return if found == 0 {
            text.len()
        } else {
            last + found.trailing_zeros() as usize
        };
    }
    at + plain_len_bytewise(&text[at..])
}

/// Which of the 16 bytes of `block` need escaping, one bit each: `"`, `\\`, or at most 0x1f
/// (compared unsigned: the minimum with 0x1f is the byte itself).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn flags_sse2(block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let half = |at: usize| i64::from_le_bytes(block[at..at + 8].try_into().expect("eight bytes"));
    let v = _mm_set_epi64x(half(8), half(0));
    let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
    let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
}

/// [`plain_len`] elsewhere: eight bytes at a time in a `u64`.
#[cfg(not(target_arch = "x86_64"))]
fn plain_len(text: &[u8]) -> usize {
    plain_len_by_words(text)
}

/// [`plain_len`], eight bytes at a time in a `u64` (compiled everywhere, so that x86-64's tests
/// check it too).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
fn plain_len_by_words(text: &[u8]) -> usize {
    let mut at = 0;
    while let Some(word) = text.get(at..at + 8) {
        if needs_escape(u64::from_le_bytes(word.try_into().expect("eight bytes"))) {
            break;
        }
        at += 8;
    }
    at + plain_len_bytewise(&text[at..])
}

/// [`plain_len`] a byte at a time.
fn plain_len_bytewise(text: &[u8]) -> usize {
    text.iter()
        .position(|&b| ESCAPE[usize::from(b)] != 0)
        .unwrap_or(text.len())
}

/// Whether any of the eight bytes of `word` is a control character, `"` or `\\` (exact for
/// "any": the classic zero-byte test, which may misplace a flag but never invents one).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
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
        // At every place of a 40-byte text: in either 16-byte block, in the overlapping last
        // block, inside an eight-byte word or across two, and in a short text's bytes.
        let specials: Vec<&[u8]> = (0u8..0x80)
            .map(|b| std::slice::from_ref(&ASCII[usize::from(b)]))
            .chain(["é".as_bytes(), "€".as_bytes(), "😀".as_bytes()])
            .collect();
        for len in [5, 19, 40] {
            for special in &specials {
                for at in 0..len - special.len() + 1 {
                    let mut text = b"abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].to_vec();
                    text[at..at + special.len()].copy_from_slice(special);
                    let mut mine = vec![b'"'];
                    escape_into(&mut mine, &text);
                    mine.push(b'"');
                    let theirs = serde_json::to_vec(std::str::from_utf8(&text).unwrap()).unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&mine),
                        String::from_utf8_lossy(&theirs),
                        "{special:?} at {at} of {len}"
                    );
                }
            }
        }
    }

    const ASCII: [u8; 128] = {
        let mut table = [0u8; 128];
        let mut b = 0;
        while b < 128 {
            table[b] = b as u8;
            b += 1;
        }
        table
    };

    #[test]
    fn every_way_of_finding_the_first_byte_to_escape_agrees() {
        // Any byte (invalid UTF-8 too) at any place of texts of every length up to three
        // blocks, with a second one after it now and then.
        for len in 0..=48 {
            for byte in 0..=255u8 {
                for at in 0..len {
                    let mut text = vec![b'x'; len];
                    text[at] = byte;
                    if at + 3 < len {
                        text[at + 3] = b'"';
                    }
                    let want = plain_len_bytewise(&text);
                    assert_eq!(plain_len(&text), want, "{byte:#04x} at {at} of {len}");
                    assert_eq!(
                        plain_len_by_words(&text),
                        want,
                        "{byte:#04x} at {at} of {len}"
                    );
                }
            }
            assert_eq!(plain_len(&vec![0xff; len]), len);
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
