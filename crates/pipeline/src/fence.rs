//! Lanes whose publication must stop: a source gave their input away.
//!
//! When a revoked partition's segments are not published within the drain
//! timeout, the partition's next owner resumes from what the output holds and
//! may cut its segments elsewhere. Anything this worker published of the lane
//! afterwards would duplicate records, so the lane is fenced: its segments that
//! have not begun publication are dropped, and fencing waits for the one whose
//! publication began, so that the next owner finds it finished or rebuilds it.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use delink_model::LaneId;

/// The fenced lanes, and the lane whose segment is being published.
#[derive(Debug, Default)]
pub(crate) struct Fence {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Lane ids are never reused, so a fenced id stays fenced.
    fenced: HashSet<LaneId>,
    publishing: Option<LaneId>,
}

/// A segment's publication under way; fencing its lane waits until this is dropped.
#[must_use]
pub(crate) struct Publishing<'a> {
    fence: &'a Fence,
}

impl Fence {
    /// Starts publishing a segment of `lane`, unless the lane is fenced.
    pub(crate) fn enter(&self, lane: LaneId) -> Option<Publishing<'_>> {
        let mut state = self.lock();
        if state.fenced.contains(&lane) {
            return None;
        }
        state.publishing = Some(lane);
        Some(Publishing { fence: self })
    }

    /// Stops every later publication of `lane` and waits for one under way.
    pub(crate) fn close(&self, lane: LaneId) {
        let mut state = self.lock();
        state.fenced.insert(lane);
        while state.publishing == Some(lane) {
            state = self
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        self.fence.lock().publishing = None;
        self.fence.finished.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_fenced_lane_publishes_nothing_more_and_other_lanes_go_on() {
        let fence = Fence::default();
        drop(fence.enter(1).expect("not fenced yet"));
        fence.close(1);
        assert!(fence.enter(1).is_none());
        assert!(fence.enter(2).is_some());
    }

    #[test]
    fn fencing_waits_for_the_publication_under_way() {
        let fence = Fence::default();
        let published = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let publishing = fence.enter(7).expect("not fenced");
            let closer = scope.spawn(|| {
                fence.close(7);
                published.load(Ordering::SeqCst)
            });
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                !closer.is_finished(),
                "fencing returned during a publication"
            );
            published.store(true, Ordering::SeqCst);
            drop(publishing);
            assert!(closer.join().expect("closer"), "fencing returned too early");
        });
    }
}
