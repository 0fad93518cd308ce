//! `delink run --kafka`: the Kafka source built from the `[kafka]` configuration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use delink_config::Config;
use delink_model::DeadLetters;
use delink_source_kafka::{KafkaDeadLetters, KafkaOptions, KafkaSource, LaneLimits};
use delink_telemetry::Metrics;

/// Overrides of `[kafka]` given as flags of `delink run`.
#[derive(clap::Args, Debug, Default)]
pub(crate) struct KafkaArgs {
    /// Consumes the `[kafka]` topics as a member of the consumer group, instead of files,
    /// until SIGTERM or SIGINT.
    #[arg(long, conflicts_with = "inputs")]
    pub(crate) kafka: bool,
    /// Bootstrap servers; overrides `kafka.brokers`.
    #[arg(long, value_name = "HOST:PORT,…", requires = "kafka")]
    kafka_brokers: Option<String>,
    /// A topic to consume (repeatable); overrides `kafka.topics`.
    #[arg(long = "topic", value_name = "TOPIC", requires = "kafka")]
    topics: Vec<String>,
    /// Consumer group; overrides `kafka.group_id`.
    #[arg(long, value_name = "GROUP", requires = "kafka")]
    group: Option<String>,
}

impl KafkaArgs {
    /// Applies the flags to the configuration (validated afterwards).
    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(brokers) = &self.kafka_brokers {
            config.kafka.brokers = brokers.clone();
        }
        if !self.topics.is_empty() {
            config.kafka.topics = self.topics.clone();
        }
        if let Some(group) = &self.group {
            config.kafka.group_id = group.clone();
        }
    }
}

/// Builds the Kafka source of a validated configuration.
pub(crate) fn kafka_source(config: &Config, metrics: Arc<Metrics>) -> KafkaSource {
    KafkaSource::new(kafka_options(config), metrics)
}

/// Builds the dead-letter producer, when `kafka.dead_letter_topic` is set.
pub(crate) fn dead_letters(
    config: &Config,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Option<Arc<dyn DeadLetters>>> {
    let Some(topic) = &config.kafka.dead_letter_topic else {
        return Ok(None);
    };
    let producer = KafkaDeadLetters::new(&kafka_options(config), topic, metrics)
        .with_context(|| format!("cannot create the producer of the dead-letter topic {topic}"))?;
    Ok(Some(Arc::new(producer)))
}

pub(crate) fn kafka_options(config: &Config) -> KafkaOptions {
    let kafka = &config.kafka;
    KafkaOptions {
        brokers: kafka.brokers.clone(),
        group_id: kafka.group_id.clone(),
        topics: kafka.topics.clone(),
        properties: kafka.properties.clone(),
        session_timeout: Duration::from_millis(kafka.session_timeout_ms),
        heartbeat_interval: Duration::from_millis(kafka.heartbeat_interval_ms),
        assignment_strategy: kafka.assignment_strategy.clone(),
        drain_timeout: Duration::from_millis(kafka.drain_timeout_ms),
        limits: LaneLimits {
            batch_records: config.input.batch_records,
            batch_bytes: config.input.batch_bytes,
            keep_bytes: config.quarantine.keep_bytes,
            linger: Duration::from_millis(kafka.linger_ms),
            segment_max_records: kafka.segment_max_records,
            segment_max_bytes: kafka.segment_max_bytes,
            segment_max_age: Duration::from_millis(kafka.segment_max_age_ms),
        },
        replay_lookback_records: kafka.replay_lookback_records,
        commit_interval: Duration::from_millis(kafka.commit_interval_ms),
    }
}
