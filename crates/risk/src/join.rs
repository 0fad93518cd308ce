//! Joins between `history/` and `devices/` on the columns they share, as an
//! adversary holding both would make them: the history value generalised the
//! way `devices/` generalised it, then matched exactly.

use std::collections::HashMap;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_schema::DataType;

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

    /// Renders a column coarsened this way, one string per row (empty for null).
    fn render(self, column: &TableColumn) -> Result<Vec<String>> {
        let values = &column.values;
        Ok(match self {
            Coarsening::Truncate(unit) => {
                let micros = arrow_cast::cast(values, &DataType::Int64)?;
                micros
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|m| m.map_or(String::new(), |m| (m.div_euclid(unit) * unit).to_string()))
                    .collect()
            }
            Coarsening::Grid(grid) => {
                let floats = arrow_cast::cast(values, &DataType::Float64)?;
                floats
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|x| {
                        x.map_or(String::new(), |x| {
                            format!("{:.6}", (x / grid).floor() * grid)
                        })
                    })
                    .collect()
            }
        })
    }
}

/// The columns the two datasets share, rendered comparably, as one key per row.
pub(crate) struct JoinKeys {
    /// The shared source fields.
    pub(crate) fields: Vec<String>,
    pub(crate) history: Vec<String>,
    pub(crate) devices: Vec<String>,
}

impl JoinKeys {
    pub(crate) fn of(history: &Table, devices: &Table) -> Result<JoinKeys> {
        let mut fields = Vec::new();
        let mut history_parts = Vec::new();
        let mut devices_parts = Vec::new();
        for device_column in devices.columns.iter().filter(|c| !c.is_pseudonym()) {
            let Some(history_column) = history
                .column(&device_column.source)
                .filter(|column| !column.is_pseudonym())
            else {
                continue;
            };
            let coarsening = Coarsening::of(&device_column.action)
                .or_else(|| Coarsening::of(&history_column.action));
            let (h, d) = match coarsening {
                Some(coarsening) => (
                    coarsening.render(history_column)?,
                    coarsening.render(device_column)?,
                ),
                None => (history_column.text()?, device_column.text()?),
            };
            fields.push(device_column.source.clone());
            history_parts.push(h);
            devices_parts.push(d);
        }
        Ok(JoinKeys {
            fields,
            history: join_rows(&history_parts, history.rows),
            devices: join_rows(&devices_parts, devices.rows),
        })
    }
}

fn join_rows(parts: &[Vec<String>], rows: usize) -> Vec<String> {
    (0..rows)
        .map(|row| {
            parts
                .iter()
                .map(|column| column[row].as_str())
                .collect::<Vec<_>>()
                .join("\u{1f}")
        })
        .collect()
}

/// How many history rows match exactly one devices row, and how many match any.
pub(crate) fn unique_matches(keys: &JoinKeys) -> (usize, usize, Vec<Option<usize>>) {
    let mut devices: HashMap<&str, (usize, usize)> = HashMap::new();
    for (row, key) in keys.devices.iter().enumerate() {
        devices.entry(key).or_insert((0, row)).0 += 1;
    }
    let mut unique = 0;
    let mut any = 0;
    let mut matched = Vec::with_capacity(keys.history.len());
    for key in &keys.history {
        match devices.get(key.as_str()) {
            Some((1, row)) => {
                unique += 1;
                any += 1;
                matched.push(Some(*row));
            }
            Some(_) => {
                any += 1;
                matched.push(None);
            }
            None => matched.push(None),
        }
    }
    (unique, any, matched)
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
    let mut per_charger: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, charger) in keys.history.iter().zip(history_chargers) {
        if !charger.is_empty() {
            per_charger.entry(charger).or_default().push(key);
        }
    }
    let mut linked = 0;
    for rows in per_charger.values() {
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for key in rows {
            if let Some(list) = holders.get(key).filter(|list| list.len() <= MAX_HOLDERS) {
                for charger in list {
                    *votes.entry(charger).or_insert(0) += 1;
                }
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
