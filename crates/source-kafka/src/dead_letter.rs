//! The dead-letter topic: every quarantined Kafka record, still sealed, with its
//! reason and coordinates in headers.
//!
//! A letter's value is the record sealed under its quarantine day's key (bound
//! to segment and position), so the topic holds nothing readable without the
//! key store; the headers hold only the reason (a fixed set), the schema field
//! it names, the segment, the position, the quarantine day and the record size.
//! Keyed by segment, so the letters of one partition stay in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use delink_model::{DeadLetter, DeadLetters, SourceError};
use delink_telemetry::Metrics;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaOptions;
use crate::consumer::log_to_tracing;

/// How long a flush waits for outstanding letters before the segment fails.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a send waits for room when the client's queue is full, between tries.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);

/// Counts deliveries: successes in the metrics, failures until the next flush.
struct DeliveryContext {
    metrics: Arc<Metrics>,
    failed: AtomicU64,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.metrics.count_dead_letter_records(1),
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "a dead letter was not delivered");
            }
        }
    }
}

/// Produces dead letters to one topic, with the source's client properties.
pub struct KafkaDeadLetters {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
}

impl KafkaDeadLetters {
    /// Connects a producer to the source's cluster (security settings included).
    pub fn new(options: &KafkaOptions, topic: &str, metrics: Arc<Metrics>) -> crate::Result<Self> {
        let mut config = ClientConfig::new();
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", options.brokers.as_str())
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set_log_level(RDKafkaLogLevel::Warning);
        let context = DeliveryContext {
            metrics,
            failed: AtomicU64::new(0),
        };
        Ok(KafkaDeadLetters {
            producer: config.create_with_context(context)?,
            topic: topic.to_owned(),
        })
    }
}

impl DeadLetters for KafkaDeadLetters {
    fn send(&self, letter: &DeadLetter<'_>) -> Result<(), SourceError> {
        let position = letter.position.to_string();
        let record_bytes = letter.record_bytes.to_string();
        let headers = [
            ("delink-reason", Some(letter.reason)),
            ("delink-field", letter.field),
            ("delink-segment", Some(letter.segment)),
            ("delink-position", Some(position.as_str())),
            ("delink-quarantine-day", Some(letter.quarantine_day)),
            ("delink-record-bytes", Some(record_bytes.as_str())),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header { key, value })
        });
        let mut record = BaseRecord::to(&self.topic)
            .key(letter.segment)
            .payload(letter.sealed)
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((error, _)) => return Err(Box::new(error)),
            }
        }
    }

    fn flush(&self) -> Result<(), SourceError> {
        self.producer.flush(FLUSH_TIMEOUT)?;
        match self.producer.context().failed.swap(0, Ordering::Relaxed) {
            0 => Ok(()),
            failed => {
                Err(format!("{failed} dead letters were not delivered to {}", self.topic).into())
            }
        }
    }
}
