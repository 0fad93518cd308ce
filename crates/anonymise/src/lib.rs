//! k-anonymity for de-linked device rows, applied to one day's rows as a file
//! is sealed.
//!
//! - **Profiles:** rows are grouped by every published column except
//!   pseudonyms and microaggregated numbers (so by the day, the kind, the
//!   location cell, the firmware …: whatever an adversary could join on). A
//!   group with at least `k` distinct chargers is published as it is; the
//!   rest take the next coarsening step (a coarser grid, fewer version
//!   segments, a value withheld) on the columns it names, and are grouped again.
//!   Each row records in `profile_level` how many steps it took. Steps only
//!   ever coarsen, and a group is formed only among rows at the same level,
//!   so every published profile is shared by `k` chargers unless every step
//!   was taken (counted as below k).
//! - **Numbers:** microaggregated columns are replaced, within rows that agree
//!   on every other published column, by the mean of a cluster of at least
//!   `k` chargers with neighbouring values: no value singles out a row, and
//!   sums over any grouping of published columns stay exact. Numbers that
//!   cannot find `k` such chargers are withheld (null) and counted.
//!
//! A group spans one file (one day of one segment); the same profile across
//! files only has more chargers, so the guarantee holds for the whole day.

mod columns;
mod micro;
mod profile;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt8Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use delink_policy::Anonymity;

/// The column holding how many coarsening steps a row's profile took.
pub const LEVEL_COLUMN: &str = "profile_level";

/// Key of the file metadata entry describing the steps (see
/// [`Anonymity::describe_steps`]).
pub const STEPS_METADATA: &str = "delink.anonymity";

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
    /// Rows whose microaggregated numbers were withheld for want of k chargers to share a mean with.
    pub numbers_below_k: u64,
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
        self.numbers_below_k += other.numbers_below_k;
    }
}

/// Anonymises one day's rows (built with `batch`'s schema) into `published`
/// (from [`published_schema`]).
pub fn anonymise(
    batch: &RecordBatch,
    anonymity: &Anonymity,
    published: &SchemaRef,
) -> Result<(RecordBatch, Outcome), ArrowError> {
    let chargers = charger_codes(column(batch, &anonymity.charger_column)?)?;
    let mut profile = profile::Profile::read(batch, anonymity)?;
    let levels = profile.assign_levels(&chargers, anonymity);
    let (micro, numbers_below_k) =
        micro::microaggregate(batch, anonymity, &profile, &levels.levels, &chargers)?;
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
    let mut rows_by_level = vec![0u64; anonymity.steps.len() + 1];
    for level in &levels.levels {
        rows_by_level[usize::from(*level)] += 1;
    }
    arrays.push(Arc::new(UInt8Array::from(levels.levels)));
    let outcome = Outcome {
        rows_by_level,
        rows_below_k: levels.below_k,
        numbers_below_k,
    };
    Ok((RecordBatch::try_new(published.clone(), arrays)?, outcome))
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
