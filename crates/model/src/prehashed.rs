use std::hash::{BuildHasherDefault, Hasher};

/// Hashes values that are already outputs of a keyed hash (lookup tags, replay
/// digests) by folding their bytes: they are uniformly distributed and cannot
/// be chosen by an attacker, so hashing them again would only cost time.
#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// Builds [`PrehashedHasher`]s for `HashMap`s and `HashSet`s.
pub type BuildPrehashedHasher = BuildHasherDefault<PrehashedHasher>;
