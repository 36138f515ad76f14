//! Framing: bytes of a file into lines, without copying a line anywhere.
//!
//! Owns one growable buffer per file. [`LineReader::fill`] reads a large chunk into the free
//! space at its end; [`LineReader::next_line`] finds the next `\n` with `memchr` and hands the
//! line on as a [`Bytes`] slice of that same buffer (`split_to().freeze()`), so a line is never
//! copied or allocated on its own; the memory is released when the last slice of a chunk is
//! dropped, after CloudWatch acknowledged it. A final line without newline is held back until it
//! completes (or [`LineReader::take_partial`] is called after the multi-line idle timeout).
//! `\n` and `\r\n` are stripped. A line longer than `max_line_bytes` is cut into pieces of at most
//! that size, never silently truncated or dropped, each cut on a UTF-8 character boundary when
//! there is one near. With `\n` framing, each read is checked as UTF-8 once, up to its last
//! newline, so a line can say it is valid ([`Line::utf8`]) and decoding need not look at it
//! again: one SIMD pass over a 256 KiB chunk instead of a call per 120-byte line. It knows
//! nothing of files, events or CloudWatch.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

use crate::config::Charset;

/// Bytes read per `read(2)` by default: large reads amortise syscalls on busy files.
pub const DEFAULT_CHUNK_BYTES: usize = 256 * 1024;

/// How lines end in the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// `\n` (UTF-8 and every ASCII-compatible encoding).
    #[default]
    Bytes,
    /// `\n` as the UTF-16 little-endian unit `0A 00` at an even offset.
    Utf16Le,
    /// `\n` as the UTF-16 big-endian unit `00 0A` at an even offset.
    Utf16Be,
}

impl Framing {
    /// The framing an encoding needs.
    pub fn for_encoding(charset: Charset) -> Self {
        let encoding = charset.standard();
        if encoding == Some(encoding_rs::UTF_16LE) {
            Framing::Utf16Le
        } else if encoding == Some(encoding_rs::UTF_16BE) {
            Framing::Utf16Be
        } else {
            Framing::Bytes
        }
    }

    /// Largest raw line so that its UTF-8 form stays within `max_utf8_bytes`: a UTF-16 unit
    /// becomes up to three UTF-8 bytes.
    pub fn max_raw_line(self, max_utf8_bytes: usize) -> usize {
        match self {
            Framing::Bytes => max_utf8_bytes,
            Framing::Utf16Le | Framing::Utf16Be => (max_utf8_bytes / 3 * 2) & !1,
        }
    }
}

/// A line (or a piece of an over-long line) and where it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The content, without `\n` or `\r\n`.
    pub bytes: Bytes,
    /// Offset of the line's first byte in the file.
    pub start_offset: u64,
    /// Offset just past its terminator (the next line's start).
    pub end_offset: u64,
    /// True for every piece of an over-long line except the last.
    pub continues: bool,
    /// The reader saw that the content is valid UTF-8. False says nothing: the line was not
    /// checked (UTF-16 framing, or a chunk with invalid bytes before this line's end).
    pub utf8: bool,
}

/// Smallest chunk allocated for a read. A chunk is sized to what the file holds (one `fstat`),
/// so the few hundred bytes of a quiet file's append pin a few hundred bytes until they are
/// delivered, not a page: a glob over 10,000 such files held 4 KiB chunks for 40 MB.
pub const MIN_CHUNK_BYTES: usize = 256;

/// Splits a stream into lines.
#[derive(Debug)]
pub struct LineReader {
    buf: BytesMut,
    /// File offset of `buf[0]`.
    offset: u64,
    /// Bytes of `buf` already searched for a newline without finding one.
    searched: usize,
    /// Length of the front of `buf` known to be valid UTF-8. It ends on a character boundary,
    /// so every line (or piece cut on a character boundary) that lies within it is valid too.
    utf8_valid: usize,
    chunk_bytes: usize,
    max_line_bytes: usize,
    framing: Framing,
}

impl LineReader {
    /// A reader that starts at file `offset`, reads `chunk_bytes` at a time and cuts lines longer
    /// than `max_line_bytes`.
    pub fn new(offset: u64, chunk_bytes: usize, max_line_bytes: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            offset,
            searched: 0,
            utf8_valid: 0,
            chunk_bytes: chunk_bytes.max(1),
            max_line_bytes: max_line_bytes.max(4),
            framing: Framing::Bytes,
        }
    }

    /// The same reader for files whose lines end differently (UTF-16).
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Where the next line ends: (content length, bytes including the terminator).
    fn find_line_end(&self) -> Option<(usize, usize)> {
        let mut from = self.searched;
        loop {
            let at = from + memchr::memchr(b'\n', &self.buf[from..])?;
            match self.framing {
                Framing::Bytes => {
                    let content = if at > 0 && self.buf[at - 1] == b'\r' {
                        at - 1
                    } else {
                        at
                    };
                    return Some((content, at + 1));
                }
                Framing::Utf16Le if at.is_multiple_of(2) && self.buf.get(at + 1) == Some(&0) => {
                    let cr = at >= 2 && self.buf[at - 2] == b'\r' && self.buf[at - 1] == 0;
                    return Some((if cr { at - 2 } else { at }, at + 2));
                }
                Framing::Utf16Be if !at.is_multiple_of(2) && self.buf[at - 1] == 0 => {
                    let cr = at >= 3 && self.buf[at - 3] == 0 && self.buf[at - 2] == b'\r';
                    return Some((if cr { at - 3 } else { at - 1 }, at + 1));
                }
                _ => from = at + 1,
            }
        }
    }

    /// Reads once from `reader` into the buffer. Returns the number of bytes read; 0 means the
    /// end of the file for now.
    ///
    /// # Errors
    /// The read failed; the buffer is unchanged.
    pub fn fill(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        self.fill_from(reader, usize::MAX)
    }

    /// Like [`LineReader::fill`], reading at most `available` bytes (what the file holds beyond
    /// the offset read so far). Only that much of the buffer is prepared, and a small append
    /// gets a small chunk: an idle or slowly written file does not cost a 256 KiB chunk.
    ///
    /// # Errors
    /// The read failed; the buffer is unchanged.
    pub fn fill_from(&mut self, reader: &mut impl Read, available: usize) -> io::Result<usize> {
        if available == 0 {
            return Ok(0);
        }
        let want = available.min(self.chunk_bytes);
        if self.buf.capacity() - self.buf.len() < want.min((self.chunk_bytes / 4).max(1)) {
            // Either grows in place or, when earlier lines still hold the old chunk, moves only
            // the unconsumed tail (a partial line) into a new chunk. The buffer is never made
            // `with_capacity`: BytesMut would remember that size and round every later
            // chunk up to it (up to 64 KiB), where `reserve` on a `new()` one is exact.
            self.buf.reserve(
                want.max(MIN_CHUNK_BYTES)
                    .min(self.chunk_bytes.max(MIN_CHUNK_BYTES)),
            );
        }
        let start = self.buf.len();
        let spare = (self.buf.capacity() - start).min(available);
        // SAFETY-free zeroing: `resize` initialises only the bytes this read may fill, which
        // costs far less than the read itself and keeps this module free of unsafe code.
        self.buf.resize(start + spare, 0);
        match reader.read(&mut self.buf[start..]) {
            Ok(n) => {
                self.buf.truncate(start + n);
                self.check_utf8(start);
                Ok(n)
            }
            Err(err) => {
                self.buf.truncate(start);
                Err(err)
            }
        }
    }

    /// Extends the checked front of the buffer over the complete lines a read brought in
    /// (`buf[new..]` is new). A partial line is checked with the read that completes it, not
    /// before: a read may end inside a character. At invalid bytes the front stops, and the
    /// lines from there on are left unchecked until they are consumed.
    fn check_utf8(&mut self, new: usize) {
        if self.framing != Framing::Bytes {
            return;
        }
        let Some(last_newline) = memchr::memrchr(b'\n', &self.buf[new..]) else {
            return;
        };
        let end = new + last_newline + 1;
        let unchecked = &self.buf[self.utf8_valid..end];
        self.utf8_valid += match simdutf8::compat::from_utf8(unchecked) {
            Ok(_) => unchecked.len(),
            Err(err) => err.valid_up_to(),
        };
    }

    /// The next complete line, or a piece of an over-long one.
    pub fn next_line(&mut self) -> Option<Line> {
        if let Some((content_len, consumed)) = self.find_line_end()
            && content_len <= self.max_line_bytes
        {
            let mut taken = self.buf.split_to(consumed);
            taken.truncate(content_len);
            return Some(self.emit(taken.freeze(), consumed, false));
        }
        if self.buf.len() > self.max_line_bytes {
            let cut = match self.framing {
                Framing::Bytes => {
                    utf8_cut(&self.buf[..self.max_line_bytes + 1], self.max_line_bytes)
                }
                // Whole UTF-16 units only.
                Framing::Utf16Le | Framing::Utf16Be => self.max_line_bytes & !1,
            };
            let piece = self.buf.split_to(cut).freeze();
            return Some(self.emit(piece, cut, true));
        }
        // A half-seen terminator (the last byte) is looked at again after the next read.
        self.searched = self.buf.len().saturating_sub(2);
        None
    }

    fn emit(&mut self, bytes: Bytes, consumed: usize, continues: bool) -> Line {
        let start_offset = self.offset;
        self.offset += consumed as u64;
        self.searched = 0;
        // A piece of an over-long line is cut on a character boundary when the bytes are UTF-8,
        // so a checked front stays valid after it.
        let utf8 = consumed <= self.utf8_valid;
        self.utf8_valid = self.utf8_valid.saturating_sub(consumed);
        Line {
            bytes,
            start_offset,
            end_offset: self.offset,
            continues,
            utf8,
        }
    }

    /// Hands on the held-back final line without newline (after the idle timeout), if any.
    pub fn take_partial(&mut self) -> Option<Line> {
        if self.buf.is_empty() {
            return None;
        }
        let len = self.buf.len();
        // Taken whole, not split: an empty buffer split off a chunk still holds a reference to
        // it, and would keep the chunk alive after the line is delivered.
        let bytes = std::mem::take(&mut self.buf).freeze();
        Some(self.emit(bytes, len, false))
    }

    /// Lets go of the read chunk when nothing is held back, so an idle file holds no buffer of
    /// its own (a chunk is freed once the events cut from it are delivered). The next append
    /// gets a chunk of its size, one allocation per pass that read something. An empty buffer
    /// is replaced even when it has no capacity left: split off the end of a chunk, it still
    /// holds the chunk (300 files read to a line's end held 256 KiB each after delivery).
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// Bytes held back as an incomplete line.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Memory an incomplete line keeps alive: the rest of its chunk, which is freed only once
    /// the line is handed on (a line of 10 bytes may hold a 256 KiB chunk).
    pub fn held_bytes(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            self.buf.capacity()
        }
    }

    /// File offset of the first byte not yet handed on.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Where to cut `bytes` at most `max` long: at the last UTF-8 character start in the final
/// three bytes, so a multi-byte character is not split; at `max` if the data is not UTF-8 there.
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    for back in 0..4.min(max) {
        let at = max - back;
        if at < bytes.len() && !is_continuation(bytes[at]) {
            return at;
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one read at a time and collects every line, then the partial tail.
    fn frame(chunks: &[&[u8]], max_line: usize) -> (Vec<Line>, Option<Line>) {
        let mut reader = LineReader::new(0, 8, max_line);
        let mut lines = Vec::new();
        for chunk in chunks {
            let mut source: &[u8] = chunk;
            while !source.is_empty() {
                reader.fill(&mut source).unwrap();
                while let Some(line) = reader.next_line() {
                    lines.push(line);
                }
            }
        }
        let partial = reader.take_partial();
        (lines, partial)
    }

    fn texts(lines: &[Line]) -> Vec<&[u8]> {
        lines.iter().map(|l| &l.bytes[..]).collect()
    }

    #[test]
    fn lines_lose_lf_and_crlf_and_keep_offsets() {
        let (lines, partial) = frame(&[b"one\ntwo\r\n\nthree\n"], 1024);
        assert_eq!(texts(&lines), [&b"one"[..], b"two", b"", b"three"]);
        let offsets: Vec<_> = lines
            .iter()
            .map(|l| (l.start_offset, l.end_offset))
            .collect();
        assert_eq!(offsets, [(0, 4), (4, 9), (9, 10), (10, 16)]);
        assert!(partial.is_none());
    }

    #[test]
    fn a_partial_line_waits_for_its_newline_across_reads() {
        let mut reader = LineReader::new(100, 4, 1024);
        let mut first: &[u8] = b"hel";
        reader.fill(&mut first).unwrap();
        assert_eq!(reader.next_line(), None);
        assert_eq!(reader.pending_bytes(), 3);
        let mut rest: &[u8] = b"lo\nwor";
        while !rest.is_empty() {
            reader.fill(&mut rest).unwrap();
        }
        let line = reader.next_line().unwrap();
        assert_eq!(
            (&line.bytes[..], line.start_offset, line.end_offset),
            (&b"hello"[..], 100, 106)
        );
        assert_eq!(reader.next_line(), None);
        assert_eq!(reader.offset(), 106, "the held-back line is not consumed");
        let tail = reader.take_partial().unwrap();
        assert_eq!(
            (&tail.bytes[..], tail.start_offset, tail.end_offset),
            (&b"wor"[..], 106, 109)
        );
    }

    #[test]
    fn a_file_without_final_newline_keeps_its_last_line() {
        let (lines, partial) = frame(&[b"a\nlast"], 1024);
        assert_eq!(texts(&lines), [&b"a"[..]]);
        assert_eq!(&partial.unwrap().bytes[..], b"last");
    }

    #[test]
    fn a_crlf_split_between_reads_is_still_stripped() {
        let (lines, _) = frame(&[b"x\r", b"\ny\n"], 1024);
        assert_eq!(texts(&lines), [&b"x"[..], b"y"]);
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_pass_through_untouched() {
        let (lines, _) = frame(&[b"a\0b\n\xff\xfe\n"], 1024);
        assert_eq!(texts(&lines), [&b"a\0b"[..], b"\xff\xfe"]);
    }

    #[test]
    fn an_over_long_line_is_cut_into_pieces_never_dropped() {
        let long = vec![b'x'; 5 * 1024 * 1024 + 3];
        let mut input = long.clone();
        input.extend_from_slice(b"\nnext\n");
        let mut reader = LineReader::new(0, DEFAULT_CHUNK_BYTES, 1024 * 1024);
        let mut source: &[u8] = &input;
        let mut lines = Vec::new();
        while !source.is_empty() {
            reader.fill(&mut source).unwrap();
            while let Some(line) = reader.next_line() {
                lines.push(line);
            }
        }
        let pieces: Vec<_> = lines
            .iter()
            .take_while(|l| l.bytes.as_ref() != b"next")
            .collect();
        assert_eq!(pieces.len(), 6);
        assert!(pieces.iter().all(|p| p.bytes.len() <= 1024 * 1024));
        assert!(pieces[..5].iter().all(|p| p.continues) && !pieces[5].continues);
        let joined: Vec<u8> = pieces
            .iter()
            .flat_map(|p| p.bytes.iter().copied())
            .collect();
        assert_eq!(joined, long, "every byte is kept");
        assert_eq!(pieces[5].end_offset, long.len() as u64 + 1);
        assert_eq!(&lines.last().unwrap().bytes[..], b"next");
    }

    #[test]
    fn cuts_fall_on_utf8_character_boundaries() {
        // "é" is two bytes; a cut at 5 would split the third one.
        let (lines, _) = frame(&["aééé\n".as_bytes()], 6);
        assert!(
            lines.iter().all(|l| std::str::from_utf8(&l.bytes).is_ok()),
            "{lines:?}"
        );
        let joined: Vec<u8> = lines.iter().flat_map(|l| l.bytes.iter().copied()).collect();
        assert_eq!(joined, "aééé".as_bytes());
    }

    #[test]
    fn a_crlf_line_of_exactly_the_maximum_is_one_line() {
        let (lines, _) = frame(&[b"abcdef\r\nz\n"], 6);
        assert_eq!(texts(&lines), [&b"abcdef"[..], b"z"]);
        assert!(!lines[0].continues);
    }

    #[test]
    fn utf16_little_and_big_endian_lines_end_on_whole_units() {
        let text = "héllo\r\nwörld ✓\n\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for (bytes, framing, encoding) in [
            (le, Framing::Utf16Le, encoding_rs::UTF_16LE),
            (be, Framing::Utf16Be, encoding_rs::UTF_16BE),
        ] {
            let mut reader = LineReader::new(0, 3, 1 << 20).with_framing(framing);
            let mut source: &[u8] = &bytes;
            let mut lines = Vec::new();
            while !source.is_empty() {
                reader.fill(&mut source).unwrap();
                while let Some(line) = reader.next_line() {
                    lines.push(line);
                }
            }
            let decoded: Vec<String> = lines
                .iter()
                .map(|l| {
                    encoding
                        .decode_without_bom_handling(&l.bytes)
                        .0
                        .into_owned()
                })
                .collect();
            assert_eq!(decoded, ["héllo", "wörld ✓", ""], "{framing:?}");
            assert_eq!(lines.last().unwrap().end_offset, bytes.len() as u64);
        }
    }

    #[test]
    fn a_0x0a_byte_inside_a_utf16_character_is_not_a_newline() {
        // U+0A41 (GURMUKHI VOWEL SIGN U) is 41 0A in little-endian: no line end there.
        let bytes: Vec<u8> = "\u{0a41}x\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut reader = LineReader::new(0, 64, 1 << 20).with_framing(Framing::Utf16Le);
        let mut source: &[u8] = &bytes;
        reader.fill(&mut source).unwrap();
        let line = reader.next_line().unwrap();
        assert_eq!(line.bytes.len(), 4);
        assert_eq!(reader.next_line(), None);
    }

    #[test]
    fn millions_of_empty_lines_are_each_a_line() {
        let input = vec![b'\n'; 1_000_000];
        let (lines, partial) = frame(&[&input], 1024);
        assert_eq!(lines.len(), 1_000_000);
        assert!(partial.is_none());
    }

    #[test]
    fn lines_share_the_read_buffer_instead_of_copying() {
        let mut reader = LineReader::new(0, 1024, 1024);
        let mut source: &[u8] = b"first\nsecond\n";
        reader.fill(&mut source).unwrap();
        let a = reader.next_line().unwrap();
        let b = reader.next_line().unwrap();
        // Adjacent slices of one allocation: the second starts right after the first's newline.
        assert_eq!(unsafe_free_distance(&a.bytes, &b.bytes), 6);
    }

    #[test]
    fn a_small_append_gets_a_chunk_of_its_size_and_an_idle_reader_holds_none() {
        let mut reader = LineReader::new(0, DEFAULT_CHUNK_BYTES, 1024);
        // A catch-up read that ends on a line end, whose lines are still held (not yet
        // delivered): the next chunk is a new one, and must not take this one's size.
        let big = "x"
            .repeat(99)
            .repeat(1000)
            .replace("xxxxxxxxx", "xxxxxxxx\n");
        let mut source = big.as_bytes();
        reader.fill_from(&mut source, big.len()).unwrap();
        let held: Vec<Line> = std::iter::from_fn(|| reader.next_line()).collect();
        assert!(!held.is_empty() && reader.pending_bytes() == 0);
        let append = b"2026-12-03T10:00:00.000 web-01 app[1]: a quiet file's line\n";
        let mut source: &[u8] = append;
        reader.fill_from(&mut source, append.len()).unwrap();
        // A few hundred bytes, not the 4 KiB minimum or the 64 KiB of the first chunk.
        assert!(
            reader.buf.capacity() < 1024,
            "a {}-byte append took a {}-byte chunk",
            append.len(),
            reader.buf.capacity()
        );
        let line = reader.next_line().unwrap();
        assert_eq!(&line.bytes[..], &append[..append.len() - 1]);
        reader.release_idle();
        assert_eq!(reader.buf.capacity(), 0, "an idle reader keeps no chunk");
        drop((held, line));
    }

    /// The last line of a chunk, handed on, is the chunk's only holder: once it is delivered
    /// and dropped the chunk is freed. The reader's empty buffer used to keep a reference to
    /// it, so every file read to a line's end held its last chunk until its next append.
    #[test]
    fn a_reader_keeps_no_reference_to_a_chunk_it_handed_on_whole() {
        let mut reader = LineReader::new(0, 1024, 1024);
        let mut source: &[u8] = b"a partial line";
        reader.fill(&mut source).unwrap();
        assert!(reader.next_line().is_none());
        let partial = reader.take_partial().unwrap();
        assert!(
            partial.bytes.is_unique(),
            "the reader still holds the chunk"
        );

        let mut source: &[u8] = b"a whole line\n";
        reader.fill(&mut source).unwrap();
        let line = reader.next_line().unwrap();
        reader.release_idle();
        assert!(
            line.bytes.is_unique(),
            "the idle reader still holds the chunk"
        );
        assert_eq!((partial.end_offset, line.end_offset), (14, 27));
    }

    #[test]
    fn a_chunk_with_an_invalid_line_still_marks_the_lines_before_it() {
        let mut reader = LineReader::new(0, 1024, 1024);
        let text = ["d\u{e9}j\u{e0}\nok\n".as_bytes(), b"bad \xff\nafter\n"].concat();
        let mut source: &[u8] = &text;
        reader.fill(&mut source).unwrap();
        let marks: Vec<(Vec<u8>, bool)> = std::iter::from_fn(|| reader.next_line())
            .map(|l| (l.bytes.to_vec(), l.utf8))
            .collect();
        assert_eq!(
            marks,
            [
                ("d\u{e9}j\u{e0}".as_bytes().to_vec(), true),
                (b"ok".to_vec(), true),
                (b"bad \xff".to_vec(), false),
                // Checked line by line downstream; the next read checks from here again.
                (b"after".to_vec(), false),
            ]
        );
        let mut more: &[u8] = b"next\n";
        reader.fill(&mut more).unwrap();
        assert!(reader.next_line().unwrap().utf8);
    }

    #[test]
    fn lines_of_two_reads_taken_after_both_are_marked() {
        let mut reader = LineReader::new(0, 1024, 1024);
        reader.fill(&mut &"caf\u{e9}\n".as_bytes()[..]).unwrap();
        reader.fill(&mut &b"tea\n"[..]).unwrap();
        assert!(reader.next_line().unwrap().utf8);
        assert!(reader.next_line().unwrap().utf8);
    }

    fn unsafe_free_distance(a: &Bytes, b: &Bytes) -> usize {
        b.as_ptr() as usize - a.as_ptr() as usize
    }
}
