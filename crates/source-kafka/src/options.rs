//! What the Kafka source is told: the client, the group, and how records are cut.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Configures a [`crate::KafkaSource`].
#[derive(Clone)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// Consumer group; workers of one group share the partitions.
    pub group_id: String,
    /// Topics to subscribe to (names of `[A-Za-z0-9._-]`).
    pub topics: Vec<String>,
    /// Client properties passed to librdkafka as they are (security settings and such).
    pub properties: BTreeMap<String, String>,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `partition.assignment.strategy`: `cooperative-sticky`, `range`, `roundrobin`.
    pub assignment_strategy: String,
    /// How long a revoke or a shutdown waits for the publication of closed segments.
    pub drain_timeout: Duration,
    /// Cutting records into batches and segments.
    pub limits: LaneLimits,
    /// Records re-read before the resume point of a partition, to recognise replays.
    pub replay_lookback_records: u64,
    /// How often published positions are committed (asynchronously) while running.
    pub commit_interval: Duration,
}

/// Bounds of the batches and segments of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    /// Records per batch (upper bound).
    pub batch_records: usize,
    /// Kept bytes per batch: a batch ends once it holds this many.
    pub batch_bytes: usize,
    /// Bytes of an oversized record value that are kept (for the quarantine).
    pub keep_bytes: usize,
    /// A quiet partition's batch goes out this long after its first record.
    pub linger: Duration,
    /// Records per segment.
    pub segment_max_records: u64,
    /// Record bytes per segment.
    pub segment_max_bytes: u64,
    /// A segment is closed this long after its first record, even with no new record.
    pub segment_max_age: Duration,
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_sensitive_property(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaOptions")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("properties", &properties)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("assignment_strategy", &self.assignment_strategy)
            .field("drain_timeout", &self.drain_timeout)
            .field("limits", &self.limits)
            .field("replay_lookback_records", &self.replay_lookback_records)
            .field("commit_interval", &self.commit_interval)
            .finish()
    }
}

/// Tells whether a client property holds a secret (its value is never shown).
pub fn is_sensitive_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token"]
        .iter()
        .any(|word| key.contains(word))
}
