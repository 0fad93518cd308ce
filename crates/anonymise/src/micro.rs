//! Microaggregation: numbers replaced by the mean of a cluster of at least
//! `k` chargers whose rows agree on every other published column; numbers
//! that cannot find `k` such chargers are withheld.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use delink_policy::Anonymity;

use crate::profile::Profile;

/// The microaggregated columns by name, and how many rows had their numbers
/// withheld for want of `k` chargers.
pub(crate) fn microaggregate(
    batch: &RecordBatch,
    anonymity: &Anonymity,
    profile: &Profile,
    levels: &[u8],
    chargers: &[&str],
) -> Result<(HashMap<String, ArrayRef>, u64), ArrowError> {
    if anonymity.microaggregate.is_empty() {
        return Ok((HashMap::new(), 0));
    }
    let numbers: Vec<Vec<Option<f64>>> = anonymity
        .microaggregate
        .iter()
        .map(|name| as_floats(crate::column(batch, name)?))
        .collect::<Result<_, _>>()?;
    let subgroups = subgroups(profile, levels, &numbers);
    let mut aggregated = numbers.clone();
    let mut below_k = 0;
    for mut rows in subgroups.into_values() {
        // Neighbouring values share a mean; the first column orders the rows.
        let first = numbers.iter().position(|column| column[rows[0]].is_some());
        if let Some(first) = first {
            rows.sort_by(|a, b| {
                let (a, b) = (numbers[first][*a], numbers[first][*b]);
                a.unwrap_or(0.0).total_cmp(&b.unwrap_or(0.0))
            });
        }
        for cluster in clusters(&rows, chargers, anonymity.k) {
            if cluster_chargers(cluster, chargers) < anonymity.k {
                // Too few chargers to share a mean with: the numbers are withheld.
                below_k += cluster.len() as u64;
                for out in &mut aggregated {
                    for row in cluster {
                        out[*row] = None;
                    }
                }
                continue;
            }
            for (column, out) in numbers.iter().zip(&mut aggregated) {
                let values: Vec<f64> = cluster.iter().filter_map(|row| column[*row]).collect();
                if values.is_empty() {
                    continue;
                }
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                for row in cluster {
                    out[*row] = Some(mean);
                }
            }
        }
    }
    let mut columns = HashMap::new();
    for (name, values) in anonymity.microaggregate.iter().zip(aggregated) {
        let original = crate::column(batch, name)?;
        let array: ArrayRef = match original.data_type() {
            DataType::Int64 => Arc::new(
                values
                    .iter()
                    .map(|v| v.map(|v| v.round() as i64))
                    .collect::<Int64Array>(),
            ),
            _ => Arc::new(values.into_iter().collect::<Float64Array>()),
        };
        columns.insert(name.clone(), array);
    }
    Ok((columns, below_k))
}

/// Rows with a number, grouped by level, profile and which numbers they hold.
fn subgroups(
    profile: &Profile,
    levels: &[u8],
    numbers: &[Vec<Option<f64>>],
) -> HashMap<String, Vec<usize>> {
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (row, level) in levels.iter().enumerate() {
        if numbers.iter().all(|column| column[row].is_none()) {
            continue;
        }
        let mut key = level.to_string();
        for column in numbers {
            key.push(if column[row].is_some() { '1' } else { '0' });
        }
        key.push('\u{1f}');
        profile.key(row, &mut key);
        groups.entry(key).or_default().push(row);
    }
    groups
}

/// Cuts ordered rows into runs of at least `k` distinct chargers; a short
/// tail joins the last run (a subgroup of fewer chargers is one cluster).
fn clusters<'r>(rows: &'r [usize], chargers: &[&str], k: usize) -> Vec<&'r [usize]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen = HashSet::new();
    for (position, row) in rows.iter().enumerate() {
        seen.insert(chargers[*row]);
        if seen.len() >= k {
            runs.push(&rows[start..=position]);
            start = position + 1;
            seen.clear();
        }
    }
    if start < rows.len() {
        match runs.pop() {
            Some(last) => runs.push(&rows[start - last.len()..]),
            None => runs.push(&rows[start..]),
        }
    }
    runs
}

fn cluster_chargers(cluster: &[usize], chargers: &[&str]) -> usize {
    cluster
        .iter()
        .map(|row| chargers[*row])
        .collect::<HashSet<_>>()
        .len()
}

fn as_floats(array: &ArrayRef) -> Result<Vec<Option<f64>>, ArrowError> {
    Ok(match array.data_type() {
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(|v| v as f64))
            .collect(),
        DataType::Float64 => array.as_primitive::<Float64Type>().iter().collect(),
        other => {
            return Err(ArrowError::SchemaError(format!(
                "cannot microaggregate a {other} column"
            )));
        }
    })
}
