//! Segments read but not yet published: what the worker's published watermark is made of.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use delink_model::LaneId;

/// Remembers when the first batch of every unpublished segment was read.
///
/// The worker's published watermark is the oldest of those instants (now, when
/// every segment is published): every record read before it is in the output.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    opened_at: Mutex<BTreeMap<(LaneId, u64), i64>>,
}

impl InFlight {
    /// Notes that the segment of `lane` starting at `first` was opened at `at_us`.
    pub(crate) fn opened(&self, lane: LaneId, first: u64, at_us: i64) {
        self.lock().entry((lane, first)).or_insert(at_us);
    }

    /// Notes that the segment of `lane` starting at `first` is published.
    pub(crate) fn published(&self, lane: LaneId, first: u64) {
        self.lock().remove(&(lane, first));
    }

    /// Returns the watermark: the opening time of the oldest unpublished segment, else `now_us`.
    pub(crate) fn watermark(&self, now_us: i64) -> i64 {
        self.lock()
            .values()
            .copied()
            .min()
            .unwrap_or(now_us)
            .min(now_us)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(LaneId, u64), i64>> {
        self.opened_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_oldest_unpublished_segment() {
        let in_flight = InFlight::default();
        assert_eq!(in_flight.watermark(100), 100);
        in_flight.opened(0, 1, 40);
        in_flight.opened(1, 7, 20);
        in_flight.opened(1, 7, 90); // the same segment again keeps its first time
        assert_eq!(in_flight.watermark(100), 20);
        in_flight.published(1, 7);
        assert_eq!(in_flight.watermark(100), 40);
        in_flight.published(0, 1);
        assert_eq!(in_flight.watermark(100), 100);
    }
}
