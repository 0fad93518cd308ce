//! Metrics, health and the admin HTTP server of a delink worker.
//!
//! Every stage reports here; the admin server exposes it to Prometheus and
//! to Kubernetes probes.
//!
//! Every metric is defined here, once: [`MetricName`] spells each name, type
//! and label set, and [`Metrics`] holds the handles. The design decision to
//! know: labels are bounded by construction. Output names, rejection reasons,
//! rebalance events and key-store operations come from closed enums; Kafka
//! topics and partitions come from configuration and broker metadata; and
//! unknown-field names (the only label derived from input) are sanitised by
//! `decode` and capped here at [`MAX_UNKNOWN_FIELD_LABELS`] distinct values,
//! past which they are counted as [`OTHER_FIELD_LABEL`].
//!
//! [`Health`] is the liveness and readiness state the pipeline updates, and
//! [`AdminServer`] serves both (`/metrics`, `/healthz`, `/readyz`) from a
//! thread and a small runtime of its own, away from the pipeline's threads.
//! `docs/metrics.md` documents every metric; a test keeps it in step with
//! [`MetricName::ALL`].

mod admin;
#[cfg(test)]
mod documentation_tests;
mod error;
mod health;
mod log_limit;
mod metrics;

pub use admin::{AdminServer, LIVENESS_PATH, METRICS_PATH, READINESS_PATH};
pub use error::{Error, Result};
pub use health::Health;
pub use log_limit::{Admitted, LogLimit};
pub use metrics::{
    BUILD_VERSION, KeystoreOperation, MAX_UNKNOWN_FIELD_LABELS, MetricName, Metrics, NAMESPACE,
    OTHER_FIELD_LABEL, Output, RebalanceEvent,
};
