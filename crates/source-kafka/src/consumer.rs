//! The client: its configuration, and the callbacks librdkafka runs inside `poll`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use delink_telemetry::Metrics;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};

use crate::KafkaOptions;
use crate::shared::{KafkaStatus, Shared};

/// Client properties the source sets itself; configuration may not change them.
pub const RESERVED_PROPERTIES: [&str; 5] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
];

/// Builds the client configuration: the source's defaults, then the configured
/// properties, then what the delivery model needs.
pub(crate) fn client_config(options: &KafkaOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            options.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            options.heartbeat_interval.as_millis().to_string(),
        )
        .set(
            "partition.assignment.strategy",
            options.assignment_strategy.as_str(),
        )
        .set("statistics.interval.ms", "1000")
        // The prefetch queue is the only unbounded-looking buffer: keep it to a few batches.
        .set("queued.max.messages.kbytes", "32768")
        // librdkafka waits a whole second (its default) before fetching again once that
        // queue was full; a worker drains it in a fraction of that and would starve.
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100");
    for (key, value) in &options.properties {
        config.set(key, value);
    }
    config
        .set("bootstrap.servers", options.brokers.as_str())
        .set("group.id", options.group_id.as_str())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set_log_level(RDKafkaLogLevel::Warning);
    config
}

/// Hands a librdkafka log line to `tracing` at its level.
pub(crate) fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// The consumer's context: rebalances drain through the shared state.
pub(crate) struct KafkaContext {
    pub(crate) shared: Arc<Mutex<Shared>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: Arc<KafkaStatus>,
}

impl KafkaContext {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }
}

/// Locks the shared state; a panic elsewhere does not make it unusable.
pub(crate) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition is news, not trouble (the poll loop takes it as such).
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(reason, "partition end reached");
            return;
        }
        // The client retries by itself (a broker restarting, say); poll reports fatal errors.
        tracing::warn!(%error, reason, "kafka client error");
    }

    fn stats(&self, statistics: Statistics) {
        let mut high_watermarks = HashMap::new();
        for (topic, topic_statistics) in statistics.topics {
            for (partition, partition_statistics) in topic_statistics.partitions {
                if partition >= 0 && partition_statistics.hi_offset >= 0 {
                    high_watermarks
                        .insert((topic.clone(), partition), partition_statistics.hi_offset);
                }
            }
        }
        self.lock().observe_watermarks(&high_watermarks);
    }
}

impl ConsumerContext for KafkaContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.lock().assign(consumer, partitions);
                if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.lock().revoke(consumer, partitions, lost);
                if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed; dropping the assignment");
                self.lock().revoke(consumer, partitions, true);
                consumer.unassign()
            }
        };
        if let Err(error) = outcome {
            tracing::error!(%error, "cannot apply the new assignment");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                for element in offsets.elements() {
                    if let Offset::Offset(offset) = element.offset() {
                        self.metrics.set_committed_offset(
                            element.topic(),
                            element.partition(),
                            offset,
                        );
                    }
                }
            }
            Err(error) => {
                self.metrics.count_commit_error();
                self.status.commit_failed();
                tracing::warn!(%error, "offset commit failed; the positions are sent again");
            }
        }
    }
}
