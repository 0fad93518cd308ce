//! Reads Kafka topic-partitions into [`RawBatch`](delink_model::RawBatch)es for
//! the pipeline, and commits only what the pipeline has published.
//!
//! # Delivery model
//!
//! Each assignment of a topic-partition is a lane of its own (a fresh
//! [`LaneId`](delink_model::LaneId)), cut into segments named
//! `<topic>-<partition>` + first offset, so a replay of the same offsets
//! rewrites the same files. A segment closes after `segment_max_records`,
//! `segment_max_bytes` or `segment_max_age` (an empty closing batch when the
//! partition went quiet); its files become visible all at once, and only then
//! does the pipeline report its end offset back. That report is the only
//! thing ever committed to the group, per partition and in order: asynchronously
//! about once a second while running, synchronously on a revoke and at
//! shutdown. The group's offsets therefore never run ahead of the output.
//!
//! The output runs ahead of the group's offsets instead, by at most a commit
//! interval, so on every assignment the source asks the output where it
//! stands ([`SourceContext::checkpoint`](delink_model::SourceContext::checkpoint))
//! and resumes at the later of the published end and the committed offset:
//! nothing published is read again. A segment that was caught mid-publication
//! (by a crash) is rebuilt with exactly its first and end offsets, and so
//! replaces its own files. Before the resume point, up to
//! `replay_lookback_records` are read again as `already_published` batches:
//! they are neither counted nor written, they refill the replay window so that
//! a replayed `observation_id` is still written once.
//!
//! The design decision to know: the Kafka client is a `BaseConsumer` polled on
//! the pipeline's reader thread, and the rebalance callback (which librdkafka
//! runs inside `poll`) drains revoked partitions itself — close their
//! segments, wait up to `drain_timeout` for their publication, commit — before
//! it lets the revoke proceed. A lost assignment (another consumer may own the
//! partition already) drops the open segment unpublished and commits nothing.
//! Either way, a partition let go with segments still unpublished is fenced
//! ([`SourceContext::fence`](delink_model::SourceContext::fence)) first, so that
//! only its next owner publishes them.
//! The pipeline's bounded channel blocks `emit`, so a slow pipeline stops the
//! polling, and librdkafka's bounded prefetch queue stops the fetching.

mod consumer;
mod dead_letter;
mod error;
mod lane;
mod options;
mod probe;
mod shared;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use delink_model::{Source, SourceContext, SourceError};
use delink_telemetry::{Health, Metrics};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

pub use consumer::RESERVED_PROPERTIES;
pub use dead_letter::KafkaDeadLetters;
pub use error::{Error, Result};
pub use options::{KafkaOptions, LaneLimits, is_sensitive_property};
pub use probe::{TopicProbe, probe_topics};
pub use shared::KafkaStatus;

use crate::consumer::{KafkaContext, client_config, lock};
use crate::shared::Shared;

/// How long one poll waits when no record is ready.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// How often lingering batches, segment ages and publication reports are looked at.
const TICK: Duration = Duration::from_millis(50);
/// How long one poll waits while a shutdown waits to commit.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);
/// Records taken between two looks at the clock while records keep coming.
const RECORDS_PER_TICK_CHECK: u32 = 256;

/// Consumes topics as a member of a consumer group (see the crate documentation).
pub struct KafkaSource {
    options: KafkaOptions,
    metrics: Arc<Metrics>,
    health: Option<Arc<Health>>,
    status: Arc<KafkaStatus>,
}

impl KafkaSource {
    /// Prepares a source; nothing connects before [`Source::run`].
    pub fn new(options: KafkaOptions, metrics: Arc<Metrics>) -> Self {
        KafkaSource {
            options,
            metrics,
            health: None,
            status: Arc::new(KafkaStatus::default()),
        }
    }

    /// Reports readiness (in the group) and draining to `health`.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    /// Returns the handle the progress line reads (lag, assigned partitions).
    pub fn status(&self) -> Arc<KafkaStatus> {
        Arc::clone(&self.status)
    }

    fn consume(&self, consumer: &BaseConsumer<KafkaContext>, shared: &Mutex<Shared>) -> Result<()> {
        let topics: Vec<&str> = self.options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let mut last_tick = Instant::now();
        let mut last_commit = Instant::now();
        let mut since_check = 0u32;
        loop {
            if let Some(failure) = lock(shared).take_failure() {
                return Err(failure);
            }
            if lock(shared).stop_requested() {
                return self.shut_down(consumer, shared);
            }
            let polled = consumer.poll(POLL_TIMEOUT);
            let idle = polled.is_none();
            match polled {
                Some(Ok(message)) => {
                    let value = message.payload().unwrap_or_default();
                    lock(shared).take(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                        value,
                    )?;
                    since_check += 1;
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    lock(shared).reached_end(partition);
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(KafkaError::MessageConsumptionFatal(code).into());
                }
                Some(Err(error)) => {
                    // Reported by the context's error callback; the client recovers by itself.
                    tracing::debug!(%error, "consumer error");
                }
                None => {}
            }
            if idle || since_check >= RECORDS_PER_TICK_CHECK {
                since_check = 0;
                let now = Instant::now();
                if now.duration_since(last_tick) >= TICK {
                    last_tick = now;
                    let mut state = lock(shared);
                    state.tick()?;
                    if now.duration_since(last_commit) >= self.options.commit_interval {
                        last_commit = now;
                        state.commit(consumer, CommitMode::Async);
                    }
                }
            }
        }
    }
}

impl KafkaSource {
    /// Closes every segment, waits for their publication and commits them; a commit
    /// refused because the group is rebalancing is tried again once this member has
    /// caught up with the group (polling serves the rebalance), until the drain timeout.
    fn shut_down(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        shared: &Mutex<Shared>,
    ) -> Result<()> {
        lock(shared).close_all(consumer);
        let deadline = Instant::now() + self.options.drain_timeout;
        while lock(shared).commit_released(consumer) {
            if Instant::now() >= deadline {
                lock(shared).give_up_released();
                break;
            }
            // Records fetched now belong to no lane and are not taken.
            let _ = consumer.poll(SHUTDOWN_POLL);
        }
        match lock(shared).take_failure() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

impl Source for KafkaSource {
    fn run(
        &mut self,
        context: Box<dyn SourceContext + Send>,
    ) -> std::result::Result<(), SourceError> {
        let shared = Arc::new(Mutex::new(Shared::new(
            context,
            self.options.clone(),
            Arc::clone(&self.metrics),
            self.health.clone(),
            Arc::clone(&self.status),
        )));
        let consumer: BaseConsumer<KafkaContext> = client_config(&self.options)
            .create_with_context(KafkaContext {
                shared: Arc::clone(&shared),
                metrics: Arc::clone(&self.metrics),
                status: Arc::clone(&self.status),
            })?;
        tracing::info!(
            group = %self.options.group_id,
            topics = ?self.options.topics,
            "consuming"
        );
        let outcome = self.consume(&consumer, &shared);
        if outcome.is_err() {
            // Whatever is open is dropped unpublished; the revoke of the close commits nothing.
            lock(&shared).abandon_all();
        }
        // Leaves the group; a revoke during the close finds every lane closed already.
        drop(consumer);
        tracing::info!("consumer closed");
        match outcome {
            Ok(()) => Ok(()),
            // The pipeline recognises its own stop and says why it stopped.
            Err(Error::PipelineStopped(stopped)) => Err(Box::new(stopped)),
            Err(error) => Err(Box::new(error)),
        }
    }

    fn reports_readiness(&self) -> bool {
        // Ready once in the group, not merely started.
        self.health.is_some()
    }
}

#[cfg(test)]
mod tests;
