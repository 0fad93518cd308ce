//! Keeps `docs/metrics.md` in step with the code: its metric table is parsed
//! and compared with [`MetricName::ALL`], with what `/metrics` serves, and
//! with the closed label sets.

use std::collections::BTreeSet;
use std::sync::Arc;

use delink_model::{Dataset, RejectionReason};

use crate::admin::tests::{request, start};
use crate::health::Health;
use crate::metrics::{
    KeystoreOperation, MAX_UNKNOWN_FIELD_LABELS, MetricName, Metrics, OTHER_FIELD_LABEL, Output,
    RebalanceEvent, touch_every_metric,
};

const METRICS_DOC: &str = include_str!("../../../docs/metrics.md");

/// One row of the metric table.
#[derive(Debug)]
struct DocumentedMetric {
    name: String,
    kind: String,
    /// Label name and the backticked values listed for it, in table order.
    labels: Vec<(String, Vec<String>)>,
    unit: String,
}

/// Returns the backticked spans of `text`, in order.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Parses the rows of the table under `## Metrics`.
fn documented_metrics() -> Vec<DocumentedMetric> {
    let section = METRICS_DOC
        .split_once("\n## Metrics\n")
        .map(|(_, rest)| rest)
        .expect("docs/metrics.md has a `## Metrics` section");
    let header = "| name | type | labels | meaning | unit |";
    let table = section
        .split_once(header)
        .map(|(_, rest)| rest)
        .expect("the metric table has its header");
    table
        .lines()
        .skip(2) // the rest of the header line and the separator row
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 5, "a metric row has five cells: {line}");
            let name = backticked(cells[0]);
            assert_eq!(name.len(), 1, "one backticked name per row: {line}");
            let labels = if cells[2] == "—" {
                Vec::new()
            } else {
                cells[2]
                    .split(';')
                    .map(|label| {
                        let (label_name, values) = label
                            .split_once(':')
                            .unwrap_or_else(|| panic!("`label`: values, in {line}"));
                        let label_name = backticked(label_name);
                        assert_eq!(label_name.len(), 1, "one label name before ':' in {line}");
                        (label_name[0].clone(), backticked(values))
                    })
                    .collect()
            };
            DocumentedMetric {
                name: name[0].clone(),
                kind: cells[1].to_owned(),
                labels,
                unit: cells[4].to_owned(),
            }
        })
        .collect()
}

fn documented(name: MetricName) -> DocumentedMetric {
    documented_metrics()
        .into_iter()
        .find(|metric| metric.name == name.as_str())
        .unwrap_or_else(|| panic!("{} is not documented", name.as_str()))
}

fn label_values(metric: &DocumentedMetric, label: &str) -> BTreeSet<String> {
    metric
        .labels
        .iter()
        .find(|(name, _)| name == label)
        .map(|(_, values)| values.iter().cloned().collect())
        .unwrap_or_else(|| panic!("{} documents no `{label}` label", metric.name))
}

fn as_set<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    values.into_iter().map(str::to_owned).collect()
}

#[test]
fn the_table_documents_exactly_the_declared_metrics_in_order() {
    let documented: Vec<String> = documented_metrics()
        .into_iter()
        .map(|metric| metric.name)
        .collect();
    let declared: Vec<&str> = MetricName::ALL.iter().map(|name| name.as_str()).collect();
    assert_eq!(documented, declared);
}

#[test]
fn the_table_gives_each_metric_its_type_labels_and_a_unit() {
    for name in MetricName::ALL {
        let spec = name.spec();
        let metric = documented(name);
        assert_eq!(metric.kind, spec.kind.as_str(), "type of {}", spec.name);
        let labels: Vec<&str> = metric
            .labels
            .iter()
            .map(|(label, _)| label.as_str())
            .collect();
        assert_eq!(labels, spec.labels, "labels of {}", spec.name);
        assert!(!metric.unit.is_empty(), "unit of {}", spec.name);
        if spec.name.ends_with("_seconds") {
            assert_eq!(metric.unit, "seconds", "unit of {}", spec.name);
        }
        if spec.name.ends_with("_bytes_total") {
            assert_eq!(metric.unit, "bytes", "unit of {}", spec.name);
        }
    }
}

#[test]
fn the_table_lists_the_closed_label_sets_of_the_code() {
    let events = as_set(RebalanceEvent::ALL.map(RebalanceEvent::as_str));
    assert_eq!(
        label_values(&documented(MetricName::KafkaRebalances), "event"),
        events
    );
    let operations = as_set(KeystoreOperation::ALL.map(KeystoreOperation::as_str));
    for name in [MetricName::KeystoreOperations, MetricName::KeystoreErrors] {
        assert_eq!(label_values(&documented(name), "operation"), operations);
    }
    let outputs = as_set(Output::ALL.map(Output::as_str));
    for name in [MetricName::OutputFiles, MetricName::OutputBytes] {
        assert_eq!(label_values(&documented(name), "output"), outputs);
    }
    let datasets = as_set(Dataset::ALL.map(Dataset::as_str));
    assert_eq!(
        label_values(&documented(MetricName::OutputRows), "output"),
        datasets
    );
    let reasons = as_set(RejectionReason::ALL.map(RejectionReason::as_str));
    assert_eq!(
        label_values(&documented(MetricName::RecordsRejected), "reason"),
        reasons
    );
}

#[test]
fn the_table_states_the_unknown_field_cap_of_the_code() {
    let fields = label_values(&documented(MetricName::UnknownFields), "field");
    assert!(fields.contains(OTHER_FIELD_LABEL), "{fields:?}");
    assert!(
        METRICS_DOC.contains(&format!(
            "at most {MAX_UNKNOWN_FIELD_LABELS} distinct names"
        )),
        "docs/metrics.md states another cap than {MAX_UNKNOWN_FIELD_LABELS}"
    );
}

#[test]
fn metrics_serves_every_documented_metric_and_nothing_else_once_touched() {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    touch_every_metric(&metrics);
    let server = start(&metrics, &Arc::new(Health::new()));
    let reply = request(server.local_addr(), "GET", "/metrics");
    assert_eq!(reply.status, 200);
    let served: BTreeSet<String> = reply
        .body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            format!("{name} {kind}")
        })
        .collect();
    let documented: BTreeSet<String> = documented_metrics()
        .into_iter()
        .map(|metric| format!("{} {}", metric.name, metric.kind))
        .collect();
    assert_eq!(served, documented);
}
