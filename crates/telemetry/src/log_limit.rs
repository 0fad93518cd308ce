//! Rate limits for log lines that could repeat once per record.
//!
//! A feed that turns bad rejects every record; one warning per record would
//! flood the log pipeline and hide everything else. [`LogLimit`] lets a burst
//! through per window, counts what it holds back, and reports that count with
//! the first line it lets through again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Admits at most `burst` events per `window`, shared by every thread.
#[derive(Debug)]
pub struct LogLimit {
    burst: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

/// An event the limit let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Events held back since the last admitted one (0 when none).
    pub suppressed_before: u64,
}

impl LogLimit {
    /// Admits `burst` events per `window`.
    pub const fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new(Window {
                started: None,
                admitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// Records one event at `now`; `Some` when it may be logged.
    pub fn admit_at(&self, now: Instant) -> Option<Admitted> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let expired = state
            .started
            .is_none_or(|started| now.duration_since(started) >= self.window);
        if expired {
            state.started = Some(now);
            state.admitted = 0;
        }
        if state.admitted < self.burst {
            state.admitted += 1;
            let suppressed_before = std::mem::take(&mut state.suppressed);
            Some(Admitted { suppressed_before })
        } else {
            state.suppressed += 1;
            None
        }
    }

    /// Records one event now; `Some` when it may be logged.
    pub fn admit(&self) -> Option<Admitted> {
        self.admit_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_events_are_counted_until_the_window_turns() {
        let limit = LogLimit::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let none = Some(Admitted {
            suppressed_before: 0,
        });
        assert_eq!(limit.admit_at(start), none);
        assert_eq!(limit.admit_at(start), none);
        for _ in 0..5 {
            assert_eq!(limit.admit_at(start + Duration::from_secs(9)), None);
        }
        assert_eq!(
            limit.admit_at(start + Duration::from_secs(10)),
            Some(Admitted {
                suppressed_before: 5
            })
        );
        assert_eq!(limit.admit_at(start + Duration::from_secs(11)), none);
        assert_eq!(limit.admit_at(start + Duration::from_secs(11)), None);
    }
}
