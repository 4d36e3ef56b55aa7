//! A fast, deterministic hasher for the index's name maps. File names in
//! one's own run directories are not adversarial input, so SipHash's
//! flood resistance buys nothing here, and hashing a million names on a
//! cold build is a measurable share of it.

use std::hash::{BuildHasher, Hasher};

/// The multiply-rotate hash popularised by Firefox and rustc (FxHash).
#[derive(Debug, Clone, Copy, Default)]
pub struct NameHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ (rest.len() as u64) << 56);
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct BuildNameHasher;

impl BuildHasher for BuildNameHasher {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher::default()
    }
}

/// A persistent map keyed by names, hashed with [`NameHasher`].
pub type NameMap<K, V> = imbl::GenericHashMap<K, V, BuildNameHasher, imbl::shared_ptr::DefaultSharedPtr>;

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(text: &str) -> u64 {
        BuildNameHasher.hash_one(text)
    }

    #[test]
    fn distinguishes_names_and_is_deterministic() {
        assert_eq!(hash("000012_T014_x"), hash("000012_T014_x"));
        assert_ne!(hash("000012_T014_x"), hash("000012_T015_x"));
        assert_ne!(hash("a"), hash("a\0"));
        let mut map: NameMap<std::sync::Arc<str>, u32> = NameMap::default();
        map.insert("k".into(), 1);
        assert_eq!(map.get("k"), Some(&1));
    }
}
