//! The row order of output files ([`SortKey`]): whose rows they are, then
//! observation time, then the other pseudonyms.
//!
//! Rows are sorted on cheap keys first — the owner's rank among the distinct
//! owners, the time, the next pseudonym's first eight bytes — and compared
//! in full only where those tie, so sorting a day of rows costs about one
//! integer sort. Ties left after every column fall back to the rows'
//! positions (only rows equal in every key column tie).

use std::cmp::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{ArrowError, DataType};
use delink_policy::SortKey;
use rustc_hash::FxHashMap;

mod gathered;

pub use gathered::Gathered;

/// The key-value metadata entry of a file that says how its rows are sorted
/// (as [`describe`] writes it).
pub const SORT_ORDER_METADATA: &str = "delink.sort_order";

/// Names the order of `key` as analysts read it: the columns in order,
/// ascending, nulls first, e.g. `coalesce(account_pseudonym, rfid_pseudonym),
/// observed_at, observation_pseudonym`.
pub fn describe(key: &SortKey) -> String {
    let identity = match key.identity.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("coalesce({})", many.join(", "))),
    };
    identity
        .into_iter()
        .chain(key.time.clone())
        .chain(key.then.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of `batch` in the order of `key`, to be copied out chunk by chunk.
pub fn sort(batch: &RecordBatch, key: &SortKey) -> Result<Gathered, ArrowError> {
    let rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
    let order = order(batch, &rows, key)?;
    Gathered::from_batch(batch, UInt32Array::from(order))
}

/// Positions into `rows` (rows of `batch`), in the order of `key`.
pub fn order(batch: &RecordBatch, rows: &[u32], key: &SortKey) -> Result<Vec<u32>, ArrowError> {
    let identity = key
        .identity
        .iter()
        .map(|name| text(batch, name))
        .collect::<Result<Vec<_>, _>>()?;
    let time = key
        .time
        .as_deref()
        .map(|name| time(batch, name))
        .transpose()?;
    let then = key
        .then
        .iter()
        .map(|name| text(batch, name))
        .collect::<Result<Vec<_>, _>>()?;
    let owner = |row: usize| identity.iter().find_map(|column| value(column, row));
    let time_at = |row: usize| time.as_ref().and_then(|time| time.at(row));

    let owner_ranks = dense_ranks(rows.iter().map(|row| owner(*row as usize)));
    let mut cheap: Vec<Cheap> = rows
        .iter()
        .enumerate()
        .map(|(position, row)| {
            let row = *row as usize;
            Cheap {
                owner: owner_ranks[position],
                time: time_at(row),
                next: then
                    .first()
                    .and_then(|column| value(column, row))
                    .map_or(0, prefix_of),
                position: position as u32,
            }
        })
        .collect();
    // Cheap keys tied: the pseudonyms in full, then each identity column
    // (rows filed under the same owner by account and by RFID).
    let full = |a: usize, b: usize| {
        then.iter()
            .chain(&identity)
            .map(|column| value(column, a).cmp(&value(column, b)))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    cheap.sort_unstable_by(|a, b| {
        (a.owner, a.time, a.next)
            .cmp(&(b.owner, b.time, b.next))
            .then_with(|| {
                full(
                    rows[a.position as usize] as usize,
                    rows[b.position as usize] as usize,
                )
            })
            .then(a.position.cmp(&b.position))
    });
    Ok(cheap.into_iter().map(|entry| entry.position).collect())
}

/// One row's sort keys that compare as integers. The owner's rank and the
/// time order exactly like the values they stand for; the pseudonym prefix
/// may tie where the values differ (strings sharing eight bytes, or null and
/// the empty string): the full comparison settles those.
struct Cheap {
    owner: u32,
    time: Option<i64>,
    next: u64,
    position: u32,
}

/// The rank of each value among the distinct values, in the values' order
/// (equal values, equal ranks; `None` first): one hash per value and one
/// sort of the distinct ones.
pub fn dense_ranks<T: Ord + std::hash::Hash>(values: impl Iterator<Item = T>) -> Vec<u32> {
    let mut distinct: FxHashMap<T, u32> = FxHashMap::default();
    let seen: Vec<u32> = values
        .map(|value| {
            let next = distinct.len() as u32;
            *distinct.entry(value).or_insert(next)
        })
        .collect();
    let mut ordered: Vec<(T, u32)> = distinct.into_iter().collect();
    ordered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut rank_of_seen = vec![0u32; ordered.len()];
    for (rank, (_, seen)) in ordered.iter().enumerate() {
        rank_of_seen[*seen as usize] = rank as u32;
    }
    seen.into_iter()
        .map(|seen| rank_of_seen[seen as usize])
        .collect()
}

/// A string column's value at `row`, `None` when null.
fn value(column: &StringArray, row: usize) -> Option<&str> {
    column.is_valid(row).then(|| column.value(row))
}

/// A string's first eight bytes as a number that orders like the string
/// (shorter strings padded with zeros: equal numbers need the full comparison).
fn prefix_of(value: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let head = &value.as_bytes()[..value.len().min(8)];
    bytes[..head.len()].copy_from_slice(head);
    u64::from_be_bytes(bytes)
}

/// A time column: microseconds since the epoch, or plain integers.
enum Time<'b> {
    Micros(&'b PrimitiveArray<TimestampMicrosecondType>),
    Integers(&'b PrimitiveArray<Int64Type>),
}

impl Time<'_> {
    fn at(&self, row: usize) -> Option<i64> {
        match self {
            Time::Micros(array) => array.is_valid(row).then(|| array.value(row)),
            Time::Integers(array) => array.is_valid(row).then(|| array.value(row)),
        }
    }
}

fn time<'b>(batch: &'b RecordBatch, name: &str) -> Result<Time<'b>, ArrowError> {
    let array = column(batch, name)?;
    array
        .as_primitive_opt::<TimestampMicrosecondType>()
        .map(Time::Micros)
        .or_else(|| array.as_primitive_opt::<Int64Type>().map(Time::Integers))
        .ok_or_else(|| unsortable(name, array.data_type()))
}

fn text<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray, ArrowError> {
    let array = column(batch, name)?;
    array
        .as_string_opt::<i32>()
        .ok_or_else(|| unsortable(name, array.data_type()))
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("no column `{name}` to sort by")))
}

fn unsortable(name: &str, data_type: &DataType) -> ArrowError {
    ArrowError::SchemaError(format!(
        "column `{name}` ({data_type}) cannot be a sort key"
    ))
}

#[cfg(test)]
mod tests;
