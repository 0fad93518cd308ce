//! k-anonymity of device profiles: how many chargers share a row's
//! quasi-identifiers (location cell, country, property type, model, firmware,
//! component kinds, and the profile level they were published at) on its day.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use crate::table::Table;

/// The fields whose values together single out a household.
pub const QUASI_IDENTIFIERS: [&str; 7] = [
    "installation.lat",
    "installation.lon",
    "installation.country",
    "installation.property_type",
    "charger.model",
    "charger.firmware",
    "charger.components.kind",
];

/// The k of each devices row: distinct charger pseudonyms with the same
/// profile on the same UTC day.
pub(crate) fn k_per_row(devices: &Table, chargers: &[String]) -> Result<Vec<usize>> {
    let mut parts = Vec::new();
    for source in QUASI_IDENTIFIERS {
        if let Some(column) = devices.column(source).filter(|c| !c.is_pseudonym()) {
            parts.push(column.text()?);
        }
    }
    if let Some(level) = devices.named(delink_anonymise::LEVEL_COLUMN) {
        parts.push(level.text()?);
    }
    let days: Vec<String> = match devices.column("observed_at") {
        Some(column) => column
            .text()?
            .into_iter()
            .map(|micros| {
                micros
                    .parse::<i64>()
                    .map_or(String::new(), |m| m.div_euclid(86_400_000_000).to_string())
            })
            .collect(),
        None => vec![String::new(); devices.rows],
    };
    let profile = |row: usize| {
        let mut key = days[row].clone();
        for part in &parts {
            key.push('\u{1f}');
            key.push_str(&part[row]);
        }
        key
    };
    let profiles: Vec<String> = (0..devices.rows).map(profile).collect();
    let mut members: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (key, charger) in profiles.iter().zip(chargers) {
        members.entry(key).or_default().insert(charger);
    }
    Ok(profiles
        .iter()
        .map(|key| members[key.as_str()].len())
        .collect())
}

/// The k buckets of the report, smallest first.
const BUCKETS: [(&str, usize); 5] = [
    ("1", 1),
    ("2-4", 4),
    ("5-9", 9),
    ("10-19", 19),
    ("20+", usize::MAX),
];

/// Counts rows per k bucket (`1`, `2-4`, `5-9`, `10-19`, `20+`), smallest first.
pub(crate) fn distribution(ks: &[usize]) -> Vec<(&'static str, usize)> {
    let mut counts = [0usize; BUCKETS.len()];
    for k in ks {
        let bucket = BUCKETS.iter().position(|(_, upto)| k <= upto).unwrap_or(0);
        counts[bucket] += 1;
    }
    BUCKETS
        .iter()
        .map(|(label, _)| *label)
        .zip(counts)
        .collect()
}
