//! The journal of key-lifecycle events: erasures, KEK rotations and
//! retirements, device-epoch purges. It names scopes, versions, counts and
//! request ids, never an identifier, and is what `delink keys status` reads
//! to tell when each erasure is complete.

use serde::{Deserialize, Serialize};

/// Records one lifecycle event and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEvent {
    /// Unix time of the event, in seconds.
    pub at: i64,
    /// What happened.
    #[serde(flatten)]
    pub kind: JournalKind,
}

/// Names a lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JournalKind {
    /// The store started wrapping keys under this KEK version (store creation).
    KekInUse {
        /// The version.
        kek_version: u32,
    },
    /// An entity's key was deleted.
    Erasure {
        /// The operator's request id (never the identifier).
        request_id: String,
        /// The scope of the erased entity (`subject`, `installation`, `device`).
        scope: String,
        /// How many keys were deleted (device keys may have several epochs).
        keys: u64,
        /// The newest KEK version at the time: copies of the key in backups are
        /// wrapped under it or older ones.
        kek_version: u32,
    },
    /// Every live key was re-wrapped under a new KEK version.
    Rotation {
        /// The new version.
        kek_version: u32,
        /// How many keys were re-wrapped.
        rewrapped: u64,
    },
    /// KEK versions were destroyed.
    Retirement {
        /// The destroyed versions.
        kek_versions: Vec<u32>,
    },
    /// Device keys of old epochs were deleted.
    EpochPurge {
        /// Epochs before this one were purged.
        before_epoch: u32,
        /// How many keys were deleted.
        keys: u64,
    },
}

impl JournalEvent {
    /// Stamps an event with the current time.
    pub fn now(kind: JournalKind) -> Self {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        JournalEvent { at, kind }
    }

    /// Encodes the event as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a line written by [`JournalEvent::to_json`].
    pub fn from_json(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json() {
        let event = JournalEvent {
            at: 1_790_000_000,
            kind: JournalKind::Erasure {
                request_id: "req-1".to_owned(),
                scope: "subject".to_owned(),
                keys: 1,
                kek_version: 3,
            },
        };
        let line = event.to_json();
        assert!(line.contains("\"event\":\"erasure\""), "{line}");
        assert_eq!(JournalEvent::from_json(&line), Some(event));
        assert_eq!(JournalEvent::from_json("{"), None);
    }
}
