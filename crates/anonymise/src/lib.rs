//! k-anonymity for de-linked device rows, applied to one day's rows as a file
//! is sealed.
//!
//! - **Profiles:** a row's profile is every published column except
//!   pseudonyms and microaggregated numbers (the day, the kind, the location
//!   cell, the firmware …: whatever an adversary could join on). The policy's
//!   steps coarsen it (a coarser grid, fewer version segments, a value
//!   withheld); each row is published at the finest level at which its
//!   profile is shared by `k` distinct chargers, found top-down (see
//!   `profile`), and records in `profile_level` how many steps it took.
//!   Every published (level, profile) is shared by `k` chargers unless even
//!   every step leaves fewer (counted as below k).
//! - **Numbers:** microaggregated columns are replaced, within rows that agree
//!   on every other published column, by the mean of a cluster of at least
//!   `k` chargers with neighbouring values: no value singles out a row, and
//!   sums over any grouping of published columns stay exact. Numbers that
//!   cannot find `k` such chargers are withheld (null) and counted by column.
//!
//! A group spans one file (one day of one segment); the same profile across
//! files only has more chargers, so the guarantee holds for the whole day.

mod columns;
mod micro;
mod profile;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt8Array, UInt32Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat;
use arrow_select::take::take;
use delink_policy::{Anonymity, SortKey, Step};
use delink_sort::Gathered;

/// The column holding how many coarsening steps a row's profile took.
pub const LEVEL_COLUMN: &str = "profile_level";

/// Key of the file metadata entry describing the steps (see
/// [`Anonymity::describe_steps`]); steps for one kind are under this key
/// followed by `.kind.<kind>`.
pub const STEPS_METADATA: &str = "delink.anonymity";

/// The metadata entries describing every step list of `anonymity`.
pub fn steps_metadata(anonymity: &Anonymity) -> Vec<(String, String)> {
    std::iter::once((
        STEPS_METADATA.to_owned(),
        Anonymity::describe_steps(&anonymity.steps),
    ))
    .chain(anonymity.steps_by_kind.iter().map(|(kind, steps)| {
        (
            format!("{STEPS_METADATA}.kind.{kind}"),
            Anonymity::describe_steps(steps),
        )
    }))
    .collect()
}

/// Key of the file metadata entry listing the microaggregated columns, comma-separated.
pub const MICROAGGREGATED_METADATA: &str = "delink.microaggregated";

/// The schema files are written with: the built rows' schema, plus
/// [`LEVEL_COLUMN`] when the dataset is anonymised.
pub fn published_schema(schema: &SchemaRef, anonymity: Option<&Anonymity>) -> SchemaRef {
    let Some(anonymity) = anonymity else {
        return schema.clone();
    };
    let level = Field::new(LEVEL_COLUMN, DataType::UInt8, false).with_metadata(HashMap::from([
        ("delink.source".to_owned(), String::new()),
        (
            "delink.action".to_owned(),
            format!("anonymity(k={})", anonymity.k),
        ),
    ]));
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(level));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// What anonymising one batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Rows published at each level (index = steps taken).
    pub rows_by_level: Vec<u64>,
    /// Rows whose profile has fewer than k chargers even after every step.
    pub rows_below_k: u64,
    /// Numbers withheld for want of k chargers to share a mean with, by column.
    pub numbers_withheld: BTreeMap<String, u64>,
}

impl Outcome {
    /// Adds another batch's outcome.
    pub fn add(&mut self, other: &Outcome) {
        if self.rows_by_level.len() < other.rows_by_level.len() {
            self.rows_by_level.resize(other.rows_by_level.len(), 0);
        }
        for (total, rows) in self.rows_by_level.iter_mut().zip(&other.rows_by_level) {
            *total += rows;
        }
        self.rows_below_k += other.rows_below_k;
        for (column, count) in &other.numbers_withheld {
            *self.numbers_withheld.entry(column.clone()).or_default() += count;
        }
    }
}

/// Anonymises one day's rows (built with `batch`'s schema) into `published`
/// (from [`published_schema`]). With steps by kind, each kind's rows are
/// anonymised apart (the kind is part of every profile).
///
/// The rows come out in the order of `order` (the dataset's [`SortKey`]:
/// charger pseudonym, then the other pseudonyms), never in input order, to be
/// copied out a chunk at a time.
pub fn anonymise(
    batch: &RecordBatch,
    anonymity: &Anonymity,
    published: &SchemaRef,
    order: &SortKey,
) -> Result<(Gathered, Outcome), ArrowError> {
    let groups = groups_by_kind(batch, anonymity)?;
    let mut outcome = Outcome::default();
    let mut parts = Vec::with_capacity(groups.len());
    for (steps, rows) in &groups {
        let part = anonymise_rows(batch, rows, anonymity, steps)?;
        outcome.add(&part.outcome);
        parts.push(part);
    }
    // Rows in the order of the groups, then by pseudonyms.
    let grouped: Vec<u32> = groups
        .iter()
        .flat_map(|(_, rows)| rows.iter().copied())
        .collect();
    let order = delink_sort::order(batch, &grouped, order)?;
    let source_rows = UInt32Array::from_iter_values(order.iter().map(|at| grouped[*at as usize]));
    let order = UInt32Array::from(order);
    let mut columns = Vec::with_capacity(batch.num_columns() + 1);
    for (index, field) in batch.schema().fields().iter().enumerate() {
        let original = batch.column(index);
        let replaced = parts
            .iter()
            .any(|part| part.replaced.contains_key(field.name()));
        columns.push(if replaced {
            // The new values, in the order of the groups.
            let mut pieces = Vec::with_capacity(parts.len());
            for (part, (_, rows)) in parts.iter().zip(&groups) {
                pieces.push(match part.replaced.get(field.name()) {
                    Some(array) => array.clone(),
                    None => take(original.as_ref(), &UInt32Array::from(rows.clone()), None)?,
                });
            }
            let pieces: Vec<&dyn Array> = pieces.iter().map(AsRef::as_ref).collect();
            (concat(&pieces)?, order.clone())
        } else {
            (original.clone(), source_rows.clone())
        });
    }
    let levels: Vec<u8> = parts
        .iter()
        .flat_map(|part| part.levels.iter().copied())
        .collect();
    let levels: ArrayRef = Arc::new(UInt8Array::from(levels));
    columns.push((levels, order));
    Ok((Gathered::new(published.clone(), columns)?, outcome))
}

/// Rows anonymised together, with the steps they take.
type Group<'a> = (&'a [Step], Vec<u32>);

/// The rows anonymised together, with their steps: each kind's apart (kinds
/// in order) when steps depend on the kind, else all of them.
fn groups_by_kind<'a>(
    batch: &RecordBatch,
    anonymity: &'a Anonymity,
) -> Result<Vec<Group<'a>>, ArrowError> {
    let all: Vec<u32> = (0..batch.num_rows() as u32).collect();
    let Some(kind_column) = anonymity
        .kind_column
        .as_deref()
        .filter(|_| !anonymity.steps_by_kind.is_empty())
    else {
        return Ok(vec![(&anonymity.steps, all)]);
    };
    let (kinds, codes) = columns::coded(column(batch, kind_column)?, &all)?;
    let mut rows_by_code: Vec<Vec<u32>> = vec![Vec::new(); kinds.values.len()];
    for (row, code) in codes.into_iter().enumerate() {
        rows_by_code[code as usize].push(row as u32);
    }
    let mut by_kind: Vec<(Option<String>, Vec<u32>)> =
        kinds.values.into_iter().zip(rows_by_code).collect();
    by_kind.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(by_kind
        .into_iter()
        .map(|(kind, rows)| (anonymity.steps_for(kind.as_deref()), rows))
        .collect())
}

/// What anonymising one group of rows made of them.
struct Part {
    /// Each row's level, in the group's order.
    levels: Vec<u8>,
    /// The columns the group's rows take new values in (in the group's order).
    replaced: HashMap<String, ArrayRef>,
    outcome: Outcome,
}

fn anonymise_rows(
    batch: &RecordBatch,
    rows: &[u32],
    anonymity: &Anonymity,
    steps: &[Step],
) -> Result<Part, ArrowError> {
    let chargers = charger_codes(column(batch, &anonymity.charger_column)?, rows)?;
    let mut profile = profile::Profile::read(batch, rows, anonymity, steps)?;
    let (levels, rows_below_k) = profile.assign_levels(&chargers, steps.len(), anonymity.k);
    let (mut replaced, numbers_withheld) =
        micro::microaggregate(batch, rows, anonymity, &profile, &chargers)?;
    for (index, field) in batch.schema().fields().iter().enumerate() {
        if let Some(rebuilt) = profile.rebuilt(field.name(), batch.column(index), rows)? {
            replaced.insert(field.name().clone(), rebuilt);
        }
    }
    let mut rows_by_level = vec![0u64; steps.len() + 1];
    for level in &levels {
        rows_by_level[usize::from(*level)] += 1;
    }
    Ok(Part {
        levels,
        replaced,
        outcome: Outcome {
            rows_by_level,
            rows_below_k,
            numbers_withheld,
        },
    })
}

/// Whether a column holds pseudonyms (keyed hashes).
fn is_pseudonym(field: &Field) -> bool {
    field
        .metadata()
        .get("delink.action")
        .is_some_and(|action| action.starts_with("pseudonymise"))
}

/// Each of `rows`' charger as a small number (equal pseudonyms, equal numbers).
fn charger_codes(array: &ArrayRef, rows: &[u32]) -> Result<Vec<u32>, ArrowError> {
    Ok(columns::coded(array, rows)?.1)
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("no column `{name}` to anonymise")))
}

#[cfg(test)]
mod tests;
