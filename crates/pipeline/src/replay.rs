//! Replay detection in bounded memory: two generations of digests.

use std::collections::HashSet;

use delink_model::BuildPrehashedHasher;

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

type DigestSet = HashSet<u128, BuildPrehashedHasher>;

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
