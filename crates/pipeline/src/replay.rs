//! Replay detection in bounded memory: two generations of digests.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Remembers the digests of recently written observations, so a replay is written once.
///
/// Digests go into the current generation; when it holds half the window, the
/// previous generation is dropped and the current one takes its place. A
/// replay is caught when its first occurrence is among the last `window / 2`
/// to `window` distinct observations; memory never exceeds two generations.
pub(crate) struct ReplayWindow {
    current: DigestSet,
    previous: DigestSet,
    generation_size: usize,
}

type DigestSet = HashSet<u128, BuildHasherDefault<DigestHasher>>;

impl ReplayWindow {
    pub(crate) fn new(window: usize) -> Self {
        ReplayWindow {
            current: DigestSet::default(),
            previous: DigestSet::default(),
            generation_size: (window / 2).max(1),
        }
    }

    /// Records a digest; returns `true` when it was not seen within the window.
    pub(crate) fn first_sighting(&mut self, digest: u128) -> bool {
        if self.previous.contains(&digest) {
            return false;
        }
        if !self.current.insert(digest) {
            return false;
        }
        if self.current.len() >= self.generation_size {
            self.previous = std::mem::take(&mut self.current);
        }
        true
    }
}

/// Hashes 128-bit digests by folding them; they are keyed-hash outputs already.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_within_the_window_are_caught_and_memory_is_bounded() {
        let mut window = ReplayWindow::new(100);
        for digest in 0..50u128 {
            assert!(window.first_sighting(digest));
        }
        assert!(!window.first_sighting(7), "in the previous generation");
        for digest in 50..99u128 {
            assert!(window.first_sighting(digest));
        }
        assert!(!window.first_sighting(98), "in the current generation");
        assert!(
            !window.first_sighting(0),
            "still in the previous generation"
        );
        assert!(window.first_sighting(99));
        // The first generation has now been dropped.
        assert!(window.first_sighting(0));
        assert!(window.current.len() + window.previous.len() <= 100);
    }
}
