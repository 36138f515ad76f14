//! Property tests over hostile input (proptest): the line framer, the `timestamp_format`
//! parser and the JSON configuration loader never panic or hang, and say where an error is;
//! the framer's UTF-8 marks are never wrong.
//! Each property runs a bounded number of cases so the suite stays fast in CI; cases proptest
//! finds are kept in `tests/properties.proptest-regressions` and replayed first.

use std::io::Read;

use cwlite::config::expand::HostFacts;
use cwlite::config::{self, Environment, RegionPolicy, Timezone};
use cwlite::tail::line_reader::LineReader;
use cwlite::tail::timestamp::TimestampFormat;
use proptest::prelude::*;

/// A reader handing out its data in the given piece sizes, as a file being appended to would.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Bytes rich in what breaks framers: newlines, carriage returns, NULs, invalid UTF-8.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            3 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => Just(0u8),
            1 => Just(0xff),
        ],
        0..2000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the bytes and however they arrive, the lines put back together are the input:
    /// nothing lost, nothing duplicated, offsets contiguous, `\n` and `\r\n` stripped.
    #[test]
    fn framing_loses_and_invents_nothing(
        data in hostile_bytes(),
        sizes in prop::collection::vec(1usize..300, 1..8),
        chunk in 16usize..512,
        max_line in 8usize..300,
    ) {
        let mut reader = LineReader::new(0, chunk, max_line);
        let mut source = Pieces { data: data.clone(), at: 0, sizes, turn: 0 };
        let mut rebuilt = Vec::new();
        let mut offset = 0u64;
        let mut push = |line: cwlite::tail::line_reader::Line, rebuilt: &mut Vec<u8>| {
            prop_assert_eq!(line.start_offset, offset, "offsets are contiguous");
            prop_assert!(line.bytes.len() <= max_line, "no line over the limit");
            rebuilt.extend_from_slice(&line.bytes);
            // What the line dropped is exactly its terminator.
            let dropped = (line.end_offset - line.start_offset) as usize - line.bytes.len();
            let end = line.end_offset as usize;
            rebuilt.extend_from_slice(&data[end - dropped..end]);
            offset = line.end_offset;
            Ok(())
        };
        let mut rounds = 0;
        loop {
            rounds += 1;
            prop_assert!(rounds < 100_000, "the framer does not spin");
            let n = reader.fill(&mut source).unwrap();
            while let Some(line) = reader.next_line() {
                push(line, &mut rebuilt)?;
            }
            if n == 0 && source.at == data.len() {
                break;
            }
        }
        if let Some(line) = reader.take_partial() {
            push(line, &mut rebuilt)?;
        }
        prop_assert_eq!(rebuilt, data);
    }

    /// Any `timestamp_format` either compiles or is refused with a reason; one that compiles
    /// never panics on any line.
    #[test]
    fn timestamp_formats_never_panic(
        format in "([%][a-zA-Z%:.]|[a-z0-9 :/.,TZ-]){0,24}",
        lines in prop::collection::vec("[ -~]{0,60}", 1..8),
    ) {
        match TimestampFormat::new(&format, Timezone::Utc) {
            Ok(parser) => {
                for line in &lines {
                    let _ = parser.find(line.as_bytes(), 1_764_000_000_000);
                }
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    /// Any JSON in any place of a configuration is accepted or refused with errors that name
    /// the file and say what is wrong; the loader never panics.
    #[test]
    fn the_config_loader_never_panics_and_locates_its_errors(
        value in json_value(),
        place in 0usize..6,
    ) {
        let config = match place {
            0 => value,
            1 => serde_json::json!({"agent": value}),
            2 => serde_json::json!({"metrics": {"metrics_collected": value}}),
            3 => serde_json::json!({"metrics": {"metrics_collected": {"cpu": value}}}),
            4 => serde_json::json!({"logs": {"logs_collected": {"files": {"collect_list": [value]}}}}),
            _ => serde_json::json!({"logs": value}),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fuzz.json");
        std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
        let host = HostFacts { hostname: "h".into(), ip_address: None, date: "2026-11-27".into() };
        match config::load(&[file], None, &Environment::fixed(&[], host), RegionPolicy::Optional) {
            Ok(_) => {}
            Err(err) => {
                prop_assert!(!err.errors.0.is_empty());
                for error in &err.errors.0 {
                    let text = error.to_string();
                    prop_assert!(text.contains("fuzz.json"), "{}", text);
                    prop_assert!(!text.trim().is_empty());
                }
            }
        }
    }

    /// Random bytes as a configuration file: a syntax error with its line and column, never a
    /// panic.
    #[test]
    fn a_config_file_of_random_bytes_is_a_located_error(data in hostile_bytes()) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bytes.json");
        std::fs::write(&file, &data).unwrap();
        let host = HostFacts { hostname: "h".into(), ip_address: None, date: "2026-11-27".into() };
        if let Err(err) = config::load(&[file], None, &Environment::fixed(&[], host), RegionPolicy::Optional) {
            for error in &err.errors.0 {
                prop_assert!(error.to_string().contains("bytes.json"), "{}", error);
            }
        }
    }
}

/// Characters of one to four bytes, line ends, and invalid or truncated sequences.
const UTF8_ATOMS: [&[u8]; 9] = [
    b"a",
    b"\n",
    b"\r\n",
    "\u{e9}".as_bytes(),
    "\u{20ac}".as_bytes(),
    "\u{1f600}".as_bytes(),
    b"\xff",
    b"\xe2\x82",
    b"\x80",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The framer's per-read UTF-8 check: every line it marks is valid UTF-8, and in valid
    /// input every complete line is marked (only pieces of an over-long line may not be).
    #[test]
    fn lines_marked_utf8_are_valid_and_valid_complete_lines_are_marked(
        picks in prop::collection::vec(0..UTF8_ATOMS.len(), 0..300),
        sizes in prop::collection::vec(1usize..50, 1..4),
        chunk in 1usize..64,
        max_line in 4usize..40,
    ) {
        let data: Vec<u8> = picks.iter().flat_map(|&i| UTF8_ATOMS[i].iter().copied()).collect();
        let valid = std::str::from_utf8(&data).is_ok();
        let mut reader = LineReader::new(0, chunk, max_line);
        let mut source = Pieces { data: data.clone(), at: 0, sizes, turn: 0 };
        let mut lines = Vec::new();
        while reader.fill(&mut source).unwrap() > 0 {
            while let Some(line) = reader.next_line() {
                lines.push(line);
            }
        }
        let joined: Vec<u8> = lines.iter().flat_map(|l| l.bytes.iter().copied()).collect();
        prop_assert!(joined.len() <= data.len());
        for line in &lines {
            if line.utf8 {
                prop_assert!(std::str::from_utf8(&line.bytes).is_ok(), "{line:?}");
            } else {
                prop_assert!(!valid || line.continues, "valid input, unmarked line {line:?}");
            }
        }
        if let Some(partial) = reader.take_partial() {
            prop_assert!(!partial.utf8 || std::str::from_utf8(&partial.bytes).is_ok());
        }
    }
}

/// JSON values of any shape, with keys the configuration uses so that validation goes deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("measurement".to_owned()),
        Just("metrics_collection_interval".to_owned()),
        Just("resources".to_owned()),
        Just("file_path".to_owned()),
        Just("log_group_name".to_owned()),
        Just("timestamp_format".to_owned()),
        Just("multi_line_start_pattern".to_owned()),
        Just("encoding".to_owned()),
        Just("filters".to_owned()),
        Just("retention_in_days".to_owned()),
        Just("append_dimensions".to_owned()),
        Just("region".to_owned()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        "[ -~]{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("${HOME}/{instance_id}/%Y%m%d")),
        Just(serde_json::Value::from("(unclosed[")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
