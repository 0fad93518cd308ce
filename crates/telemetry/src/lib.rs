//! Metric names and the Prometheus registry of delink.
//!
//! Every metric is defined here, once. The design decision to know: labels
//! are bounded by construction — output names, rejection reasons and key
//! scopes come from closed enums, and unknown-field names (the only label
//! that comes from input) are sanitised by `decode` and capped here at
//! [`MAX_UNKNOWN_FIELD_LABELS`] distinct values, past which they are counted
//! as `(other)`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Namespace of every metric.
pub const NAMESPACE: &str = "delink";
/// Distinct unknown-field names tracked before lumping the rest under `(other)`.
pub const MAX_UNKNOWN_FIELD_LABELS: usize = 64;
/// The label value that absorbs unknown-field names past the cap.
pub const OTHER_FIELD_LABEL: &str = "(other)";

/// Holds every metric handle of a worker.
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
    /// Unknown input fields seen (never copied), by `field`.
    pub unknown_fields: IntCounterVec,
    /// Files published, by `output`.
    pub files_published: IntCounterVec,
    /// Segments published.
    pub segments_published: IntCounter,
    /// Time to seal, sync keys and publish one segment.
    pub publish_duration: Histogram,
    unknown_field_labels: Mutex<HashSet<String>>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let metric = IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let counter_vec =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                let metric =
                    IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), &[label])?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let publish_duration = Histogram::with_opts(
            HistogramOpts::new(
                "segment_publish_duration_seconds",
                "Time to seal, make keys durable and publish one segment",
            )
            .namespace(NAMESPACE)
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        registry.register(Box::new(publish_duration.clone()))?;
        Ok(Metrics {
            records_received: counter("input_records_total", "Records read from the input")?,
            input_bytes: counter("input_bytes_total", "Bytes read from the input")?,
            blank_lines: counter("input_blank_lines_total", "Blank input lines skipped")?,
            rows_written: counter_vec("output_rows_total", "Rows published", "output")?,
            records_rejected: counter_vec(
                "records_rejected_total",
                "Records quarantined, by reason",
                "reason",
            )?,
            records_duplicate: counter(
                "records_duplicate_total",
                "Replays of an observation_id already written in this run",
            )?,
            unknown_fields: counter_vec(
                "unknown_fields_total",
                "Input fields the policy does not classify (never copied), by name",
                "field",
            )?,
            files_published: counter_vec("output_files_total", "Files published", "output")?,
            segments_published: counter("segments_published_total", "Segments published")?,
            publish_duration,
            registry,
            unknown_field_labels: Mutex::new(HashSet::new()),
        })
    }

    /// Counts an unknown field, keeping the `field` label bounded.
    pub fn count_unknown_field(&self, name: &str, count: u64) {
        let mut labels = self
            .unknown_field_labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let series = text
            .lines()
            .filter(|l| l.starts_with("delink_unknown_fields_total"))
            .count();
        assert_eq!(series, MAX_UNKNOWN_FIELD_LABELS + 1);
    }

    #[test]
    fn names_follow_the_convention() {
        let metrics = Metrics::new().expect("metrics");
        metrics.rows_written.with_label_values(&["history"]).inc();
        metrics
            .records_rejected
            .with_label_values(&["not_json"])
            .inc();
        for family in metrics.registry.gather() {
            let name = family.name();
            assert!(name.starts_with("delink_"), "{name}");
            let is_counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
            assert_eq!(is_counter, name.ends_with("_total"), "{name}");
        }
    }
}
