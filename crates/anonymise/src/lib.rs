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

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt8Array, UInt32Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use delink_policy::{Anonymity, Step};

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
/// The rows come out ordered by their pseudonyms (charger first), never in
/// input order: `history/` keeps input order, so a shared order would line
/// the two datasets up row by row.
pub fn anonymise(
    batch: &RecordBatch,
    anonymity: &Anonymity,
    published: &SchemaRef,
) -> Result<(RecordBatch, Outcome), ArrowError> {
    let (rows, outcome) = anonymise_by_kind(batch, anonymity, published)?;
    Ok((
        order_by_pseudonyms(&rows, &anonymity.charger_column)?,
        outcome,
    ))
}

fn anonymise_by_kind(
    batch: &RecordBatch,
    anonymity: &Anonymity,
    published: &SchemaRef,
) -> Result<(RecordBatch, Outcome), ArrowError> {
    let Some(kind_column) = anonymity
        .kind_column
        .as_deref()
        .filter(|_| !anonymity.steps_by_kind.is_empty())
    else {
        return anonymise_with(batch, anonymity, &anonymity.steps, published);
    };
    let mut by_kind: BTreeMap<Option<String>, Vec<u32>> = BTreeMap::new();
    for (row, kind) in columns::text(column(batch, kind_column)?)?
        .into_iter()
        .enumerate()
    {
        by_kind.entry(kind).or_default().push(row as u32);
    }
    let mut parts = Vec::with_capacity(by_kind.len());
    let mut outcome = Outcome::default();
    for (kind, rows) in by_kind {
        let rows = take_record_batch(batch, &UInt32Array::from(rows))?;
        let steps = anonymity.steps_for(kind.as_deref());
        let (part, part_outcome) = anonymise_with(&rows, anonymity, steps, published)?;
        outcome.add(&part_outcome);
        parts.push(part);
    }
    Ok((concat_batches(published, &parts)?, outcome))
}

fn anonymise_with(
    batch: &RecordBatch,
    anonymity: &Anonymity,
    steps: &[Step],
    published: &SchemaRef,
) -> Result<(RecordBatch, Outcome), ArrowError> {
    let chargers = charger_codes(column(batch, &anonymity.charger_column)?)?;
    let mut profile = profile::Profile::read(batch, anonymity, steps)?;
    let (levels, rows_below_k) = profile.assign_levels(&chargers, steps.len(), anonymity.k);
    let (micro, numbers_withheld) = micro::microaggregate(batch, anonymity, &profile, &chargers)?;
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
    for (index, field) in batch.schema().fields().iter().enumerate() {
        let original = batch.column(index);
        let array = match (
            profile.rebuilt(field.name(), original)?,
            micro.get(field.name()),
        ) {
            (Some(rebuilt), _) => rebuilt,
            (None, Some(aggregated)) => aggregated.clone(),
            (None, None) => original.clone(),
        };
        arrays.push(array);
    }
    let mut rows_by_level = vec![0u64; steps.len() + 1];
    for level in &levels {
        rows_by_level[usize::from(*level)] += 1;
    }
    arrays.push(Arc::new(UInt8Array::from(levels)));
    let outcome = Outcome {
        rows_by_level,
        rows_below_k,
        numbers_withheld,
    };
    Ok((RecordBatch::try_new(published.clone(), arrays)?, outcome))
}

/// Sorts rows by the charger pseudonym, then by every other string pseudonym
/// column (keyed hashes: an order that tells nothing of the input's).
fn order_by_pseudonyms(
    batch: &RecordBatch,
    charger_column: &str,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let mut keys: Vec<&StringArray> = Vec::new();
    let charger = column(batch, charger_column)?;
    keys.extend(charger.as_string_opt::<i32>());
    for (index, field) in schema.fields().iter().enumerate() {
        let pseudonym = field
            .metadata()
            .get("delink.action")
            .is_some_and(|action| action.starts_with("pseudonymise"));
        if pseudonym && field.name() != charger_column {
            keys.extend(batch.column(index).as_string_opt::<i32>());
        }
    }
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|a, b| {
        keys.iter()
            .map(|key| {
                let value = |row: u32| key.is_valid(row as usize).then(|| key.value(row as usize));
                value(*a).cmp(&value(*b))
            })
            .find(|order| order.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    take_record_batch(batch, &UInt32Array::from(order))
}

/// Each row's charger as a small number (equal pseudonyms, equal numbers).
fn charger_codes(array: &ArrayRef) -> Result<Vec<u32>, ArrowError> {
    let mut index: HashMap<Option<String>, u32> = HashMap::new();
    Ok(columns::text(array)?
        .into_iter()
        .map(|charger| {
            let next = index.len() as u32;
            *index.entry(charger).or_insert(next)
        })
        .collect())
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("no column `{name}` to anonymise")))
}

#[cfg(test)]
mod tests;
