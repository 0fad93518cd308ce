//! What an adversary holding delink's outputs could do with them, measured:
//! the attacks `delink risk` plays on a data directory.
//!
//! - **Joins:** history rows that match exactly one devices row on the
//!   columns both hold (the history value coarsened as `devices/` coarsens it).
//! - **Sequence alignment:** history chargers whose rows line up with one
//!   devices charger's rows, tying a device pseudonym to a subject.
//! - **Counter continuity:** device pseudonyms whose first lifetime-counter
//!   reading continues exactly one earlier pseudonym's last (linking a charger
//!   across a key change).
//! - **k-anonymity:** for each devices row, how many chargers share its
//!   profile (location cell, country, property type, model, firmware,
//!   component kinds) that day.
//!
//! Reads only the Parquet outputs; needs no key.

mod counter;
mod join;
mod profiles;
mod table;

use std::fmt;

use anyhow::Result;
use delink_datadir::OutputStore;
use serde::Serialize;

pub use delink_config::RiskConfig;
pub use profiles::QUASI_IDENTIFIERS;

use crate::table::Table;

/// What the attacks found.
#[derive(Debug, Clone, Serialize)]
pub struct RiskReport {
    /// Rows of `history/` and `devices/`.
    pub history_rows: usize,
    /// Rows of `devices/`.
    pub devices_rows: usize,
    /// The source fields both datasets hold (the join columns).
    pub shared_fields: Vec<String>,
    /// Share of history rows matching exactly one devices row.
    pub unique_join_rate: f64,
    /// Share of history rows matching at least one devices row.
    pub any_join_rate: f64,
    /// History chargers (distinct pseudonyms).
    pub history_chargers: usize,
    /// Share of history chargers a sequence alignment links to one devices charger.
    pub sequence_link_rate: f64,
    /// Device pseudonyms with counter readings (none without a counter column).
    pub counter_pseudonyms: usize,
    /// Share of them whose counter continues exactly one earlier pseudonym's.
    pub counter_link_rate: f64,
    /// Share of devices rows whose profile has at least `k` chargers that day.
    pub k_anonymous_share: f64,
    /// Devices rows by the k of their profile: `1`, `2-4`, `5-9`, `10-19`, `20+`.
    pub k_distribution: Vec<(&'static str, usize)>,
    /// The limits it was held to.
    pub thresholds: RiskConfig,
}

impl RiskReport {
    /// Names every limit the report exceeds; empty when it holds.
    pub fn failures(&self) -> Vec<String> {
        let t = &self.thresholds;
        let mut failed = Vec::new();
        let mut check = |holds: bool, what: String| {
            if !holds {
                failed.push(what);
            }
        };
        check(
            self.unique_join_rate <= t.max_unique_join_rate,
            format!(
                "unique joins: {:.1} % of history rows match exactly one devices row (limit {:.1} %)",
                100.0 * self.unique_join_rate,
                100.0 * t.max_unique_join_rate
            ),
        );
        check(
            self.sequence_link_rate <= t.max_sequence_link_rate,
            format!(
                "sequence alignment: {:.1} % of history chargers link to one devices charger (limit {:.1} %)",
                100.0 * self.sequence_link_rate,
                100.0 * t.max_sequence_link_rate
            ),
        );
        check(
            self.counter_link_rate <= t.max_counter_link_rate,
            format!(
                "counter continuity: {:.1} % of device pseudonyms continue another's counter (limit {:.1} %)",
                100.0 * self.counter_link_rate,
                100.0 * t.max_counter_link_rate
            ),
        );
        check(
            self.k_anonymous_share >= t.min_k_anonymous_share,
            format!(
                "k-anonymity: {:.1} % of devices rows have a profile shared by {} or more chargers (need {:.1} %)",
                100.0 * self.k_anonymous_share,
                t.k,
                100.0 * t.min_k_anonymous_share
            ),
        );
        failed
    }
}

/// Plays every attack on the outputs.
pub fn assess(outputs: &OutputStore, thresholds: &RiskConfig) -> Result<RiskReport> {
    let history = Table::read(outputs, "history")?;
    let devices = Table::read(outputs, "devices")?;
    let chargers = |table: &Table| -> Result<Vec<String>> {
        match table.column("charger.serial") {
            Some(column) => column.text(),
            None => Ok(vec![String::new(); table.rows]),
        }
    };
    let history_chargers = chargers(&history)?;
    let devices_chargers = chargers(&devices)?;
    let keys = join::JoinKeys::of(&history, &devices)?;
    let (unique, any) = join::unique_matches(&keys);
    let (charger_count, linked) = join::sequence_links(&keys, &history_chargers, &devices_chargers);
    let counter =
        counter::continuity(&devices, &devices_chargers, thresholds.counter_tolerance_wh)?;
    let ks = profiles::k_per_row(&devices, &devices_chargers)?;
    let share = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let (counter_pseudonyms, counter_linked) = counter.unwrap_or((0, 0));
    Ok(RiskReport {
        history_rows: history.rows,
        devices_rows: devices.rows,
        shared_fields: keys.fields.clone(),
        unique_join_rate: share(unique, history.rows),
        any_join_rate: share(any, history.rows),
        history_chargers: charger_count,
        sequence_link_rate: share(linked, charger_count),
        counter_pseudonyms,
        counter_link_rate: share(counter_linked, counter_pseudonyms),
        k_anonymous_share: if ks.is_empty() {
            1.0
        } else {
            share(ks.iter().filter(|k| **k >= thresholds.k).count(), ks.len())
        },
        k_distribution: profiles::distribution(&ks),
        thresholds: thresholds.clone(),
    })
}

impl fmt::Display for RiskReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "delink risk: {} history rows, {} devices rows",
            self.history_rows, self.devices_rows
        )?;
        writeln!(
            f,
            "  shared columns       {}",
            self.shared_fields.join(", ")
        )?;
        writeln!(
            f,
            "  unique joins         {:.2} % of history rows match exactly one devices row ({:.2} % match any)",
            100.0 * self.unique_join_rate,
            100.0 * self.any_join_rate
        )?;
        writeln!(
            f,
            "  sequence alignment   {:.2} % of {} history chargers link to one devices charger",
            100.0 * self.sequence_link_rate,
            self.history_chargers
        )?;
        writeln!(
            f,
            "  counter continuity   {:.2} % of {} device pseudonyms continue another's counter",
            100.0 * self.counter_link_rate,
            self.counter_pseudonyms
        )?;
        writeln!(
            f,
            "  k-anonymity          {:.2} % of devices rows have k >= {}",
            100.0 * self.k_anonymous_share,
            self.thresholds.k
        )?;
        let buckets: Vec<String> = self
            .k_distribution
            .iter()
            .map(|(bucket, rows)| format!("k {bucket}: {rows}"))
            .collect();
        writeln!(f, "    rows by k          {}", buckets.join(", "))?;
        let failures = self.failures();
        if failures.is_empty() {
            writeln!(f, "  verdict              within every limit")
        } else {
            for failure in failures {
                writeln!(f, "  EXCEEDED             {failure}")?;
            }
            Ok(())
        }
    }
}
