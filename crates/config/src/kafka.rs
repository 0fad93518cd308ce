//! The `[kafka]` section: the consumer group of stream workers and how partitions are cut.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// Client properties delink sets itself; `kafka.properties` may not name them.
pub const RESERVED_KAFKA_PROPERTIES: [&str; 5] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
];

/// The partition assignment strategies a worker may use.
pub const ASSIGNMENT_STRATEGIES: [&str; 3] = ["cooperative-sticky", "range", "roundrobin"];

/// Configures the Kafka source.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: String,
    /// Consumer group of the workers; they share the partitions.
    pub group_id: String,
    /// Topics to consume; a list, or one comma-separated string (for environment overrides).
    #[serde(deserialize_with = "topics")]
    pub topics: Vec<String>,
    /// Client properties passed to librdkafka as they are (`security.protocol`,
    /// `sasl.password`, …); values of keys naming a password, secret, key or token
    /// never show in Debug output.
    pub properties: BTreeMap<String, String>,
    /// `session.timeout.ms`: a worker silent this long loses its partitions.
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// How long a revoke or a shutdown waits for the publication of the segments it closed.
    pub drain_timeout_ms: u64,
    /// Records per segment of a partition.
    pub segment_max_records: u64,
    /// Record bytes per segment of a partition.
    pub segment_max_bytes: u64,
    /// A segment is published this long after its first record, even when the
    /// partition is quiet: how fresh the output is, and how small a quiet
    /// partition's files get.
    pub segment_max_age_ms: u64,
    /// A quiet partition's batch goes to the workers this long after its first record.
    pub linger_ms: u64,
    /// Records re-read before a partition's resume point to recognise replays.
    pub replay_lookback_records: u64,
    /// `partition.assignment.strategy`: `cooperative-sticky`, `range` or `roundrobin`.
    pub assignment_strategy: String,
    /// How often published offsets are committed while running.
    pub commit_interval_ms: u64,
    /// A topic that also receives every quarantined record, sealed, with its reason in
    /// headers (on the same cluster, with the same client properties); unset: none.
    pub dead_letter_topic: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_owned(),
            group_id: "delink".to_owned(),
            topics: vec!["charger-observations".to_owned()],
            properties: BTreeMap::new(),
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            drain_timeout_ms: 20_000,
            segment_max_records: 1_000_000,
            segment_max_bytes: 256 * 1024 * 1024,
            segment_max_age_ms: 300_000,
            linger_ms: 200,
            replay_lookback_records: 10_000,
            assignment_strategy: "cooperative-sticky".to_owned(),
            commit_interval_ms: 1_000,
            dead_letter_topic: None,
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_sensitive(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("properties", &properties)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("drain_timeout_ms", &self.drain_timeout_ms)
            .field("segment_max_records", &self.segment_max_records)
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("segment_max_age_ms", &self.segment_max_age_ms)
            .field("linger_ms", &self.linger_ms)
            .field("replay_lookback_records", &self.replay_lookback_records)
            .field("assignment_strategy", &self.assignment_strategy)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish()
    }
}

/// Tells whether a property's value is a secret.
pub(crate) fn is_sensitive(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "key", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// Tells whether a topic name is one Kafka accepts and a file name can carry.
fn is_valid_topic(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

impl KafkaConfig {
    /// Adds every problem of the section to `problems`, without IO.
    pub(crate) fn check(
        &self,
        shutdown_timeout_secs: u64,
        replay_window: usize,
        problems: &mut Vec<String>,
    ) {
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_owned());
            }
        };
        check(
            !self.brokers.trim().is_empty(),
            "kafka.brokers must name at least one broker",
        );
        check(
            !self.group_id.trim().is_empty(),
            "kafka.group_id must not be empty",
        );
        check(
            !self.topics.is_empty(),
            "kafka.topics must name at least one topic",
        );
        check(
            self.topics.iter().all(|topic| is_valid_topic(topic)),
            "kafka.topics must be names of 1 to 249 characters of [A-Za-z0-9._-]",
        );
        if let Some(topic) = &self.dead_letter_topic {
            check(
                is_valid_topic(topic),
                "kafka.dead_letter_topic must be a name of 1 to 249 characters of [A-Za-z0-9._-]",
            );
            check(
                !self.topics.contains(topic),
                "kafka.dead_letter_topic must not be one of kafka.topics (the workers would read their own letters)",
            );
        }
        check(
            (1_000..=600_000).contains(&self.session_timeout_ms),
            "kafka.session_timeout_ms must be 1000..=600000",
        );
        check(
            self.heartbeat_interval_ms >= 100
                && self.heartbeat_interval_ms < self.session_timeout_ms,
            "kafka.heartbeat_interval_ms must be at least 100 and below kafka.session_timeout_ms",
        );
        check(
            self.drain_timeout_ms >= 100,
            "kafka.drain_timeout_ms must be at least 100",
        );
        check(
            self.drain_timeout_ms < self.session_timeout_ms,
            "kafka.drain_timeout_ms must be below kafka.session_timeout_ms (a drain longer than the session loses the partitions)",
        );
        check(
            self.drain_timeout_ms < shutdown_timeout_secs.saturating_mul(1000),
            "kafka.drain_timeout_ms must be below pipeline.shutdown_timeout_secs",
        );
        check(
            self.segment_max_records >= 1,
            "kafka.segment_max_records must be at least 1",
        );
        check(
            self.segment_max_bytes >= 64 * 1024,
            "kafka.segment_max_bytes must be at least 64 KiB",
        );
        check(
            (100..=86_400_000).contains(&self.segment_max_age_ms),
            "kafka.segment_max_age_ms must be 100..=86400000",
        );
        check(
            self.linger_ms <= 10_000 && self.linger_ms < self.segment_max_age_ms,
            "kafka.linger_ms must be at most 10000 and below kafka.segment_max_age_ms",
        );
        check(
            self.replay_lookback_records as usize <= replay_window / 2,
            "kafka.replay_lookback_records must be at most half of input.replay_window",
        );
        check(
            ASSIGNMENT_STRATEGIES.contains(&self.assignment_strategy.as_str()),
            "kafka.assignment_strategy must be \"cooperative-sticky\", \"range\" or \"roundrobin\"",
        );
        check(
            (100..=60_000).contains(&self.commit_interval_ms),
            "kafka.commit_interval_ms must be 100..=60000",
        );
        let reserved: Vec<&str> = self
            .properties
            .keys()
            .map(String::as_str)
            .filter(|key| RESERVED_KAFKA_PROPERTIES.contains(key))
            .collect();
        if !reserved.is_empty() {
            problems.push(format!(
                "kafka.properties may not set {} (delink sets them: brokers and group_id have keys of their own, and offsets are committed only once published)",
                reserved.join(", ")
            ));
        }
    }
}

/// Reads topics from a list or from one comma-separated string.
fn topics<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Topics {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Topics::deserialize(deserializer)? {
        Topics::List(list) => list,
        Topics::Joined(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|topic| !topic.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}
