//! A file's character set, named as the stock agent names it.
//!
//! The stock agent (`plugins/inputs/logfile/fileconfig.go`, `FileConfig.init`) looks an
//! `encoding` up in three steps: `utf-8`, `utf_8`, `utf8` and `ascii` (exactly) read the bytes
//! as UTF-8; then the WHATWG labels (`golang.org/x/net/html/charset.Lookup`); then every name
//! and alias of the IANA registry that `golang.org/x/text` decodes (`ianaindex.IANA`). This
//! module does the same: WHATWG labels through `encoding_rs`, the IANA-only names through a
//! table onto `encoding_rs`, and the IBM PC code pages (437, 850, ...), which `encoding_rs` does
//! not have, through `oem_cp`'s tables. It owns the lookup and the decoding of one line; it
//! knows nothing of files or framing.

use std::borrow::Cow;

use encoding_rs::Encoding;

/// How a file's bytes become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// An encoding of the WHATWG standard (UTF-8, UTF-16, the Windows and ISO code pages, CJK).
    Standard(&'static Encoding),
    /// An IBM PC code page: ASCII below 0x80, a table above.
    PcCodePage {
        /// The IANA name.
        name: &'static str,
        /// The characters of bytes 0x80 to 0xFF.
        high: &'static [char; 128],
    },
}

/// Why a name is not a character set cwlite reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CharsetError {
    /// Neither a WHATWG label nor an IANA name the stock agent decodes.
    #[error("unknown encoding \"{0}\"")]
    Unknown(String),
    /// An EBCDIC code page: the stock agent accepts the name but splits lines at byte 0x0A,
    /// which is not a line end in EBCDIC, so it would send each file as one garbled event.
    #[error(
        "encoding \"{0}\" is EBCDIC, whose lines do not end in byte 0x0A: cwlite does not read it (convert the file, or use iconv in the writer)"
    )]
    Ebcdic(String),
}

impl Charset {
    /// UTF-8, the default.
    pub const UTF_8: Charset = Charset::Standard(encoding_rs::UTF_8);

    /// The character set an `encoding` value names, looked up as the stock agent does.
    ///
    /// # Errors
    /// The name is unknown, or names an EBCDIC code page.
    pub fn lookup(label: &str) -> Result<Charset, CharsetError> {
        // Exact, as in the stock agent: "UTF-8" goes on to the WHATWG lookup (same result), and
        // "ascii" must not: WHATWG reads it as windows-1252.
        if matches!(label, "" | "utf_8" | "utf-8" | "utf8" | "ascii") {
            return Ok(Self::UTF_8);
        }
        if let Some(encoding) = Encoding::for_label(label.as_bytes()) {
            return Ok(Charset::Standard(encoding));
        }
        let name = label.trim().to_ascii_lowercase();
        if let Some((_, encoding)) = IANA_ONLY.iter().find(|(alias, _)| *alias == name) {
            return Ok(Charset::Standard(encoding));
        }
        if let Some((_, iana, high)) = PC_CODE_PAGES
            .iter()
            .find(|(aliases, _, _)| aliases.contains(&name.as_str()))
        {
            return Ok(Charset::PcCodePage { name: iana, high });
        }
        if EBCDIC.contains(&name.as_str()) {
            return Err(CharsetError::Ebcdic(label.to_owned()));
        }
        Err(CharsetError::Unknown(label.to_owned()))
    }

    /// The canonical name (WHATWG, or IANA for a PC code page).
    pub fn name(self) -> &'static str {
        match self {
            Charset::Standard(encoding) => encoding.name(),
            Charset::PcCodePage { name, .. } => name,
        }
    }

    /// The `encoding_rs` encoding, if this is one (UTF-16 framing asks).
    pub fn standard(self) -> Option<&'static Encoding> {
        match self {
            Charset::Standard(encoding) => Some(encoding),
            Charset::PcCodePage { .. } => None,
        }
    }

    /// Whether the bytes are UTF-8 already.
    pub fn is_utf8(self) -> bool {
        self == Self::UTF_8
    }

    /// One line's text; bytes that are not valid in the set become U+FFFD.
    pub fn decode(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Charset::Standard(encoding) => encoding.decode_without_bom_handling(bytes).0,
            Charset::PcCodePage { high, .. } => {
                Cow::Owned(oem_cp::decode_string_complete_table(bytes, high))
            }
        }
    }
}

impl serde::Serialize for Charset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// IANA names and aliases (lowercase) of encodings `encoding_rs` has under other labels: those
/// `ianaindex.IANA` maps and the WHATWG list lacks. From the IANA character-sets registry.
const IANA_ONLY: &[(&str, &Encoding)] = &[
    ("csutf8", encoding_rs::UTF_8),
    // US-ASCII's aliases: x/text's ASCII turns every byte above 0x7F into U+FFFD, as UTF-8 does
    // with bytes that are not UTF-8 (and "ascii" itself reads as UTF-8 in the stock agent).
    ("iso-ir-6", encoding_rs::UTF_8),
    ("ansi_x3.4-1986", encoding_rs::UTF_8),
    ("iso_646.irv:1991", encoding_rs::UTF_8),
    ("iso646-us", encoding_rs::UTF_8),
    ("us", encoding_rs::UTF_8),
    ("ibm367", encoding_rs::UTF_8),
    ("cp367", encoding_rs::UTF_8),
    ("csascii", encoding_rs::UTF_8),
    // IANA's UTF-16 without a byte-order mark is big-endian.
    ("csutf16", encoding_rs::UTF_16BE),
    ("csutf16be", encoding_rs::UTF_16BE),
    ("csutf16le", encoding_rs::UTF_16LE),
    ("iso_8859-10:1992", encoding_rs::ISO_8859_10),
    ("csiso885913", encoding_rs::ISO_8859_13),
    ("iso-ir-199", encoding_rs::ISO_8859_14),
    ("iso_8859-14:1998", encoding_rs::ISO_8859_14),
    ("iso_8859-14", encoding_rs::ISO_8859_14),
    ("latin8", encoding_rs::ISO_8859_14),
    ("iso-celtic", encoding_rs::ISO_8859_14),
    ("l8", encoding_rs::ISO_8859_14),
    ("csiso885914", encoding_rs::ISO_8859_14),
    ("latin-9", encoding_rs::ISO_8859_15),
    ("csiso885915", encoding_rs::ISO_8859_15),
    ("iso-ir-226", encoding_rs::ISO_8859_16),
    ("iso_8859-16:2001", encoding_rs::ISO_8859_16),
    ("iso_8859-16", encoding_rs::ISO_8859_16),
    ("latin10", encoding_rs::ISO_8859_16),
    ("l10", encoding_rs::ISO_8859_16),
    ("csiso885916", encoding_rs::ISO_8859_16),
    ("iso_8859-6-e", encoding_rs::ISO_8859_6),
    ("iso_8859-6-i", encoding_rs::ISO_8859_6),
    ("iso_8859-8-e", encoding_rs::ISO_8859_8),
    ("iso_8859-8-i", encoding_rs::ISO_8859_8_I),
    ("cskoi8u", encoding_rs::KOI8_U),
    ("cswindows874", encoding_rs::WINDOWS_874),
    ("cswindows1250", encoding_rs::WINDOWS_1250),
    ("cswindows1251", encoding_rs::WINDOWS_1251),
    ("cswindows1252", encoding_rs::WINDOWS_1252),
    ("cswindows1253", encoding_rs::WINDOWS_1253),
    ("cswindows1254", encoding_rs::WINDOWS_1254),
    ("cswindows1255", encoding_rs::WINDOWS_1255),
    ("cswindows1256", encoding_rs::WINDOWS_1256),
    ("cswindows1257", encoding_rs::WINDOWS_1257),
    ("cswindows1258", encoding_rs::WINDOWS_1258),
    (
        "extended_unix_code_packed_format_for_japanese",
        encoding_rs::EUC_JP,
    ),
    ("csgb18030", encoding_rs::GB18030),
    ("cp936", encoding_rs::GBK),
    ("ms936", encoding_rs::GBK),
    ("windows-936", encoding_rs::GBK),
    ("csgbk", encoding_rs::GBK),
];

/// The IBM PC code pages `x/text` decodes (IBM866 is a WHATWG encoding): IANA aliases
/// (lowercase), IANA name, table.
type PcCodePage = (&'static [&'static str], &'static str, &'static [char; 128]);
const PC_CODE_PAGES: &[PcCodePage] = {
    use oem_cp::code_table as t;
    &[
        (
            &["ibm437", "cp437", "437", "cspc8codepage437"],
            "IBM437",
            &t::DECODING_TABLE_CP437,
        ),
        (
            &["ibm850", "cp850", "850", "cspc850multilingual"],
            "IBM850",
            &t::DECODING_TABLE_CP850,
        ),
        (
            &["ibm852", "cp852", "852", "cspcp852"],
            "IBM852",
            &t::DECODING_TABLE_CP852,
        ),
        (
            &["ibm855", "cp855", "855", "csibm855"],
            "IBM855",
            &t::DECODING_TABLE_CP855,
        ),
        (
            &[
                "ibm00858",
                "ccsid00858",
                "cp00858",
                "pc-multilingual-850+euro",
                "csibm00858",
            ],
            "IBM00858",
            &t::DECODING_TABLE_CP858,
        ),
        (
            &["ibm860", "cp860", "860", "csibm860"],
            "IBM860",
            &t::DECODING_TABLE_CP860,
        ),
        (
            &["ibm862", "cp862", "862", "cspc862latinhebrew"],
            "IBM862",
            &t::DECODING_TABLE_CP862,
        ),
        (
            &["ibm863", "cp863", "863", "csibm863"],
            "IBM863",
            &t::DECODING_TABLE_CP863,
        ),
        (
            &["ibm865", "cp865", "865", "csibm865"],
            "IBM865",
            &t::DECODING_TABLE_CP865,
        ),
    ]
};

/// The EBCDIC code pages `x/text` decodes (IBM037, IBM1047, IBM01140) and their aliases.
const EBCDIC: &[&str] = &[
    "ibm037",
    "cp037",
    "ebcdic-cp-us",
    "ebcdic-cp-ca",
    "ebcdic-cp-wt",
    "ebcdic-cp-nl",
    "csibm037",
    "ibm1047",
    "ibm-1047",
    "csibm1047",
    "ibm01140",
    "ccsid01140",
    "cp01140",
    "ebcdic-us-37+euro",
    "csibm01140",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stock_utf8_names_and_ascii_read_as_utf8() {
        for name in ["", "utf_8", "utf-8", "utf8", "ascii", "UTF-8", " utf-8 "] {
            assert_eq!(Charset::lookup(name), Ok(Charset::UTF_8), "{name}");
        }
        // Only exactly "ascii" is special: other case goes to WHATWG, as in the stock agent.
        assert_eq!(
            Charset::lookup("ASCII"),
            Ok(Charset::Standard(encoding_rs::WINDOWS_1252))
        );
    }

    #[test]
    fn whatwg_labels_come_first() {
        // WHATWG reads ISO-8859-1 as windows-1252; the stock agent's first lookup does too.
        assert_eq!(
            Charset::lookup("ISO-8859-1"),
            Ok(Charset::Standard(encoding_rs::WINDOWS_1252))
        );
        assert_eq!(
            Charset::lookup("Shift_JIS"),
            Ok(Charset::Standard(encoding_rs::SHIFT_JIS))
        );
        assert_eq!(
            Charset::lookup("utf-16"),
            Ok(Charset::Standard(encoding_rs::UTF_16LE))
        );
    }

    #[test]
    fn iana_only_names_map_onto_the_same_encodings() {
        for (name, encoding) in [
            ("Latin-9", encoding_rs::ISO_8859_15),
            ("ISO_8859-16:2001", encoding_rs::ISO_8859_16),
            ("windows-936", encoding_rs::GBK),
            ("csWindows1251", encoding_rs::WINDOWS_1251),
            (
                "Extended_UNIX_Code_Packed_Format_for_Japanese",
                encoding_rs::EUC_JP,
            ),
            ("ISO646-US", encoding_rs::UTF_8),
        ] {
            assert_eq!(
                Charset::lookup(name),
                Ok(Charset::Standard(encoding)),
                "{name}"
            );
        }
        // None of the table's names is a WHATWG label: the table only adds.
        for (alias, _) in IANA_ONLY {
            assert!(Encoding::for_label(alias.as_bytes()).is_none(), "{alias}");
        }
    }

    #[test]
    fn pc_code_pages_decode_their_upper_half() {
        let cp437 = Charset::lookup("IBM437").unwrap();
        assert_eq!(cp437.name(), "IBM437");
        assert_eq!(cp437.decode(b"\xfb\xac=\xab ok"), "√¼=½ ok");
        let cp850 = Charset::lookup("cp850").unwrap();
        assert_eq!(cp850.decode(b"caf\x82"), "café");
        assert_eq!(
            Charset::lookup("PC-Multilingual-850+euro")
                .unwrap()
                .decode(b"\xd5"),
            "€"
        );
        for (aliases, _, _) in PC_CODE_PAGES {
            for alias in *aliases {
                assert!(Encoding::for_label(alias.as_bytes()).is_none(), "{alias}");
            }
        }
    }

    #[test]
    fn ebcdic_and_unknown_names_are_refused_with_the_name() {
        assert_eq!(
            Charset::lookup("IBM037"),
            Err(CharsetError::Ebcdic("IBM037".into()))
        );
        let err = Charset::lookup("klingon").unwrap_err();
        assert_eq!(err.to_string(), "unknown encoding \"klingon\"");
    }
}
