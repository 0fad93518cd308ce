//! Microaggregation: numbers replaced by the mean of a cluster of at least
//! `k` chargers whose rows agree on every other published column; numbers
//! that cannot find `k` such chargers are withheld.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{ArrowError, DataType};
use delink_policy::Anonymity;

use crate::profile::Profile;

/// Microaggregated columns by name, and per column the numbers withheld.
type Aggregated = (HashMap<String, ArrayRef>, BTreeMap<String, u64>);

/// The microaggregated columns by name, and per column how many numbers were
/// withheld for want of `k` chargers.
pub(crate) fn microaggregate(
    batch: &RecordBatch,
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
        .map(|name| as_floats(crate::column(batch, name)?))
        .collect::<Result<_, _>>()?;
    // Which numbers a row holds, as bits; rows holding none are left alone.
    let signature = |row: usize| -> u64 {
        numbers
            .iter()
            .enumerate()
            .filter(|(_, column)| column[row].is_some())
            .fold(0, |bits, (index, _)| bits | 1 << (index % 64))
    };
    let first = |row: usize| numbers.iter().find_map(|column| column[row]).unwrap_or(0.0);
    let mut rows: Vec<usize> = (0..batch.num_rows())
        .filter(|row| signature(*row) != 0)
        .collect();
    let same_subgroup =
        |a: usize, b: usize| signature(a) == signature(b) && profile.compare(a, b).is_eq();
    // Subgroups together, and within each, neighbouring values together.
    rows.sort_unstable_by(|a, b| {
        signature(*a)
            .cmp(&signature(*b))
            .then_with(|| profile.compare(*a, *b))
            .then_with(|| first(*a).total_cmp(&first(*b)))
            .then(a.cmp(b))
    });
    let mut aggregated = numbers.clone();
    for subgroup in rows.chunk_by(|a, b| same_subgroup(*a, *b)) {
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

fn cluster_chargers(cluster: &[usize], chargers: &[u32]) -> usize {
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
