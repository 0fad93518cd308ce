//! Microaggregation: numbers replaced by the mean of a cluster of at least
//! `k` chargers whose rows agree on every other published column; numbers
//! that cannot find `k` such chargers are withheld.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use delink_policy::Anonymity;
use rustc_hash::FxHashSet;

use crate::profile::Profile;

/// Microaggregated columns by name, and per column the numbers withheld.
type Aggregated = (HashMap<String, ArrayRef>, BTreeMap<String, u64>);

/// Rows holding the same numbers (as bits) with the same published profile (level, rank).
type Subgroup = (u64, (u8, u32));

/// The microaggregated columns by name, and per column how many numbers were
/// withheld for want of `k` chargers.
pub(crate) fn microaggregate(
    batch: &RecordBatch,
    rows: &[u32],
    anonymity: &Anonymity,
    profile: &Profile,
    chargers: &[u32],
) -> Result<Aggregated, ArrowError> {
    let mut withheld = BTreeMap::new();
    if anonymity.microaggregate.is_empty() {
        return Ok((HashMap::new(), withheld));
    }
    let numbers: Vec<Vec<Option<f64>>> = anonymity
        .microaggregate
        .iter()
        .map(|name| as_floats(crate::column(batch, name)?, rows))
        .collect::<Result<_, _>>()?;
    // Which numbers a row holds, as bits; rows holding none are left alone.
    let signatures: Vec<u64> = (0..rows.len())
        .map(|row| {
            numbers
                .iter()
                .enumerate()
                .filter(|(_, column)| column[row].is_some())
                .fold(0, |bits, (index, _)| bits | 1 << (index % 64))
        })
        .collect();
    let first = |row: usize| numbers.iter().find_map(|column| column[row]).unwrap_or(0.0);
    let subgroup = |row: usize| (signatures[row], profile.published_rank(row));
    let mut keyed: Vec<(Subgroup, f64, usize)> = (0..rows.len())
        .filter(|row| signatures[*row] != 0)
        .map(|row| (subgroup(row), first(row), row))
        .collect();
    // Subgroups together, and within each, neighbouring values together.
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    let rows_in_order: Vec<usize> = keyed.iter().map(|(_, _, row)| *row).collect();
    let same_subgroup = |a: usize, b: usize| subgroup(a) == subgroup(b);
    let mut aggregated = numbers.clone();
    for subgroup in rows_in_order.chunk_by(|a, b| same_subgroup(*a, *b)) {
        for cluster in clusters(subgroup, chargers, anonymity.k) {
            if cluster_chargers(cluster, chargers) < anonymity.k {
                // Too few chargers to share a mean with: the numbers are withheld.
                for ((name, column), out) in anonymity
                    .microaggregate
                    .iter()
                    .zip(&numbers)
                    .zip(&mut aggregated)
                {
                    for row in cluster {
                        if column[*row].is_some() {
                            *withheld.entry(name.clone()).or_default() += 1;
                        }
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
    Ok((columns, withheld))
}

/// Cuts ordered rows into runs of at least `k` distinct chargers; a short
/// tail joins the last run (a subgroup of fewer chargers is one cluster).
fn clusters<'r>(rows: &'r [usize], chargers: &[u32], k: usize) -> Vec<&'r [usize]> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut seen = FxHashSet::default();
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

fn cluster_chargers(cluster: &[usize], chargers: &[u32]) -> usize {
    cluster
        .iter()
        .map(|row| chargers[*row])
        .collect::<FxHashSet<_>>()
        .len()
}

/// `rows` of a numeric column as floats.
fn as_floats(array: &ArrayRef, rows: &[u32]) -> Result<Vec<Option<f64>>, ArrowError> {
    let valid = |row: usize| array.is_valid(row);
    Ok(match array.data_type() {
        DataType::Int64 => {
            let values = array.as_primitive::<Int64Type>();
            rows.iter()
                .map(|row| valid(*row as usize).then(|| values.value(*row as usize) as f64))
                .collect()
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            rows.iter()
                .map(|row| valid(*row as usize).then(|| values.value(*row as usize)))
                .collect()
        }
        other => {
            return Err(ArrowError::SchemaError(format!(
                "cannot microaggregate a {other} column"
            )));
        }
    })
}
