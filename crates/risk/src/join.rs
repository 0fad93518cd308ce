//! Joins between `history/` and `devices/` on the columns they share, as an
//! adversary holding both would make them: the history value coarsened the
//! way `devices/` coarsened it — at every profile level a row could have been
//! published at — then matched exactly; a microaggregated number is matched
//! to the nearest published mean among rows that agree on everything else.

use std::collections::HashMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_schema::DataType;
use delink_anonymise::{LEVEL_COLUMN, MICROAGGREGATED_METADATA, STEPS_METADATA};
use delink_policy::{Anonymity, Step, format_number};

use crate::table::{Table, TableColumn};

/// How a column was coarsened, read from its `delink.action`.
#[derive(Debug, Clone, Copy)]
enum Coarsening {
    /// Timestamps truncated to this many microseconds.
    Truncate(i64),
    /// Numbers floored to this grid.
    Grid(f64),
}

impl Coarsening {
    fn of(action: &str) -> Option<Coarsening> {
        let inner = action.strip_prefix("generalise(")?.strip_suffix(')')?;
        if let Some(unit) = inner.strip_prefix("truncate=") {
            let micros = match unit {
                "second" => 1_000_000,
                "minute" => 60_000_000,
                "hour" => 3_600_000_000,
                "day" => 86_400_000_000,
                _ => return None,
            };
            return Some(Coarsening::Truncate(micros));
        }
        inner
            .strip_prefix("grid=")
            .and_then(|grid| grid.parse().ok())
            .map(Coarsening::Grid)
    }

    /// Renders a column coarsened this way, one string per row (empty for
    /// null); `already` says the values are coarsened (the devices side).
    fn render(self, column: &TableColumn, already: bool) -> Result<Vec<Option<String>>> {
        let values = &column.values;
        Ok(match self {
            Coarsening::Truncate(unit) => {
                let micros = arrow_cast::cast(values, &DataType::Int64)?;
                micros
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|m| m.map(|m| (m.div_euclid(unit) * unit).to_string()))
                    .collect()
            }
            Coarsening::Grid(grid) => floats(column)?
                .into_iter()
                .map(|x| {
                    x.map(|x| {
                        if already {
                            format_number(x)
                        } else {
                            format_number((x / grid).floor() * grid)
                        }
                    })
                })
                .collect(),
        })
    }
}

fn floats(column: &TableColumn) -> Result<Vec<Option<f64>>> {
    let floats = arrow_cast::cast(&column.values, &DataType::Float64)?;
    Ok(floats.as_primitive::<Float64Type>().iter().collect())
}

fn optional(text: Vec<String>) -> Vec<Option<String>> {
    text.into_iter()
        .map(|value| (!value.is_empty()).then_some(value))
        .collect()
}

/// A microaggregated column: history values, devices values.
type Numbers = (Vec<Option<f64>>, Vec<Option<f64>>);

/// Under each key without its numbers, the published number tuples and their full keys.
type Means<'k> = HashMap<&'k str, Vec<(Vec<Option<f64>>, &'k str)>>;

/// The keys rows are compared by: each devices row's, and the devices keys
/// each history row could match.
pub(crate) struct JoinKeys {
    /// The shared source fields.
    pub(crate) fields: Vec<String>,
    /// Every devices row's key.
    pub(crate) devices: Vec<String>,
    /// For every history row, the devices keys it matches (at most one per level).
    pub(crate) history: Vec<Vec<String>>,
}

/// One shared column: its parts on both sides and how the history side is coarsened further.
struct Shared {
    history: Vec<Option<String>>,
    devices: Vec<Option<String>>,
    /// The devices column's name (what the steps name).
    name: String,
}

impl JoinKeys {
    pub(crate) fn of(history: &Table, devices: &Table) -> Result<JoinKeys> {
        let parse = |text: &String| Anonymity::parse_steps(text);
        let steps = devices
            .metadata
            .get(STEPS_METADATA)
            .and_then(parse)
            .unwrap_or_default();
        let kind_prefix = format!("{STEPS_METADATA}.kind.");
        let steps_by_kind: HashMap<&str, Vec<Step>> = devices
            .metadata
            .iter()
            .filter_map(|(key, text)| Some((key.strip_prefix(&kind_prefix)?, parse(text)?)))
            .collect();
        let history_kinds = match history.column("kind") {
            Some(column) => optional(column.text()?),
            None => vec![None; history.rows],
        };
        let steps_of = |row: usize| -> &[Step] {
            history_kinds[row]
                .as_deref()
                .and_then(|kind| steps_by_kind.get(kind))
                .unwrap_or(&steps)
        };
        let max_level = steps_by_kind
            .values()
            .map(Vec::len)
            .chain([steps.len()])
            .max()
            .unwrap_or(0);
        let micro_names: Vec<&str> = devices
            .metadata
            .get(MICROAGGREGATED_METADATA)
            .map(|list| list.split(',').filter(|name| !name.is_empty()).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        let mut shared = Vec::new();
        let mut micro: Vec<Numbers> = Vec::new();
        for device_column in devices.columns.iter().filter(|c| !c.is_pseudonym()) {
            let Some(history_column) = history
                .column(&device_column.source)
                .filter(|column| !column.is_pseudonym() && !device_column.source.is_empty())
            else {
                continue;
            };
            fields.push(device_column.source.clone());
            if micro_names.contains(&device_column.name.as_str()) {
                micro.push((floats(history_column)?, floats(device_column)?));
                continue;
            }
            let coarsening = Coarsening::of(&device_column.action)
                .or_else(|| Coarsening::of(&history_column.action));
            let (h, d) = match coarsening {
                Some(coarsening) => (
                    coarsening.render(history_column, false)?,
                    coarsening.render(device_column, true)?,
                ),
                None => (
                    optional(history_column.text()?),
                    optional(device_column.text()?),
                ),
            };
            shared.push(Shared {
                history: h,
                devices: d,
                name: device_column.name.clone(),
            });
        }
        let levels: Vec<String> = match devices.named(LEVEL_COLUMN) {
            Some(column) => column.text()?,
            None => vec!["0".to_owned(); devices.rows],
        };
        let device_parts: Vec<&[Option<String>]> =
            shared.iter().map(|s| s.devices.as_slice()).collect();
        let other_keys: Vec<String> = (0..devices.rows)
            .map(|row| key(&device_parts, row, &levels[row]))
            .collect();
        let device_micro: Vec<&[Option<f64>]> = micro.iter().map(|m| m.1.as_slice()).collect();
        let devices_keys: Vec<String> = (0..devices.rows)
            .map(|row| full_key(&other_keys[row], &device_micro, row))
            .collect();
        // Under each key without its numbers, the published number tuples.
        let mut means: Means<'_> = HashMap::new();
        if !micro.is_empty() {
            for row in 0..devices.rows {
                let tuple: Vec<Option<f64>> = device_micro.iter().map(|c| c[row]).collect();
                let list = means.entry(other_keys[row].as_str()).or_default();
                if !list.iter().any(|(seen, _)| *seen == tuple) {
                    list.push((tuple, devices_keys[row].as_str()));
                }
            }
        }
        let known: std::collections::HashSet<&str> =
            devices_keys.iter().map(String::as_str).collect();
        let history_micro: Vec<&[Option<f64>]> = micro.iter().map(|m| m.0.as_slice()).collect();
        let mut history_parts: Vec<Vec<Option<String>>> =
            shared.iter().map(|s| s.history.clone()).collect();
        let mut candidates = vec![Vec::new(); history.rows];
        for level in 0..=max_level {
            for row in 0..history.rows {
                if level > 0 && level <= steps_of(row).len() {
                    coarsen(&mut history_parts, &shared, &steps_of(row)[level - 1], row);
                }
            }
            let parts: Vec<&[Option<String>]> = history_parts.iter().map(Vec::as_slice).collect();
            let level_text = level.to_string();
            for (row, found) in candidates.iter_mut().enumerate() {
                if level > steps_of(row).len() {
                    continue;
                }
                let other = key(&parts, row, &level_text);
                let full = if micro.is_empty() {
                    Some(other)
                } else {
                    nearest(&means, &other, &history_micro, row)
                };
                if let Some(full) = full.filter(|full| known.contains(full.as_str())) {
                    found.push(full);
                }
            }
        }
        Ok(JoinKeys {
            fields,
            devices: devices_keys,
            history: candidates,
        })
    }
}

/// Takes one coarsening step on one history row's parts.
fn coarsen(parts: &mut [Vec<Option<String>>], shared: &[Shared], step: &Step, row: usize) {
    for (column, values) in shared.iter().zip(parts.iter_mut()) {
        if step.columns.contains(&column.name) {
            values[row] = step.generalisation.apply(values[row].as_deref());
        }
    }
}

fn key(parts: &[&[Option<String>]], row: usize, level: &str) -> String {
    let mut key = level.to_owned();
    for column in parts {
        key.push('\u{1f}');
        key.push_str(column[row].as_deref().unwrap_or("\u{0}"));
    }
    key
}

fn full_key(other: &str, micro: &[&[Option<f64>]], row: usize) -> String {
    let mut key = other.to_owned();
    for column in micro {
        key.push('\u{1f}');
        if let Some(value) = column[row] {
            key.push_str(&value.to_string());
        }
    }
    key
}

/// The published tuple nearest the history row's numbers, under the same other key.
fn nearest(
    means: &Means<'_>,
    other: &str,
    history: &[&[Option<f64>]],
    row: usize,
) -> Option<String> {
    let list = means.get(other)?;
    let distance = |tuple: &[Option<f64>]| -> f64 {
        tuple
            .iter()
            .zip(history)
            .map(|(published, column)| match (published, column[row]) {
                (Some(a), Some(b)) => (a - b).abs(),
                (None, None) => 0.0,
                _ => f64::INFINITY,
            })
            .sum()
    };
    list.iter()
        .map(|(tuple, key)| (distance(tuple), *key))
        .filter(|(d, _)| d.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, key)| key.to_owned())
}

/// How many history rows match exactly one devices row, and how many match any.
pub(crate) fn unique_matches(keys: &JoinKeys) -> (usize, usize) {
    let mut devices: HashMap<&str, usize> = HashMap::new();
    for key in &keys.devices {
        *devices.entry(key).or_insert(0) += 1;
    }
    let mut unique = 0;
    let mut any = 0;
    for found in &keys.history {
        let matches: usize = found
            .iter()
            .map(|key| devices.get(key.as_str()).copied().unwrap_or(0))
            .sum();
        if matches > 0 {
            any += 1;
        }
        if matches == 1 {
            unique += 1;
        }
    }
    (unique, any)
}

/// Aligns each history charger's rows with the devices chargers holding the
/// same keys; a charger is linked when one devices charger holds at least
/// half of its rows and more than twice as many as any other. Returns
/// (history chargers, linked).
pub(crate) fn sequence_links(
    keys: &JoinKeys,
    history_chargers: &[String],
    devices_chargers: &[String],
) -> (usize, usize) {
    // Keys held by many devices chargers tell nothing; skip them to bound the work.
    const MAX_HOLDERS: usize = 64;
    let mut holders: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, charger) in keys.devices.iter().zip(devices_chargers) {
        let list = holders.entry(key).or_default();
        if list.len() <= MAX_HOLDERS && !list.contains(&charger.as_str()) {
            list.push(charger);
        }
    }
    let mut per_charger: HashMap<&str, Vec<&Vec<String>>> = HashMap::new();
    for (found, charger) in keys.history.iter().zip(history_chargers) {
        if !charger.is_empty() {
            per_charger.entry(charger).or_default().push(found);
        }
    }
    let mut linked = 0;
    for rows in per_charger.values() {
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for found in rows {
            let mut voters: Vec<&str> = Vec::new();
            for key in found.iter() {
                if let Some(list) = holders
                    .get(key.as_str())
                    .filter(|list| list.len() <= MAX_HOLDERS)
                {
                    voters.extend(list.iter().copied());
                }
            }
            voters.sort_unstable();
            voters.dedup();
            for charger in voters {
                *votes.entry(charger).or_insert(0) += 1;
            }
        }
        let mut counts: Vec<usize> = votes.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let best = counts.first().copied().unwrap_or(0);
        let second = counts.get(1).copied().unwrap_or(0);
        if best * 2 >= rows.len() && best > 2 * second && best >= 2 {
            linked += 1;
        }
    }
    (per_charger.len(), linked)
}
