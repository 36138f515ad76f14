//! collectd's binary network protocol, read as the stock agent reads it (go-collectd
//! `network.Parse` under telegraf's collectd parser): parts of `type u16, length u16` (big
//! endian, the length counting the header), string parts ending in NUL, numbers in 8 bytes,
//! and value parts whose gauges alone are little-endian doubles. A signed part
//! (HMAC-SHA-256 over the user and the rest of the packet) and an encrypted part
//! (AES-256-OFB with the SHA-256 of the password as key, the plaintext preceded by its SHA-1)
//! raise the security level of what they carry; value lists below the configured level are
//! dropped, as collectd's own network plugin does.
//!
//! Owns the parsing of one packet into [`ValueList`]s. Any bad part drops the whole packet,
//! as in the stock agent. Nothing here names metrics.

use aes::Aes256;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use ofb::cipher::{KeyIvInit, StreamCipher};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::auth::AuthFile;

const HOST: u16 = 0x0000;
const TIME: u16 = 0x0001;
const PLUGIN: u16 = 0x0002;
const PLUGIN_INSTANCE: u16 = 0x0003;
const TYPE: u16 = 0x0004;
const TYPE_INSTANCE: u16 = 0x0005;
const VALUES: u16 = 0x0006;
const INTERVAL: u16 = 0x0007;
const TIME_HR: u16 = 0x0008;
const INTERVAL_HR: u16 = 0x0009;
const SIGN_SHA256: u16 = 0x0200;
const ENCRYPT_AES256: u16 = 0x0210;

/// How much a packet's data is protected, and how much is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityLevel {
    /// Plain.
    None,
    /// Signed.
    Sign,
    /// Encrypted.
    Encrypt,
}

/// One value of a value list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A counter.
    Counter(u64),
    /// A gauge.
    Gauge(f64),
    /// A derive.
    Derive(i64),
    /// An absolute.
    Absolute(u64),
}

impl Value {
    /// As the stock agent sends it: the raw number, no rate.
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Counter(v) | Value::Absolute(v) => v as f64,
            Value::Gauge(v) => v,
            Value::Derive(v) => v as f64,
        }
    }
}

/// The values of one plugin instance and type at one time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValueList {
    /// `host`.
    pub host: String,
    /// `time`, milliseconds since the epoch.
    pub time_ms: i64,
    /// `plugin`.
    pub plugin: String,
    /// `plugin_instance`.
    pub plugin_instance: String,
    /// `type`.
    pub type_name: String,
    /// `type_instance`.
    pub type_instance: String,
    /// The values.
    pub values: Vec<Value>,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// A part's length is below its header or beyond the packet.
    #[error("part of type {kind:#06x} has an invalid length {length}")]
    Length {
        /// The part type.
        kind: u16,
        /// Its length.
        length: usize,
    },
    /// A string without its NUL, or a number part not 8 bytes.
    #[error("part of type {0:#06x} is malformed")]
    Malformed(u16),
    /// A value part whose size does not match its count, or with an unknown value type.
    #[error("invalid values part")]
    Values,
    /// A signature by a user the auth file does not know, or that does not verify.
    #[error("signature of user \"{0}\" does not verify")]
    Signature(String),
    /// An encrypted part that does not decrypt.
    #[error("encrypted part of user \"{0}\" does not decrypt")]
    Decrypt(String),
    /// The auth file cannot be read.
    #[error("cannot read the auth file: {0}")]
    AuthFile(String),
}

/// The parse state carried from part to part: collectd sends only what changed.
#[derive(Debug, Clone, Default)]
struct State {
    list: ValueList,
}

/// Parses `packet`; the value lists at or above `required` go to `out`. Returns how many
/// value lists were below it (dropped, as collectd's network plugin drops them).
///
/// # Errors
/// The packet is malformed, or a signature or encrypted part fails; nothing of it is kept.
pub fn parse(
    packet: &[u8],
    required: SecurityLevel,
    auth: &mut AuthFile,
    out: &mut Vec<ValueList>,
) -> Result<usize, PacketError> {
    let mut found = Vec::new();
    parse_parts(
        packet,
        SecurityLevel::None,
        auth,
        &mut State::default(),
        &mut found,
    )?;
    let total = found.len();
    let before = out.len();
    out.extend(
        found
            .into_iter()
            .filter(|(level, _)| *level >= required)
            .map(|(_, list)| list),
    );
    Ok(total - (out.len() - before))
}

fn parse_parts(
    mut rest: &[u8],
    level: SecurityLevel,
    auth: &mut AuthFile,
    state: &mut State,
    out: &mut Vec<(SecurityLevel, ValueList)>,
) -> Result<(), PacketError> {
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let length = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if length < 5 || length > rest.len() {
            return Err(PacketError::Length { kind, length });
        }
        let body = &rest[4..length];
        match kind {
            HOST => state.list.host = string(kind, body)?,
            PLUGIN => state.list.plugin = string(kind, body)?,
            PLUGIN_INSTANCE => state.list.plugin_instance = string(kind, body)?,
            TYPE => state.list.type_name = string(kind, body)?,
            TYPE_INSTANCE => state.list.type_instance = string(kind, body)?,
            TIME => {
                state.list.time_ms = i64::try_from(number(kind, body)?)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000)
            }
            // cdtime: 2^-30 seconds.
            TIME_HR => {
                state.list.time_ms = i64::try_from((u128::from(number(kind, body)?) * 1000) >> 30)
                    .unwrap_or(i64::MAX)
            }
            INTERVAL | INTERVAL_HR => {
                number(kind, body)?;
            }
            VALUES => {
                state.list.values = values(body)?;
                out.push((level, state.list.clone()));
            }
            // collectd never nests them; refusing bounds the recursion.
            SIGN_SHA256 | ENCRYPT_AES256 if level != SecurityLevel::None => {
                return Err(PacketError::Malformed(kind));
            }
            SIGN_SHA256 => {
                // The signature covers the user and everything after this part.
                if body.len() < 32 {
                    return Err(PacketError::Malformed(kind));
                }
                let (mac, user) = body.split_at(32);
                let user = String::from_utf8_lossy(user).into_owned();
                let signed = &rest[length..];
                let password = auth
                    .password(&user)
                    .map_err(|e| PacketError::AuthFile(e.to_string()))?
                    .ok_or_else(|| PacketError::Signature(user.clone()))?;
                let mut check = Hmac::<Sha256>::new_from_slice(password.as_bytes())
                    .map_err(|_| PacketError::Signature(user.clone()))?;
                check.update(user.as_bytes());
                check.update(signed);
                check
                    .verify_slice(mac)
                    .map_err(|_| PacketError::Signature(user.clone()))?;
                // What came before the signature is not vouched for: the signed parts start
                // from nothing, as in collectd and go-collectd.
                return parse_parts(
                    signed,
                    SecurityLevel::Sign,
                    auth,
                    &mut State::default(),
                    out,
                );
            }
            ENCRYPT_AES256 => {
                let plain = decrypt(body, auth)?;
                parse_parts(
                    &plain,
                    SecurityLevel::Encrypt,
                    auth,
                    &mut State::default(),
                    out,
                )?;
            }
            // Notifications and parts this version does not know are skipped, as in
            // go-collectd.
            _ => {}
        }
        rest = &rest[length..];
    }
    Ok(())
}

fn string(kind: u16, body: &[u8]) -> Result<String, PacketError> {
    match body.split_last() {
        Some((0, text)) => Ok(String::from_utf8_lossy(text).into_owned()),
        _ => Err(PacketError::Malformed(kind)),
    }
}

fn number(kind: u16, body: &[u8]) -> Result<u64, PacketError> {
    let bytes: [u8; 8] = body.try_into().map_err(|_| PacketError::Malformed(kind))?;
    Ok(u64::from_be_bytes(bytes))
}

fn values(body: &[u8]) -> Result<Vec<Value>, PacketError> {
    let count = usize::from(u16::from_be_bytes(
        body.get(..2)
            .ok_or(PacketError::Values)?
            .try_into()
            .map_err(|_| PacketError::Values)?,
    ));
    let body = &body[2..];
    if body.len() != count * 9 {
        return Err(PacketError::Values);
    }
    let (kinds, numbers) = body.split_at(count);
    kinds
        .iter()
        .zip(numbers.chunks_exact(8))
        .map(|(kind, bytes)| {
            let bytes: [u8; 8] = bytes.try_into().map_err(|_| PacketError::Values)?;
            Ok(match kind {
                0 => Value::Counter(u64::from_be_bytes(bytes)),
                1 => Value::Gauge(f64::from_le_bytes(bytes)),
                2 => Value::Derive(i64::from_be_bytes(bytes)),
                3 => Value::Absolute(u64::from_be_bytes(bytes)),
                _ => return Err(PacketError::Values),
            })
        })
        .collect()
}

/// `[user length u16][user][IV 16][AES-256-OFB(SHA-1(plain) 20, plain)]`, keyed by the
/// SHA-256 of the user's password.
fn decrypt(body: &[u8], auth: &mut AuthFile) -> Result<Vec<u8>, PacketError> {
    let malformed = PacketError::Malformed(ENCRYPT_AES256);
    let user_len = usize::from(u16::from_be_bytes(
        body.get(..2)
            .ok_or(malformed.clone())?
            .try_into()
            .map_err(|_| malformed.clone())?,
    ));
    if body.len() < 2 + user_len + 16 + 20 {
        return Err(malformed);
    }
    let user = String::from_utf8_lossy(&body[2..2 + user_len]).into_owned();
    let iv = &body[2 + user_len..2 + user_len + 16];
    let mut data = body[2 + user_len + 16..].to_vec();
    let password = auth
        .password(&user)
        .map_err(|e| PacketError::AuthFile(e.to_string()))?
        .ok_or_else(|| PacketError::Decrypt(user.clone()))?;
    let key = Sha256::digest(password.as_bytes());
    let mut cipher = ofb::Ofb::<Aes256>::new_from_slices(&key, iv)
        .map_err(|_| PacketError::Decrypt(user.clone()))?;
    cipher.apply_keystream(&mut data);
    let (checksum, plain) = data.split_at(20);
    if Sha1::digest(plain).as_slice() != checksum {
        return Err(PacketError::Decrypt(user));
    }
    Ok(plain.to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A packet builder, as collectd's network plugin writes them.
    #[derive(Default)]
    pub struct Packet(pub Vec<u8>);

    impl Packet {
        fn part(&mut self, kind: u16, body: &[u8]) -> &mut Self {
            self.0.extend_from_slice(&kind.to_be_bytes());
            self.0
                .extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
            self.0.extend_from_slice(body);
            self
        }

        pub fn string(&mut self, kind: u16, text: &str) -> &mut Self {
            let mut body = text.as_bytes().to_vec();
            body.push(0);
            self.part(kind, &body)
        }

        pub fn number(&mut self, kind: u16, n: u64) -> &mut Self {
            self.part(kind, &n.to_be_bytes())
        }

        pub fn values(&mut self, values: &[Value]) -> &mut Self {
            let mut body = (values.len() as u16).to_be_bytes().to_vec();
            for v in values {
                body.push(match v {
                    Value::Counter(_) => 0,
                    Value::Gauge(_) => 1,
                    Value::Derive(_) => 2,
                    Value::Absolute(_) => 3,
                });
            }
            for v in values {
                body.extend_from_slice(&match v {
                    Value::Counter(n) | Value::Absolute(n) => n.to_be_bytes(),
                    Value::Gauge(g) => g.to_le_bytes(),
                    Value::Derive(d) => d.to_be_bytes(),
                });
            }
            self.part(VALUES, &body)
        }

        /// The load plugin's value list of host `web-01` at 1,764,000,000 s.
        pub fn load(&mut self) -> &mut Self {
            self.string(HOST, "web-01")
                .number(TIME_HR, 1_764_000_000u64 << 30)
                .number(INTERVAL_HR, 10u64 << 30)
                .string(PLUGIN, "load")
                .string(TYPE, "load")
                .values(&[Value::Gauge(0.5), Value::Gauge(0.25), Value::Gauge(0.125)])
        }

        pub fn signed(user: &str, password: &str, payload: &[u8]) -> Vec<u8> {
            let mut mac = Hmac::<Sha256>::new_from_slice(password.as_bytes()).unwrap();
            mac.update(user.as_bytes());
            mac.update(payload);
            let mut body = mac.finalize().into_bytes().to_vec();
            body.extend_from_slice(user.as_bytes());
            let mut packet = Packet::default();
            packet.part(SIGN_SHA256, &body);
            packet.0.extend_from_slice(payload);
            packet.0
        }

        pub fn encrypted(user: &str, password: &str, payload: &[u8]) -> Vec<u8> {
            let iv = [7u8; 16];
            let mut data = Sha1::digest(payload).to_vec();
            data.extend_from_slice(payload);
            let key = Sha256::digest(password.as_bytes());
            ofb::Ofb::<Aes256>::new_from_slices(&key, &iv)
                .unwrap()
                .apply_keystream(&mut data);
            let mut body = (user.len() as u16).to_be_bytes().to_vec();
            body.extend_from_slice(user.as_bytes());
            body.extend_from_slice(&iv);
            body.extend_from_slice(&data);
            let mut packet = Packet::default();
            packet.part(ENCRYPT_AES256, &body);
            packet.0
        }
    }

    fn auth() -> (tempfile::TempDir, AuthFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth_file");
        std::fs::write(&path, "alice: s3cret\n").unwrap();
        (dir, AuthFile::new(path))
    }

    fn parsed(packet: &[u8], level: SecurityLevel) -> Result<Vec<ValueList>, PacketError> {
        let (_dir, mut auth) = auth();
        let mut out = Vec::new();
        parse(packet, level, &mut auth, &mut out)?;
        Ok(out)
    }

    #[test]
    fn a_plain_packet_gives_its_value_lists_with_state_carried_over() {
        let mut packet = Packet::default();
        packet
            .load()
            .string(PLUGIN, "cpu")
            .string(PLUGIN_INSTANCE, "0");
        packet
            .string(TYPE, "cpu")
            .string(TYPE_INSTANCE, "user")
            .values(&[Value::Derive(-5)])
            .string(TYPE_INSTANCE, "system")
            .number(TIME, 1_764_000_001)
            .values(&[Value::Counter(7)]);
        let lists = parsed(&packet.0, SecurityLevel::None).unwrap();
        assert_eq!(lists.len(), 3);
        assert_eq!(lists[0].host, "web-01");
        assert_eq!(lists[0].time_ms, 1_764_000_000_000);
        assert_eq!(
            lists[0].values,
            [Value::Gauge(0.5), Value::Gauge(0.25), Value::Gauge(0.125)]
        );
        assert_eq!(
            (
                lists[1].plugin.as_str(),
                lists[1].plugin_instance.as_str(),
                lists[1].type_instance.as_str()
            ),
            ("cpu", "0", "user")
        );
        assert_eq!(lists[1].values, [Value::Derive(-5)]);
        assert_eq!(lists[2].type_instance, "system");
        assert_eq!(lists[2].time_ms, 1_764_000_001_000);
    }

    #[test]
    fn below_the_required_level_value_lists_are_dropped() {
        let mut plain = Packet::default();
        plain.load();
        assert!(parsed(&plain.0, SecurityLevel::Sign).unwrap().is_empty());
        let signed = Packet::signed("alice", "s3cret", &plain.0);
        assert_eq!(parsed(&signed, SecurityLevel::Sign).unwrap().len(), 1);
        assert!(parsed(&signed, SecurityLevel::Encrypt).unwrap().is_empty());
        let encrypted = Packet::encrypted("alice", "s3cret", &plain.0);
        assert_eq!(parsed(&encrypted, SecurityLevel::Encrypt).unwrap().len(), 1);
        assert_eq!(parsed(&encrypted, SecurityLevel::None).unwrap().len(), 1);
    }

    #[test]
    fn plain_parts_before_a_signed_packet_do_not_reach_its_value_lists() {
        let mut plain = Packet::default();
        plain.load();
        let signed = Packet::signed("alice", "s3cret", &plain.0);
        let mut forged = Packet::default();
        forged.string(PLUGIN_INSTANCE, "injected");
        forged.0.extend_from_slice(&signed);
        let lists = parsed(&forged.0, SecurityLevel::Sign).unwrap();
        assert_eq!(lists[0].plugin_instance, "");
        // Nested protection is refused: collectd never sends it, and it bounds recursion.
        let inner = Packet::encrypted("alice", "s3cret", &plain.0);
        let nested = Packet::encrypted("alice", "s3cret", &inner);
        assert_eq!(
            parsed(&nested, SecurityLevel::None),
            Err(PacketError::Malformed(ENCRYPT_AES256))
        );
        let (_dir, mut auth) = auth();
        let mut out = Vec::new();
        assert_eq!(
            parse(&plain.0, SecurityLevel::Encrypt, &mut auth, &mut out),
            Ok(1),
            "one value list below the level"
        );
    }

    #[test]
    fn a_hostile_time_saturates_instead_of_overflowing() {
        let mut packet = Packet::default();
        packet
            .number(TIME, u64::MAX)
            .string(TYPE, "load")
            .values(&[Value::Gauge(1.0)]);
        assert_eq!(
            parsed(&packet.0, SecurityLevel::None).unwrap()[0].time_ms,
            i64::MAX
        );
    }

    #[test]
    fn bad_signatures_passwords_and_parts_drop_the_packet() {
        let mut plain = Packet::default();
        plain.load();
        let mut forged = Packet::signed("alice", "s3cret", &plain.0);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            parsed(&forged, SecurityLevel::Sign),
            Err(PacketError::Signature("alice".into()))
        );
        let stranger = Packet::signed("mallory", "x", &plain.0);
        assert_eq!(
            parsed(&stranger, SecurityLevel::Sign),
            Err(PacketError::Signature("mallory".into()))
        );
        let wrong_key = Packet::encrypted("alice", "wrong", &plain.0);
        assert_eq!(
            parsed(&wrong_key, SecurityLevel::Encrypt),
            Err(PacketError::Decrypt("alice".into()))
        );
        let mut truncated = plain.0.clone();
        truncated.truncate(truncated.len() - 3);
        assert!(matches!(
            parsed(&truncated, SecurityLevel::None),
            Err(PacketError::Length { kind: VALUES, .. })
        ));
        let mut no_nul = Packet::default();
        no_nul.part(HOST, b"web");
        assert_eq!(
            parsed(&no_nul.0, SecurityLevel::None),
            Err(PacketError::Malformed(HOST))
        );
        let mut bad_type = Packet::default();
        bad_type.part(VALUES, &[0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parsed(&bad_type.0, SecurityLevel::None),
            Err(PacketError::Values)
        );
    }
}
