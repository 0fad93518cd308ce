//! The metric set: every name spelled once in [`MetricName`], every handle in [`Metrics`].
//!
//! Label values come from the closed enums of this module ([`Output`],
//! [`RebalanceEvent`], [`KeystoreOperation`]), from configuration and broker
//! metadata (Kafka topic and partition), or from a capped, sanitised set
//! (unknown-field names). None comes from record contents.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::error::Result;
use crate::health::Health;

/// Namespace of every metric.
pub const NAMESPACE: &str = "delink";
/// Distinct unknown-field names tracked before lumping the rest under
/// [`OTHER_FIELD_LABEL`]; the run summary and logs use the same cap.
pub const MAX_UNKNOWN_FIELD_LABELS: usize = 64;
/// The label value that absorbs unknown-field names past the cap.
pub const OTHER_FIELD_LABEL: &str = "(other)";
/// The version `delink_build_info` reports.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Bucket bounds, in seconds, of `delink_segment_publish_duration_seconds`.
const PUBLISH_DURATION_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket bounds, in records, of `delink_input_batch_records`.
const BATCH_RECORDS_BUCKETS: [f64; 8] =
    [1.0, 16.0, 128.0, 1024.0, 4096.0, 8192.0, 16384.0, 65536.0];

const LABEL_OUTPUT: &str = "output";
const LABEL_REASON: &str = "reason";
const LABEL_FIELD: &str = "field";
const LABEL_TOPIC: &str = "topic";
const LABEL_PARTITION: &str = "partition";
const LABEL_EVENT: &str = "event";
const LABEL_OPERATION: &str = "operation";
const LABEL_VERSION: &str = "version";
const LABEL_LEVEL: &str = "level";
const LABEL_MEASURE: &str = "measure";

/// The measures `delink_risk_ratio` accepts.
pub(crate) const RISK_MEASURES: [&str; 4] = [
    "unique_join",
    "sequence_link",
    "counter_link",
    "k_anonymous",
];
/// Profile levels tracked before the rest are counted under the last.
pub(crate) const MAX_PROFILE_LEVEL_LABELS: usize = 32;

/// Names every metric delink exposes; the only place a metric name is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricName {
    /// `delink_input_records_total`
    InputRecords,
    /// `delink_input_bytes_total`
    InputBytes,
    /// `delink_input_blank_lines_total`
    InputBlankLines,
    /// `delink_input_batch_records`
    InputBatchRecords,
    /// `delink_records_rejected_total{reason}`
    RecordsRejected,
    /// `delink_records_duplicate_total`
    RecordsDuplicate,
    /// `delink_unknown_fields_total{field}`
    UnknownFields,
    /// `delink_values_withheld_total{output,field,reason}`
    ValuesWithheld,
    /// `delink_profile_rows_total{level}`
    ProfileRows,
    /// `delink_profile_rows_below_k_total`
    ProfileRowsBelowK,
    /// `delink_risk_ratio{measure}`
    RiskRatio,
    /// `delink_risk_limits_exceeded`
    RiskLimitsExceeded,
    /// `delink_output_rows_total{output}`
    OutputRows,
    /// `delink_output_files_total{output}`
    OutputFiles,
    /// `delink_output_bytes_total{output}`
    OutputBytes,
    /// `delink_segments_published_total`
    SegmentsPublished,
    /// `delink_segment_publish_duration_seconds`
    SegmentPublishDuration,
    /// `delink_kafka_consumer_lag_records{topic,partition}`
    KafkaConsumerLag,
    /// `delink_kafka_committed_offset{topic,partition}`
    KafkaCommittedOffset,
    /// `delink_kafka_assigned_partitions`
    KafkaAssignedPartitions,
    /// `delink_kafka_rebalances_total{event}`
    KafkaRebalances,
    /// `delink_kafka_commit_errors_total`
    KafkaCommitErrors,
    /// `delink_dead_letter_records_total`
    DeadLetterRecords,
    /// `delink_keystore_operations_total{operation}`
    KeystoreOperations,
    /// `delink_keystore_errors_total{operation}`
    KeystoreErrors,
    /// `delink_erasures_applied_total`
    ErasuresApplied,
    /// `delink_erasures_incomplete`
    ErasuresIncomplete,
    /// `delink_erasure_oldest_incomplete_age_seconds`
    ErasureOldestIncompleteAge,
    /// `delink_kek_age_seconds`
    KekAge,
    /// `delink_publish_errors_total`
    PublishErrors,
    /// `delink_build_info{version}`
    BuildInfo,
    /// `delink_draining`
    Draining,
}

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

#[cfg(test)]
impl MetricKind {
    /// Returns the type as the exposition format (and `docs/metrics.md`) spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// What defines a metric: its exposed name, type, label names and help text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetricSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: MetricKind,
    pub(crate) labels: &'static [&'static str],
    pub(crate) help: &'static str,
}

impl MetricName {
    /// Every metric, in the order of `docs/metrics.md`.
    pub const ALL: [MetricName; 32] = [
        MetricName::InputRecords,
        MetricName::InputBytes,
        MetricName::InputBlankLines,
        MetricName::InputBatchRecords,
        MetricName::RecordsRejected,
        MetricName::RecordsDuplicate,
        MetricName::UnknownFields,
        MetricName::ValuesWithheld,
        MetricName::ProfileRows,
        MetricName::ProfileRowsBelowK,
        MetricName::RiskRatio,
        MetricName::RiskLimitsExceeded,
        MetricName::OutputRows,
        MetricName::OutputFiles,
        MetricName::OutputBytes,
        MetricName::SegmentsPublished,
        MetricName::SegmentPublishDuration,
        MetricName::KafkaConsumerLag,
        MetricName::KafkaCommittedOffset,
        MetricName::KafkaAssignedPartitions,
        MetricName::KafkaRebalances,
        MetricName::KafkaCommitErrors,
        MetricName::DeadLetterRecords,
        MetricName::KeystoreOperations,
        MetricName::KeystoreErrors,
        MetricName::ErasuresApplied,
        MetricName::ErasuresIncomplete,
        MetricName::ErasureOldestIncompleteAge,
        MetricName::KekAge,
        MetricName::PublishErrors,
        MetricName::BuildInfo,
        MetricName::Draining,
    ];

    /// Returns the name as exposed, namespace included (`delink_input_records_total`).
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    pub(crate) fn spec(self) -> MetricSpec {
        use MetricKind::{Counter, Gauge, Histogram};
        let (name, kind, labels, help): (_, _, &'static [&'static str], _) = match self {
            MetricName::InputRecords => (
                "delink_input_records_total",
                Counter,
                &[],
                "Records read from the input",
            ),
            MetricName::InputBytes => (
                "delink_input_bytes_total",
                Counter,
                &[],
                "Bytes read from the input",
            ),
            MetricName::InputBlankLines => (
                "delink_input_blank_lines_total",
                Counter,
                &[],
                "Blank input lines skipped",
            ),
            MetricName::InputBatchRecords => (
                "delink_input_batch_records",
                Histogram,
                &[],
                "Records per batch handed from the source to the workers",
            ),
            MetricName::RecordsRejected => (
                "delink_records_rejected_total",
                Counter,
                &[LABEL_REASON],
                "Records quarantined, by reason",
            ),
            MetricName::RecordsDuplicate => (
                "delink_records_duplicate_total",
                Counter,
                &[],
                "Replays of an observation_id already written in this run",
            ),
            MetricName::UnknownFields => (
                "delink_unknown_fields_total",
                Counter,
                &[LABEL_FIELD],
                "Input fields the policy does not classify (never copied), by name",
            ),
            MetricName::ValuesWithheld => (
                "delink_values_withheld_total",
                Counter,
                &[LABEL_OUTPUT, LABEL_FIELD, LABEL_REASON],
                "Kept values left out (written as null) for being outside their policy domain",
            ),
            MetricName::ProfileRows => (
                "delink_profile_rows_total",
                Counter,
                &[LABEL_LEVEL],
                "devices/ rows published, by how many coarsening steps their profile took to reach k chargers",
            ),
            MetricName::ProfileRowsBelowK => (
                "delink_profile_rows_below_k_total",
                Counter,
                &[],
                "devices/ rows whose profile has fewer than k chargers even after every coarsening step",
            ),
            MetricName::RiskRatio => (
                "delink_risk_ratio",
                Gauge,
                &[LABEL_MEASURE],
                "The last privacy-risk assessment of the data directory (see `delink risk`), by measure, 0..1",
            ),
            MetricName::RiskLimitsExceeded => (
                "delink_risk_limits_exceeded",
                Gauge,
                &[],
                "Risk limits ([risk] in the configuration) the last assessment exceeded; 0 when within all",
            ),
            MetricName::OutputRows => (
                "delink_output_rows_total",
                Counter,
                &[LABEL_OUTPUT],
                "Rows published",
            ),
            MetricName::OutputFiles => (
                "delink_output_files_total",
                Counter,
                &[LABEL_OUTPUT],
                "Files published",
            ),
            MetricName::OutputBytes => (
                "delink_output_bytes_total",
                Counter,
                &[LABEL_OUTPUT],
                "Bytes of the files published",
            ),
            MetricName::SegmentsPublished => (
                "delink_segments_published_total",
                Counter,
                &[],
                "Segments published",
            ),
            MetricName::SegmentPublishDuration => (
                "delink_segment_publish_duration_seconds",
                Histogram,
                &[],
                "Time to seal, make keys durable and publish one segment",
            ),
            MetricName::KafkaConsumerLag => (
                "delink_kafka_consumer_lag_records",
                Gauge,
                &[LABEL_TOPIC, LABEL_PARTITION],
                "Records between the consumer position and the high watermark, per assigned partition",
            ),
            MetricName::KafkaCommittedOffset => (
                "delink_kafka_committed_offset",
                Gauge,
                &[LABEL_TOPIC, LABEL_PARTITION],
                "Last offset committed, per assigned partition",
            ),
            MetricName::KafkaAssignedPartitions => (
                "delink_kafka_assigned_partitions",
                Gauge,
                &[],
                "Partitions currently assigned to this worker",
            ),
            MetricName::KafkaRebalances => (
                "delink_kafka_rebalances_total",
                Counter,
                &[LABEL_EVENT],
                "Rebalance events, by event",
            ),
            MetricName::KafkaCommitErrors => (
                "delink_kafka_commit_errors_total",
                Counter,
                &[],
                "Offset commits that failed",
            ),
            MetricName::DeadLetterRecords => (
                "delink_dead_letter_records_total",
                Counter,
                &[],
                "Quarantined records delivered to the dead-letter topic (`kafka.dead_letter_topic`)",
            ),
            MetricName::KeystoreOperations => (
                "delink_keystore_operations_total",
                Counter,
                &[LABEL_OPERATION],
                "Key-store operations attempted, failed ones included, by operation",
            ),
            MetricName::KeystoreErrors => (
                "delink_keystore_errors_total",
                Counter,
                &[LABEL_OPERATION],
                "Key-store operations that failed, by operation",
            ),
            MetricName::ErasuresApplied => (
                "delink_erasures_applied_total",
                Counter,
                &[],
                "Times this worker dropped its key cache because the store announced an erasure",
            ),
            MetricName::ErasuresIncomplete => (
                "delink_erasures_incomplete",
                Gauge,
                &[],
                "Erasures whose keys a KEK version not yet destroyed could still unwrap from a backup",
            ),
            MetricName::ErasureOldestIncompleteAge => (
                "delink_erasure_oldest_incomplete_age_seconds",
                Gauge,
                &[],
                "Age of the oldest incomplete erasure; 0 when none, -1 until the key store is read",
            ),
            MetricName::KekAge => (
                "delink_kek_age_seconds",
                Gauge,
                &[],
                "Time since the current KEK version started wrapping keys; -1 until the key store is read",
            ),
            MetricName::PublishErrors => (
                "delink_publish_errors_total",
                Counter,
                &[],
                "Segments whose publication failed (the worker stops; a restart publishes them again)",
            ),
            MetricName::BuildInfo => (
                "delink_build_info",
                Gauge,
                &[LABEL_VERSION],
                "Always 1; the version label tells the running build",
            ),
            MetricName::Draining => (
                "delink_draining",
                Gauge,
                &[],
                "1 while shutting down or draining a revoked partition, else 0",
            ),
        };
        MetricSpec {
            name,
            kind,
            labels,
            help,
        }
    }
}

/// Names an output of the pipeline (the `output` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// The pseudonymised history dataset.
    History,
    /// The device dataset.
    Devices,
    /// Rejected records, sealed under a quarantine key.
    Quarantine,
}

impl Output {
    /// Every output.
    pub const ALL: [Output; 3] = [Output::History, Output::Devices, Output::Quarantine];

    /// Returns the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Output::History => "history",
            Output::Devices => "devices",
            Output::Quarantine => "quarantine",
        }
    }
}

/// Names a Kafka rebalance event (the `event` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RebalanceEvent {
    /// Partitions were assigned to this worker.
    Assign,
    /// Partitions were revoked (after a drain and a commit).
    Revoke,
    /// Partitions were lost without a chance to commit.
    Lost,
}

impl RebalanceEvent {
    /// Every rebalance event.
    pub const ALL: [RebalanceEvent; 3] = [
        RebalanceEvent::Assign,
        RebalanceEvent::Revoke,
        RebalanceEvent::Lost,
    ];

    /// Returns the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RebalanceEvent::Assign => "assign",
            RebalanceEvent::Revoke => "revoke",
            RebalanceEvent::Lost => "lost",
        }
    }
}

/// Names a key-store operation (the `operation` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeystoreOperation {
    /// Looking up or creating an entity's key.
    KeyFor,
    /// Looking up an entity's key without creating it.
    ExistingKey,
    /// Making new keys durable.
    Sync,
    /// Catching up with other processes (erasures, new keys).
    Refresh,
    /// Erasing an entity's key.
    Erase,
    /// Re-wrapping keys under the current KEK.
    Rewrap,
    /// Destroying expired epoch keys.
    Purge,
}

impl KeystoreOperation {
    /// Every key-store operation.
    pub const ALL: [KeystoreOperation; 7] = [
        KeystoreOperation::KeyFor,
        KeystoreOperation::ExistingKey,
        KeystoreOperation::Sync,
        KeystoreOperation::Refresh,
        KeystoreOperation::Erase,
        KeystoreOperation::Rewrap,
        KeystoreOperation::Purge,
    ];

    /// Returns the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeystoreOperation::KeyFor => "key_for",
            KeystoreOperation::ExistingKey => "existing_key",
            KeystoreOperation::Sync => "sync",
            KeystoreOperation::Refresh => "refresh",
            KeystoreOperation::Erase => "erase",
            KeystoreOperation::Rewrap => "rewrap",
            KeystoreOperation::Purge => "purge",
        }
    }
}

/// Creates metrics from their [`MetricSpec`] and registers them, remembering which.
struct Registrar {
    registry: Registry,
    registered: Vec<MetricName>,
}

impl Registrar {
    fn opts(&mut self, name: MetricName, kind: MetricKind, labelled: bool) -> Opts {
        let spec = name.spec();
        debug_assert_eq!(spec.kind, kind, "{} is declared as another type", spec.name);
        debug_assert_eq!(
            !spec.labels.is_empty(),
            labelled,
            "{} is declared with other labels",
            spec.name
        );
        self.registered.push(name);
        Opts::new(spec.name, spec.help)
    }

    fn counter(&mut self, name: MetricName) -> Result<IntCounter> {
        let metric = IntCounter::with_opts(self.opts(name, MetricKind::Counter, false))?;
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter_vec(&mut self, name: MetricName) -> Result<IntCounterVec> {
        let opts = self.opts(name, MetricKind::Counter, true);
        let metric = IntCounterVec::new(opts, name.spec().labels)?;
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn gauge(&mut self, name: MetricName) -> Result<IntGauge> {
        let metric = IntGauge::with_opts(self.opts(name, MetricKind::Gauge, false))?;
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn gauge_vec(&mut self, name: MetricName) -> Result<IntGaugeVec> {
        let opts = self.opts(name, MetricKind::Gauge, true);
        let metric = IntGaugeVec::new(opts, name.spec().labels)?;
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn float_gauge_vec(&mut self, name: MetricName) -> Result<GaugeVec> {
        let opts = self.opts(name, MetricKind::Gauge, true);
        let metric = GaugeVec::new(opts, name.spec().labels)?;
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn histogram(&mut self, name: MetricName, buckets: &[f64]) -> Result<Histogram> {
        let opts = self.opts(name, MetricKind::Histogram, false);
        let metric = Histogram::with_opts(HistogramOpts::from(opts).buckets(buckets.to_vec()))?;
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    /// Tells whether exactly the metrics of [`MetricName::ALL`] were registered, once each.
    fn registered_exactly_all(&self) -> bool {
        let registered: HashSet<MetricName> = self.registered.iter().copied().collect();
        registered.len() == self.registered.len()
            && registered == MetricName::ALL.into_iter().collect()
    }
}

/// Holds every metric handle of a worker.
///
/// The handles of the batch pipeline are public fields; the stream-worker
/// metrics are reached through methods whose label arguments are typed, so
/// their label sets stay bounded by construction.
pub struct Metrics {
    registry: Registry,
    /// Records read from the input.
    pub records_received: IntCounter,
    /// Bytes read from the input.
    pub input_bytes: IntCounter,
    /// Blank lines skipped.
    pub blank_lines: IntCounter,
    /// Rows published, by `output`.
    pub rows_written: IntCounterVec,
    /// Records quarantined, by `reason`.
    pub records_rejected: IntCounterVec,
    /// Replays of an already-seen `observation_id`, written once.
    pub records_duplicate: IntCounter,
    /// Unknown input fields seen (never copied), by `field`; count them with
    /// [`Metrics::count_unknown_field`], which keeps the label set capped.
    pub unknown_fields: IntCounterVec,
    /// `delink_values_withheld_total{output,field,reason}`: labels are a dataset,
    /// a schema field path and a fixed reason, never a value.
    pub values_withheld: IntCounterVec,
    /// Files published, by `output`.
    pub files_published: IntCounterVec,
    profile_rows: IntCounterVec,
    profile_rows_below_k: IntCounter,
    risk_ratio: GaugeVec,
    risk_limits_exceeded: IntGauge,
    /// Segments published.
    pub segments_published: IntCounter,
    /// Time to seal, sync keys and publish one segment.
    pub publish_duration: Histogram,
    /// Records per batch read from the source.
    pub batch_records: Histogram,
    output_bytes: IntCounterVec,
    kafka_consumer_lag: IntGaugeVec,
    kafka_committed_offset: IntGaugeVec,
    kafka_assigned_partitions: IntGauge,
    kafka_rebalances: IntCounterVec,
    kafka_commit_errors: IntCounter,
    dead_letter_records: IntCounter,
    keystore_operations: IntCounterVec,
    keystore_errors: IntCounterVec,
    erasures_applied: IntCounter,
    erasures_incomplete: IntGauge,
    erasure_oldest_incomplete_age: IntGauge,
    kek_age: IntGauge,
    /// Segments whose publication failed.
    pub publish_errors: IntCounter,
    build_info: IntGaugeVec,
    draining: IntGauge,
    unknown_field_labels: Mutex<HashSet<String>>,
}

impl Metrics {
    /// Creates and registers every metric of [`MetricName::ALL`].
    ///
    /// Series whose label values form a closed set (outputs, rejection reasons,
    /// rebalance events, key-store operations) start at zero, so that rates and alerts work
    /// before the first event.
    pub fn new() -> Result<Self> {
        let mut registrar = Registrar {
            registry: Registry::new(),
            registered: Vec::with_capacity(MetricName::ALL.len()),
        };
        let metrics = Metrics {
            records_received: registrar.counter(MetricName::InputRecords)?,
            input_bytes: registrar.counter(MetricName::InputBytes)?,
            blank_lines: registrar.counter(MetricName::InputBlankLines)?,
            records_rejected: registrar.counter_vec(MetricName::RecordsRejected)?,
            records_duplicate: registrar.counter(MetricName::RecordsDuplicate)?,
            unknown_fields: registrar.counter_vec(MetricName::UnknownFields)?,
            values_withheld: registrar.counter_vec(MetricName::ValuesWithheld)?,
            profile_rows: registrar.counter_vec(MetricName::ProfileRows)?,
            profile_rows_below_k: registrar.counter(MetricName::ProfileRowsBelowK)?,
            risk_ratio: registrar.float_gauge_vec(MetricName::RiskRatio)?,
            risk_limits_exceeded: registrar.gauge(MetricName::RiskLimitsExceeded)?,
            rows_written: registrar.counter_vec(MetricName::OutputRows)?,
            files_published: registrar.counter_vec(MetricName::OutputFiles)?,
            output_bytes: registrar.counter_vec(MetricName::OutputBytes)?,
            segments_published: registrar.counter(MetricName::SegmentsPublished)?,
            publish_duration: registrar.histogram(
                MetricName::SegmentPublishDuration,
                &PUBLISH_DURATION_BUCKETS,
            )?,
            batch_records: registrar
                .histogram(MetricName::InputBatchRecords, &BATCH_RECORDS_BUCKETS)?,
            kafka_consumer_lag: registrar.gauge_vec(MetricName::KafkaConsumerLag)?,
            kafka_committed_offset: registrar.gauge_vec(MetricName::KafkaCommittedOffset)?,
            kafka_assigned_partitions: registrar.gauge(MetricName::KafkaAssignedPartitions)?,
            kafka_rebalances: registrar.counter_vec(MetricName::KafkaRebalances)?,
            kafka_commit_errors: registrar.counter(MetricName::KafkaCommitErrors)?,
            dead_letter_records: registrar.counter(MetricName::DeadLetterRecords)?,
            keystore_operations: registrar.counter_vec(MetricName::KeystoreOperations)?,
            keystore_errors: registrar.counter_vec(MetricName::KeystoreErrors)?,
            erasures_applied: registrar.counter(MetricName::ErasuresApplied)?,
            erasures_incomplete: registrar.gauge(MetricName::ErasuresIncomplete)?,
            erasure_oldest_incomplete_age: registrar
                .gauge(MetricName::ErasureOldestIncompleteAge)?,
            kek_age: registrar.gauge(MetricName::KekAge)?,
            publish_errors: registrar.counter(MetricName::PublishErrors)?,
            build_info: registrar.gauge_vec(MetricName::BuildInfo)?,
            draining: registrar.gauge(MetricName::Draining)?,
            unknown_field_labels: Mutex::new(HashSet::new()),
            // A registry is a shared handle; this clone is the same registry.
            registry: registrar.registry.clone(),
        };
        debug_assert!(
            registrar.registered_exactly_all(),
            "Metrics::new and MetricName::ALL disagree"
        );
        metrics
            .build_info
            .with_label_values(&[BUILD_VERSION])
            .set(1);
        for event in RebalanceEvent::ALL {
            metrics
                .kafka_rebalances
                .with_label_values(&[event.as_str()]);
        }
        // Not read yet: -1, never a reassuring 0.
        metrics.erasure_oldest_incomplete_age.set(-1);
        metrics.kek_age.set(-1);
        // Not assessed yet: NaN, never a reassuring 0.
        for measure in RISK_MEASURES {
            metrics
                .risk_ratio
                .with_label_values(&[measure])
                .set(f64::NAN);
        }
        metrics.profile_rows.with_label_values(&["0"]);
        for output in Output::ALL {
            let label = [output.as_str()];
            metrics.files_published.with_label_values(&label);
            metrics.output_bytes.with_label_values(&label);
        }
        for dataset in delink_model::Dataset::ALL {
            metrics.rows_written.with_label_values(&[dataset.as_str()]);
        }
        for reason in delink_model::RejectionReason::ALL {
            metrics
                .records_rejected
                .with_label_values(&[reason.as_str()]);
        }
        for operation in KeystoreOperation::ALL {
            metrics
                .keystore_operations
                .with_label_values(&[operation.as_str()]);
            metrics
                .keystore_errors
                .with_label_values(&[operation.as_str()]);
        }
        Ok(metrics)
    }

    /// Sets what the key store's journal says: the current KEK's age, and the
    /// incomplete erasures with the age of the oldest (all in seconds).
    pub fn set_key_health(&self, kek_age: i64, incomplete: usize, oldest_incomplete_age: i64) {
        self.kek_age.set(kek_age);
        self.erasures_incomplete.set(incomplete as i64);
        self.erasure_oldest_incomplete_age
            .set(oldest_incomplete_age);
    }

    /// Counts an unknown field, keeping the `field` label bounded by
    /// [`MAX_UNKNOWN_FIELD_LABELS`].
    pub fn count_unknown_field(&self, name: &str, count: u64) {
        let mut labels = self
            .unknown_field_labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let label = if labels.contains(name) {
            name
        } else if labels.len() < MAX_UNKNOWN_FIELD_LABELS {
            labels.insert(name.to_owned());
            name
        } else {
            OTHER_FIELD_LABEL
        };
        self.unknown_fields
            .with_label_values(&[label])
            .inc_by(count);
    }

    /// Returns the unknown-field counts by label (capped names, then `(other)`).
    pub fn unknown_field_counts(&self) -> BTreeMap<String, u64> {
        let labels = self
            .unknown_field_labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        labels
            .iter()
            .map(String::as_str)
            .chain([OTHER_FIELD_LABEL])
            .map(|label| {
                let count = self.unknown_fields.with_label_values(&[label]).get();
                (label.to_owned(), count)
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Counts devices/ rows published at each profile level (index = level),
    /// and those still below k.
    pub fn count_profiles(&self, rows_by_level: &[u64], below_k: u64) {
        for (level, rows) in rows_by_level.iter().enumerate() {
            if *rows > 0 {
                let label = level.min(MAX_PROFILE_LEVEL_LABELS - 1).to_string();
                self.profile_rows.with_label_values(&[&label]).inc_by(*rows);
            }
        }
        self.profile_rows_below_k.inc_by(below_k);
    }

    /// Returns the devices/ rows counted per profile level, `level` → rows.
    pub fn profile_counts(&self) -> BTreeMap<u32, u64> {
        use prometheus::core::Collector;
        let mut counts = BTreeMap::new();
        for family in self.profile_rows.collect() {
            for metric in family.get_metric() {
                let level = metric
                    .get_label()
                    .iter()
                    .find(|pair| pair.name() == LABEL_LEVEL)
                    .and_then(|pair| pair.value().parse().ok());
                if let Some(level) = level {
                    counts.insert(level, metric.get_counter().get_value() as u64);
                }
            }
        }
        counts
    }

    /// Returns the devices/ rows still below k.
    pub fn profile_rows_below_k(&self) -> u64 {
        self.profile_rows_below_k.get()
    }

    /// Records a risk assessment: each measure of [`RISK_MEASURES`] with its
    /// ratio, and how many limits were exceeded.
    pub fn set_risk(&self, ratios: &[(&str, f64)], limits_exceeded: usize) {
        for (measure, ratio) in ratios {
            if RISK_MEASURES.contains(measure) {
                self.risk_ratio.with_label_values(&[measure]).set(*ratio);
            }
        }
        self.risk_limits_exceeded
            .set(i64::try_from(limits_exceeded).unwrap_or(i64::MAX));
    }

    /// Returns the withheld-value counts as `output field reason` → count.
    pub fn withheld_counts(&self) -> BTreeMap<String, u64> {
        use prometheus::core::Collector;
        let mut counts = BTreeMap::new();
        for family in self.values_withheld.collect() {
            for metric in family.get_metric() {
                let label = |name: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|pair| pair.name() == name)
                        .map_or("", |pair| pair.value())
                };
                let key = [LABEL_OUTPUT, LABEL_FIELD, LABEL_REASON]
                    .map(label)
                    .join(" ");
                let count = metric.get_counter().get_value() as u64;
                if count > 0 {
                    counts.insert(key, count);
                }
            }
        }
        counts
    }

    /// Counts one published file of `output` and its size in bytes.
    pub fn count_published_file(&self, output: Output, bytes: u64) {
        let label = [output.as_str()];
        self.files_published.with_label_values(&label).inc();
        self.output_bytes.with_label_values(&label).inc_by(bytes);
    }

    /// Sets the lag, in records, of an assigned partition. A negative lag (a
    /// watermark older than the position) is reported as 0.
    ///
    /// `topic` must come from configuration and `partition` from broker
    /// metadata, never from a record.
    pub fn set_partition_lag(&self, topic: &str, partition: i32, lag: i64) {
        let partition = partition.to_string();
        self.kafka_consumer_lag
            .with_label_values(&[topic, partition.as_str()])
            .set(lag.max(0));
    }

    /// Sets the last committed offset of an assigned partition.
    pub fn set_committed_offset(&self, topic: &str, partition: i32, offset: i64) {
        let partition = partition.to_string();
        self.kafka_committed_offset
            .with_label_values(&[topic, partition.as_str()])
            .set(offset);
    }

    /// Removes a partition's lag and offset series, so that a revoked or lost
    /// partition leaves no stale value behind. Forgetting an unknown partition
    /// does nothing.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let partition = partition.to_string();
        let labels = [topic, partition.as_str()];
        // An error only means that series was never set.
        let _ = self.kafka_consumer_lag.remove_label_values(&labels);
        let _ = self.kafka_committed_offset.remove_label_values(&labels);
    }

    /// Removes the lag and offset series of every partition (after a lost
    /// assignment, or at shutdown).
    pub fn forget_all_partitions(&self) {
        self.kafka_consumer_lag.reset();
        self.kafka_committed_offset.reset();
    }

    /// Sets how many partitions are assigned to this worker.
    pub fn set_assigned_partitions(&self, count: usize) {
        self.kafka_assigned_partitions
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts one rebalance event.
    pub fn count_rebalance(&self, event: RebalanceEvent) {
        self.kafka_rebalances
            .with_label_values(&[event.as_str()])
            .inc();
    }

    /// Counts one failed offset commit.
    pub fn count_commit_error(&self) {
        self.kafka_commit_errors.inc();
    }

    /// Counts records sent to the dead-letter output.
    pub fn count_dead_letter_records(&self, count: u64) {
        self.dead_letter_records.inc_by(count);
    }

    /// Counts `count` attempts of a key-store operation (once per batch, not per key).
    pub fn count_keystore_operations(&self, operation: KeystoreOperation, count: u64) {
        self.keystore_operations
            .with_label_values(&[operation.as_str()])
            .inc_by(count);
    }

    /// Counts one failed key-store operation (also count it as an attempt).
    pub fn count_keystore_error(&self, operation: KeystoreOperation) {
        self.keystore_errors
            .with_label_values(&[operation.as_str()])
            .inc();
    }

    /// Counts one drop of the key cache after the store announced an erasure.
    pub fn count_erasure_applied(&self) {
        self.erasures_applied.inc();
    }

    /// Copies the parts of `health` that are also metrics (`delink_draining`).
    pub fn observe_health(&self, health: &Health) {
        self.draining.set(i64::from(health.is_draining()));
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    #[cfg(test)]
    pub(crate) fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}

/// Touches every metric once, with one value of each label; shared by the tests.
#[cfg(test)]
pub(crate) fn touch_every_metric(metrics: &Metrics) {
    metrics.records_received.inc();
    metrics.input_bytes.inc_by(10);
    metrics.blank_lines.inc();
    metrics
        .records_rejected
        .with_label_values(&["not_json"])
        .inc();
    metrics.records_duplicate.inc();
    metrics.count_unknown_field("driver_license", 1);
    metrics
        .values_withheld
        .with_label_values(&["devices", "charger.model", "not_in_vocabulary"])
        .inc();
    metrics
        .rows_written
        .with_label_values(&[Output::History.as_str()])
        .inc_by(3);
    metrics.count_published_file(Output::History, 4096);
    metrics.segments_published.inc();
    metrics.publish_duration.observe(0.2);
    metrics.set_partition_lag("telemetry", 0, 12);
    metrics.set_committed_offset("telemetry", 0, 100);
    metrics.set_assigned_partitions(1);
    metrics.count_rebalance(RebalanceEvent::Assign);
    metrics.count_commit_error();
    metrics.count_dead_letter_records(1);
    metrics.count_keystore_operations(KeystoreOperation::KeyFor, 5);
    metrics.count_keystore_error(KeystoreOperation::Sync);
    metrics.count_erasure_applied();
    metrics.observe_health(&Health::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    use prometheus::proto::MetricType;

    /// Returns the sample lines of `name` (its series), without `# HELP`/`# TYPE`.
    fn series<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    fn kind_of(family: &prometheus::proto::MetricFamily) -> &'static str {
        match family.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "untyped",
        }
    }

    #[test]
    fn unknown_field_labels_are_capped() {
        let metrics = Metrics::new().expect("metrics");
        for index in 0..(MAX_UNKNOWN_FIELD_LABELS + 10) {
            metrics.count_unknown_field(&format!("field_{index}"), 1);
        }
        metrics.count_unknown_field("field_0", 1);
        let text = metrics.render();
        assert!(
            text.contains("delink_unknown_fields_total{field=\"field_0\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("delink_unknown_fields_total{field=\"(other)\"} 10"),
            "{text}"
        );
        let series = series(&text, "delink_unknown_fields_total");
        assert_eq!(series.len(), MAX_UNKNOWN_FIELD_LABELS + 1);
    }

    #[test]
    fn names_follow_the_convention() {
        let metrics = Metrics::new().expect("metrics");
        touch_every_metric(&metrics);
        for family in metrics.gather() {
            let name = family.name();
            assert!(name.starts_with(&format!("{NAMESPACE}_")), "{name}");
            let is_counter = family.get_field_type() == MetricType::COUNTER;
            assert_eq!(is_counter, name.ends_with("_total"), "{name}");
            for non_base_unit in ["_milliseconds", "_microseconds", "_kilobytes", "_megabytes"] {
                assert!(!name.contains(non_base_unit), "{name} is not in base units");
            }
        }
    }

    #[test]
    fn every_declared_metric_is_exposed_with_its_type_and_labels() {
        let metrics = Metrics::new().expect("metrics");
        touch_every_metric(&metrics);
        let families = metrics.gather();
        let exposed: Vec<&str> = families.iter().map(|family| family.name()).collect();
        let mut declared: Vec<&str> = MetricName::ALL.iter().map(|name| name.as_str()).collect();
        declared.sort_unstable();
        assert_eq!(exposed, declared);
        for family in &families {
            let spec = MetricName::ALL
                .iter()
                .map(|name| name.spec())
                .find(|spec| spec.name == family.name())
                .expect("declared");
            assert_eq!(kind_of(family), spec.kind.as_str(), "{}", spec.name);
            assert_eq!(family.help(), spec.help, "{}", spec.name);
            for metric in family.get_metric() {
                let labels: Vec<&str> = metric.get_label().iter().map(|l| l.name()).collect();
                let mut expected = spec.labels.to_vec();
                expected.sort_unstable();
                assert_eq!(labels, expected, "{}", spec.name);
            }
        }
    }

    #[test]
    fn closed_label_sets_start_at_zero_and_stay_closed() {
        let metrics = Metrics::new().expect("metrics");
        let text = metrics.render();
        for event in RebalanceEvent::ALL {
            let line = format!(
                "delink_kafka_rebalances_total{{event=\"{}\"}} 0",
                event.as_str()
            );
            assert!(text.contains(&line), "{text}");
        }
        for _ in 0..100 {
            for event in RebalanceEvent::ALL {
                metrics.count_rebalance(event);
            }
            for operation in KeystoreOperation::ALL {
                metrics.count_keystore_operations(operation, 2);
                metrics.count_keystore_error(operation);
            }
        }
        let text = metrics.render();
        assert_eq!(
            series(&text, "delink_kafka_rebalances_total").len(),
            RebalanceEvent::ALL.len()
        );
        for name in [
            "delink_keystore_operations_total",
            "delink_keystore_errors_total",
        ] {
            assert_eq!(
                series(&text, name).len(),
                KeystoreOperation::ALL.len(),
                "{text}"
            );
        }
        assert!(
            text.contains("delink_keystore_operations_total{operation=\"existing_key\"} 200"),
            "{text}"
        );
        assert!(
            text.contains("delink_keystore_errors_total{operation=\"purge\"} 100"),
            "{text}"
        );
    }

    #[test]
    fn partition_gauges_disappear_after_forget_partition() {
        let metrics = Metrics::new().expect("metrics");
        metrics.set_partition_lag("telemetry", 0, 5);
        metrics.set_partition_lag("telemetry", 1, 7);
        metrics.set_committed_offset("telemetry", 0, 40);
        metrics.set_committed_offset("telemetry", 1, 41);
        let text = metrics.render();
        assert!(
            text.contains(
                "delink_kafka_consumer_lag_records{partition=\"1\",topic=\"telemetry\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains("delink_kafka_committed_offset{partition=\"0\",topic=\"telemetry\"} 40"),
            "{text}"
        );

        metrics.forget_partition("telemetry", 1);
        let text = metrics.render();
        assert_eq!(
            series(&text, "delink_kafka_consumer_lag_records"),
            ["delink_kafka_consumer_lag_records{partition=\"0\",topic=\"telemetry\"} 5"]
        );
        assert_eq!(
            series(&text, "delink_kafka_committed_offset"),
            ["delink_kafka_committed_offset{partition=\"0\",topic=\"telemetry\"} 40"]
        );

        // Forgetting twice, or a partition never set, is harmless.
        metrics.forget_partition("telemetry", 1);
        metrics.forget_partition("telemetry", 9);
        metrics.forget_all_partitions();
        let text = metrics.render();
        assert!(
            series(&text, "delink_kafka_consumer_lag_records").is_empty(),
            "{text}"
        );
        assert!(
            series(&text, "delink_kafka_committed_offset").is_empty(),
            "{text}"
        );
    }

    #[test]
    fn partition_series_stay_bounded_across_rebalances() {
        let metrics = Metrics::new().expect("metrics");
        for generation in 0..50 {
            // Each generation the worker gets a different pair of the 12 partitions.
            let assigned = [generation % 12, (generation + 5) % 12];
            for partition in assigned {
                metrics.set_partition_lag("telemetry", partition, i64::from(generation));
                metrics.set_committed_offset("telemetry", partition, i64::from(generation));
            }
            let text = metrics.render();
            assert_eq!(series(&text, "delink_kafka_consumer_lag_records").len(), 2);
            assert_eq!(series(&text, "delink_kafka_committed_offset").len(), 2);
            for partition in assigned {
                metrics.forget_partition("telemetry", partition);
            }
        }
    }

    #[test]
    fn negative_lag_is_reported_as_zero() {
        let metrics = Metrics::new().expect("metrics");
        metrics.set_partition_lag("telemetry", 3, -4);
        let text = metrics.render();
        assert!(
            text.contains(
                "delink_kafka_consumer_lag_records{partition=\"3\",topic=\"telemetry\"} 0"
            ),
            "{text}"
        );
    }

    #[test]
    fn published_files_count_files_and_bytes_per_output() {
        let metrics = Metrics::new().expect("metrics");
        metrics.count_published_file(Output::History, 1000);
        metrics.count_published_file(Output::History, 24);
        metrics.count_published_file(Output::Quarantine, 7);
        let text = metrics.render();
        for line in [
            "delink_output_files_total{output=\"history\"} 2",
            "delink_output_bytes_total{output=\"history\"} 1024",
            "delink_output_files_total{output=\"quarantine\"} 1",
            "delink_output_bytes_total{output=\"quarantine\"} 7",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(series(&text, "delink_output_bytes_total{output=\"devices\"").is_empty());
    }

    #[test]
    fn build_info_is_one_with_the_crate_version() {
        let metrics = Metrics::new().expect("metrics");
        let text = metrics.render();
        assert_eq!(
            series(&text, "delink_build_info"),
            [format!(
                "delink_build_info{{version=\"{BUILD_VERSION}\"}} 1"
            )]
        );
        assert!(!BUILD_VERSION.is_empty());
    }

    #[test]
    fn draining_gauge_follows_health() {
        let metrics = Metrics::new().expect("metrics");
        let health = Health::new();
        metrics.observe_health(&health);
        assert!(metrics.render().contains("delink_draining 0"));
        health.set_draining(true);
        metrics.observe_health(&health);
        assert!(metrics.render().contains("delink_draining 1"));
        health.set_draining(false);
        metrics.observe_health(&health);
        assert!(metrics.render().contains("delink_draining 0"));
        health.begin_shutdown();
        metrics.observe_health(&health);
        assert!(metrics.render().contains("delink_draining 1"));
    }

    #[test]
    fn every_dataset_is_an_output() {
        for dataset in delink_model::Dataset::ALL {
            assert!(
                Output::ALL
                    .iter()
                    .any(|output| output.as_str() == dataset.as_str()),
                "{dataset:?}"
            );
        }
    }

    #[test]
    fn label_value_sets_are_distinct_snake_case() {
        let sets: [Vec<&str>; 3] = [
            Output::ALL.iter().map(|value| value.as_str()).collect(),
            RebalanceEvent::ALL
                .iter()
                .map(|value| value.as_str())
                .collect(),
            KeystoreOperation::ALL
                .iter()
                .map(|value| value.as_str())
                .collect(),
        ];
        for values in sets {
            let distinct: HashSet<&str> = values.iter().copied().collect();
            assert_eq!(distinct.len(), values.len(), "{values:?}");
            for value in values {
                assert!(
                    value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{value}"
                );
            }
        }
    }
}
