use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use delink_datadir::{OutputStore, QUARANTINE};
use delink_model::Dataset;
use delink_risk::RiskReport;
use delink_telemetry::Metrics;

use crate::Progress;

/// Describes a finished run, for people (`Display`) and for tests (fields).
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Final counts.
    pub totals: Progress,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Quarantine partitions deleted for being past retention.
    pub quarantine_partitions_purged: u64,
    /// Peak resident memory of the process, when the OS tells.
    pub peak_rss_bytes: Option<u64>,
    /// Where the output is.
    pub outputs: OutputStore,
    /// devices/ rows published per profile level (coarsening steps taken).
    pub profile_levels: BTreeMap<u32, u64>,
    /// devices/ rows whose profile has fewer than k chargers after every step.
    pub profile_rows_below_k: u64,
    /// The privacy-risk assessment of the data directory after the run, when made.
    pub risk: Option<RiskReport>,
}

impl RunSummary {
    pub(crate) fn new(
        metrics: &Metrics,
        elapsed: Duration,
        purged: u64,
        outputs: OutputStore,
    ) -> Self {
        RunSummary {
            totals: Progress::of(metrics),
            elapsed,
            quarantine_partitions_purged: purged,
            peak_rss_bytes: peak_rss_bytes(),
            outputs,
            profile_levels: metrics.profile_counts(),
            profile_rows_below_k: metrics.profile_rows_below_k(),
            risk: None,
        }
    }

    /// Returns records processed per second.
    pub fn records_per_second(&self) -> f64 {
        self.totals.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Returns input megabytes (10^6 bytes) read per second.
    pub fn megabytes_per_second(&self) -> f64 {
        self.totals.input_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Reads the peak resident set size (`VmHWM`) of this process.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let totals = &self.totals;
        writeln!(f, "delink run summary")?;
        writeln!(f, "  observations in      {}", totals.records)?;
        writeln!(
            f,
            "  valid                {} ({} replays written once)",
            totals.valid(),
            totals.duplicates
        )?;
        writeln!(
            f,
            "  history rows         {}   -> {}",
            totals.history_rows,
            self.outputs.describe(Dataset::History.as_str())
        )?;
        writeln!(
            f,
            "  devices rows         {}   -> {}",
            totals.devices_rows,
            self.outputs.describe(Dataset::Devices.as_str())
        )?;
        writeln!(
            f,
            "  quarantined          {}   -> {} (encrypted)",
            totals.quarantined(),
            self.outputs.describe(QUARANTINE)
        )?;
        for (reason, count) in &totals.rejected {
            writeln!(f, "    {:<20} {count}", reason.as_str())?;
        }
        if totals.unknown_fields.is_empty() {
            writeln!(f, "  unknown fields       none")?;
        } else {
            writeln!(
                f,
                "  unknown fields       (never copied; classify them in the policy)"
            )?;
            for (name, count) in &totals.unknown_fields {
                writeln!(f, "    {name:<30} {count}")?;
            }
        }
        if !totals.withheld.is_empty() {
            writeln!(
                f,
                "  values withheld      (outside their policy domain; written as null)"
            )?;
            for (what, count) in &totals.withheld {
                writeln!(f, "    {what:<40} {count}")?;
            }
        }
        if !self.profile_levels.is_empty() {
            let levels: Vec<String> = self
                .profile_levels
                .iter()
                .map(|(level, rows)| format!("{level}: {rows}"))
                .collect();
            writeln!(
                f,
                "  device profiles      rows by coarsening level {}; {} below k",
                levels.join(", "),
                self.profile_rows_below_k
            )?;
        }
        if let Some(risk) = &self.risk {
            let failures = risk.failures();
            writeln!(
                f,
                "  privacy risk         unique joins {:.2} %, sequence links {:.2} %, counter links {:.2} %, k-anonymous rows {:.2} % ({})",
                100.0 * risk.unique_join_rate,
                100.0 * risk.sequence_link_rate,
                100.0 * risk.counter_link_rate,
                100.0 * risk.k_anonymous_share,
                if failures.is_empty() {
                    "within every limit".to_owned()
                } else {
                    format!("EXCEEDED: {}", failures.join("; "))
                }
            )?;
        }
        if totals.blank_lines > 0 {
            writeln!(f, "  blank lines skipped  {}", totals.blank_lines)?;
        }
        writeln!(
            f,
            "  files published      {} in {} segments",
            totals.files_published, totals.segments_published
        )?;
        if self.quarantine_partitions_purged > 0 {
            writeln!(
                f,
                "  quarantine purged    {} partitions past retention",
                self.quarantine_partitions_purged
            )?;
        }
        writeln!(
            f,
            "  elapsed              {:.2} s   {:.0} obs/s   {:.1} MB/s",
            self.elapsed.as_secs_f64(),
            self.records_per_second(),
            self.megabytes_per_second()
        )?;
        if let Some(peak) = self.peak_rss_bytes {
            writeln!(
                f,
                "  peak RSS             {:.1} MiB",
                peak as f64 / (1024.0 * 1024.0)
            )?;
        }
        Ok(())
    }
}
