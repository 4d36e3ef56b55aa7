//! Task names held compactly. A name `<seq>_<task_id>_<uuid>` as both
//! runners write it is a number, a short id and 16 bytes: packed, it takes
//! 32 bytes in place instead of a pointer plus a 60-70 byte heap string,
//! and a million of them make no million allocations. Any other name (a
//! long task id, upper-case hex) is kept as text, so every name round-trips
//! exactly.

use std::fmt;
use std::num::NonZeroU8;
use std::ops::Deref;

use crate::model::TaskName;

/// Longest task id kept in place (`T` + 6 hex digits is the real tool's).
const ID_MAX: usize = 7;
/// Longest name [`StoredName::text`] builds on the stack: 20 seq digits,
/// the id, the uuid and two underscores.
const PACKED_TEXT_MAX: usize = 20 + 1 + ID_MAX + 1 + 36;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoredName {
    Packed(Packed),
    Text(Box<str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Packed {
    seq: u64,
    uuid: [u8; 16],
    id: [u8; ID_MAX],
    /// The id's length (low 3 bits) and the digits the seq is written
    /// with, zero-padded (the other 5): one byte keeps the whole in 32.
    /// Never zero (an id has a character): the zero tells a `Text` name
    /// apart, so a [`StoredName`] takes 32 bytes, not 40.
    lengths: NonZeroU8,
}

impl StoredName {
    /// Stores `stem`; packed when packing gives back exactly the same text.
    pub fn new(stem: &str) -> StoredName {
        match pack(stem) {
            Some(packed) => StoredName::Packed(packed),
            None => StoredName::Text(stem.into()),
        }
    }

    /// Stores `stem`, already parsed as `name` (no second parse).
    pub fn parsed(stem: &str, name: &TaskName) -> StoredName {
        match pack_parsed(stem, name) {
            Some(packed) => StoredName::Packed(packed),
            None => StoredName::Text(stem.into()),
        }
    }

    /// The name as text (built on the stack when packed).
    pub fn text(&self) -> NameText<'_> {
        match self {
            StoredName::Text(text) => NameText::Borrowed(text),
            StoredName::Packed(p) => {
                let mut buf = [0u8; PACKED_TEXT_MAX];
                let len = p.write(&mut buf);
                NameText::Inline(buf, len as u8)
            }
        }
    }

    /// Whether this is the name `stem`, without building any text.
    pub fn is(&self, stem: &str) -> bool {
        match self {
            StoredName::Text(text) => **text == *stem,
            StoredName::Packed(p) => {
                let mut buf = [0u8; PACKED_TEXT_MAX];
                let len = p.write(&mut buf);
                buf[..len] == *stem.as_bytes()
            }
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            StoredName::Packed(p) => p.seq,
            StoredName::Text(text) => TaskName::parse(text).map_or(0, |n| n.seq),
        }
    }

    /// The task id inside the name (not unique: see ON-DISK.md).
    pub fn task_id(&self) -> &str {
        match self {
            // Packed ids are ASCII by construction.
            StoredName::Packed(p) => std::str::from_utf8(&p.id[..p.id_len()]).unwrap_or(""),
            StoredName::Text(text) => TaskName::parse(text).map_or(text, |n| n.task_id),
        }
    }
}

impl From<&str> for StoredName {
    fn from(stem: &str) -> StoredName {
        StoredName::new(stem)
    }
}

impl From<String> for StoredName {
    fn from(stem: String) -> StoredName {
        StoredName::new(&stem)
    }
}

impl fmt::Display for StoredName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl fmt::Debug for StoredName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text(), f)
    }
}

/// A name's text, borrowed or built in place; derefs to `str`.
pub enum NameText<'a> {
    Borrowed(&'a str),
    Inline([u8; PACKED_TEXT_MAX], u8),
}

impl Deref for NameText<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            NameText::Borrowed(text) => text,
            // Written by `Packed::write`: ASCII digits, id, hex and dashes.
            NameText::Inline(buf, len) => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
        }
    }
}

fn pack(stem: &str) -> Option<Packed> {
    pack_parsed(stem, &TaskName::parse(stem)?)
}

fn pack_parsed(stem: &str, name: &TaskName) -> Option<Packed> {
    let seq_text = &stem[..stem.find('_')?];
    let id = name.task_id.as_bytes();
    if id.len() > ID_MAX || !id.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    // Only lower-case hex packs: upper case would not come back the same.
    let uuid = name.lower_uuid?;
    let mut id_bytes = [0u8; ID_MAX];
    id_bytes[..id.len()].copy_from_slice(id);
    let lengths = NonZeroU8::new((seq_text.len() as u8) << 3 | id.len() as u8)?;
    let packed = Packed { seq: name.seq, uuid, id: id_bytes, lengths };
    // It comes back the same by construction: the seq's digits with their
    // width (zero padding kept), the id's bytes, the uuid's lower-case hex
    // at the dashes `TaskName::parse` checked. Writing it back to compare
    // was a fifth of a warm listing's parsing; the tests compare instead.
    debug_assert!({
        let mut buf = [0u8; PACKED_TEXT_MAX];
        let len = packed.write(&mut buf);
        &buf[..len] == stem.as_bytes()
    });
    Some(packed)
}

/// Bytes of a packed name in the cache file ([`Packed::to_bytes`]).
pub const PACKED_BYTES: usize = 32;

impl Packed {
    /// The name's packed form as bytes: the cache keeps names so, and reads
    /// them back without parsing text.
    pub fn to_bytes(&self) -> [u8; PACKED_BYTES] {
        let mut out = [0u8; PACKED_BYTES];
        out[..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..24].copy_from_slice(&self.uuid);
        out[24..31].copy_from_slice(&self.id);
        out[31] = self.lengths.get();
        out
    }

    /// A packed name from [`to_bytes`](Self::to_bytes), if it is one
    /// packing could have made: one form per name, so equal names stay
    /// equal (an id of 1 to 7 printable ASCII characters but `/`, zeros
    /// after it, the seq's width at least its digits and at most 20).
    pub fn from_bytes(bytes: &[u8; PACKED_BYTES]) -> Option<Packed> {
        let seq = u64::from_le_bytes(bytes[..8].try_into().ok()?);
        let packed = Packed {
            seq,
            uuid: bytes[8..24].try_into().ok()?,
            id: bytes[24..31].try_into().ok()?,
            lengths: NonZeroU8::new(bytes[31])?,
        };
        let (id_len, width) = (packed.id_len(), packed.seq_width());
        let id = &packed.id[..id_len.min(ID_MAX)];
        let digits = seq.checked_ilog10().map_or(1, |d| d as usize + 1);
        let valid = (1..=ID_MAX).contains(&id_len)
            && id.iter().all(|b| b.is_ascii_graphic() && *b != b'/')
            && packed.id[id_len..].iter().all(|b| *b == 0)
            && (digits..=20).contains(&width);
        valid.then_some(packed)
    }

    fn id_len(&self) -> usize {
        (self.lengths.get() & 7) as usize
    }

    fn seq_width(&self) -> usize {
        (self.lengths.get() >> 3) as usize
    }

    /// Writes the name into `buf`; returns its length.
    fn write(&self, buf: &mut [u8; PACKED_TEXT_MAX]) -> usize {
        let mut at = 0;
        let mut digits = [b'0'; 20];
        let mut seq = self.seq;
        let mut natural = 0;
        loop {
            digits[19 - natural] = b'0' + (seq % 10) as u8;
            natural += 1;
            seq /= 10;
            if seq == 0 {
                break;
            }
        }
        let width = self.seq_width().clamp(natural, 20);
        buf[..width].copy_from_slice(&digits[20 - width..]);
        at += width;
        buf[at] = b'_';
        at += 1;
        let id_len = self.id_len();
        buf[at..at + id_len].copy_from_slice(&self.id[..id_len]);
        at += id_len;
        buf[at] = b'_';
        at += 1;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in self.uuid.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                buf[at] = b'-';
                at += 1;
            }
            buf[at] = HEX[(byte >> 4) as usize];
            buf[at + 1] = HEX[(byte & 15) as usize];
            at += 2;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "2b7c9c9b-0000-4000-8000-00000000abcd";

    #[test]
    fn packed_bytes_come_back_and_only_canonical_ones_are_taken() {
        for stem in
            [format!("000012_T014_{UUID}"), format!("18446744073709551615_a_b_{UUID}"), format!("0_T_{UUID}")]
        {
            let StoredName::Packed(packed) = StoredName::new(&stem) else { panic!("{stem} packs") };
            assert_eq!(Packed::from_bytes(&packed.to_bytes()), Some(packed));
        }
        let StoredName::Packed(packed) = StoredName::new(&format!("000012_T014_{UUID}")) else { panic!() };
        let bytes = packed.to_bytes();
        let with = |at: usize, value: u8| {
            let mut b = bytes;
            b[at] = value;
            Packed::from_bytes(&b)
        };
        assert_eq!(with(31, (1 << 3) | 4), None, "a width below the seq's digits");
        assert_eq!(with(31, (21 << 3) | 4), None, "a width beyond 20");
        assert_eq!(with(31, 6 << 3), None, "an empty id");
        assert_eq!(with(25, b'/'), None, "a slash in the id");
        assert_eq!(with(28, b'x'), None, "bytes after the id");
        assert!(with(31, (20 << 3) | 4).is_some(), "more zero padding is another name, and fine");
    }

    #[test]
    fn real_names_pack_and_come_back_exactly() {
        for stem in [
            format!("000012_T014_{UUID}"),
            format!("0001736381200123456_Tab12cd_{UUID}"),
            format!("0_T1_{UUID}"),
            format!("18446744073709551615_T1_{UUID}"),
            format!("00000000000000000000_x_{UUID}"),
        ] {
            let name = StoredName::new(&stem);
            assert!(matches!(name, StoredName::Packed(_)), "{stem}");
            assert_eq!(&*name.text(), stem);
            assert!(name.is(&stem));
            assert_eq!(name.to_string(), stem);
        }
        let name = StoredName::new(&format!("000012_T014_{UUID}"));
        assert_eq!((name.seq(), name.task_id()), (12, "T014"));
    }

    #[test]
    fn every_packable_shape_comes_back_exactly() {
        // Packing trusts the parser's checks instead of writing each name
        // back: every seq width, id and uuid shape the checks let through
        // must come back byte for byte.
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut uuid = || {
            let hex: String = (0..32)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    char::from(b"0123456789abcdef"[(state >> 60) as usize])
                })
                .collect();
            format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
        };
        for seq in [0u64, 7, 10, 99, 12_345, 1_736_381_200_123_456, u64::MAX / 3, u64::MAX] {
            let natural = seq.to_string().len();
            for width in natural..=20 {
                for id in ["T", "T0a1b2c", "x-y", "a_b", "~!@#$%^", "Z9"] {
                    let stem = format!("{seq:0width$}_{id}_{}", uuid());
                    let name = StoredName::new(&stem);
                    assert!(matches!(name, StoredName::Packed(_)), "{stem}");
                    assert_eq!(&*name.text(), stem);
                    assert_eq!((name.seq(), name.task_id()), (seq, id));
                }
            }
        }
    }

    #[test]
    fn other_names_stay_text_and_come_back_exactly() {
        for stem in [
            format!("000012_a_long_task_id_{UUID}"),
            format!("000012_T014_{}", UUID.to_uppercase()),
            "not a task name".to_string(),
            format!("000012_Tä_{UUID}"),
        ] {
            let name = StoredName::new(&stem);
            assert!(matches!(name, StoredName::Text(_)), "{stem}");
            assert_eq!(&*name.text(), stem);
            assert!(name.is(&stem));
        }
        assert_eq!(StoredName::new(&format!("000012_my_task_{UUID}")).task_id(), "my_task");
    }

    #[test]
    fn distinct_names_stay_distinct() {
        let a = StoredName::new(&format!("000012_T014_{UUID}"));
        let b = StoredName::new(&format!("00012_T014_{UUID}"));
        let c = StoredName::new(&format!("000012_T015_{UUID}"));
        assert!(a != b && a != c && b != c);
        assert!(!a.is(&format!("00012_T014_{UUID}")));
        // The packed form's zero-free length byte holds the enum's tag.
        assert_eq!(std::mem::size_of::<StoredName>(), 32);
        assert_eq!(Packed::from_bytes(&[0; PACKED_BYTES]), None, "a zero length byte is no packed name");
    }
}
