//! Levels: each row's profile — every published column but pseudonyms and
//! microaggregated numbers — coarsened step by step until `k` chargers share it.
//!
//! Columns are dictionary-coded: a step coarsens each distinct value once,
//! and rows are grouped by sorting their codes.

use std::cmp::Ordering;
use std::collections::HashMap;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use delink_policy::{Anonymity, Generalisation};

use crate::columns;

/// One profile column: its distinct values and each row's code.
struct Coded {
    name: String,
    values: Vec<Option<String>>,
    codes: Vec<u32>,
    changed: bool,
}

impl Coded {
    fn new(name: String, text: Vec<Option<String>>) -> Coded {
        let mut index: HashMap<Option<String>, u32> = HashMap::new();
        let mut values = Vec::new();
        let codes = text
            .into_iter()
            .map(|value| {
                *index.entry(value).or_insert_with_key(|value| {
                    values.push(value.clone());
                    (values.len() - 1) as u32
                })
            })
            .collect();
        Coded {
            name,
            values,
            codes,
            changed: false,
        }
    }

    /// Coarsens the value of `rows`, each distinct value once.
    fn coarsen(&mut self, generalisation: Generalisation, rows: &[usize]) {
        let mut index: HashMap<Option<String>, u32> = self
            .values
            .iter()
            .enumerate()
            .map(|(code, value)| (value.clone(), code as u32))
            .collect();
        let mapping: Vec<u32> = (0..self.values.len())
            .map(|code| {
                let coarser = generalisation.apply(self.values[code].as_deref());
                *index.entry(coarser).or_insert_with_key(|value| {
                    self.values.push(value.clone());
                    (self.values.len() - 1) as u32
                })
            })
            .collect();
        for &row in rows {
            let coarser = mapping[self.codes[row] as usize];
            if coarser != self.codes[row] {
                self.codes[row] = coarser;
                self.changed = true;
            }
        }
    }
}

/// The profile columns of a batch, coarsened as rows take steps.
pub(crate) struct Profile {
    columns: Vec<Coded>,
}

/// The level of every row, and how many rows never reached k.
pub(crate) struct Levels {
    pub(crate) levels: Vec<u8>,
    pub(crate) below_k: u64,
}

impl Profile {
    pub(crate) fn read(batch: &RecordBatch, anonymity: &Anonymity) -> Result<Profile, ArrowError> {
        let mut columns = Vec::new();
        for (index, field) in batch.schema().fields().iter().enumerate() {
            let pseudonym = field
                .metadata()
                .get("delink.action")
                .is_some_and(|action| action.starts_with("pseudonymise"));
            if pseudonym || anonymity.microaggregate.contains(field.name()) {
                continue;
            }
            let text = columns::text(batch.column(index))?;
            columns.push(Coded::new(field.name().clone(), text));
        }
        Ok(Profile { columns })
    }

    /// Orders two rows by their profiles.
    pub(crate) fn compare(&self, a: usize, b: usize) -> Ordering {
        self.columns
            .iter()
            .map(|column| column.codes[a].cmp(&column.codes[b]))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// Takes steps for the rows whose profile lacks `k` chargers, until each
    /// has them or every step is taken.
    pub(crate) fn assign_levels(&mut self, chargers: &[u32], anonymity: &Anonymity) -> Levels {
        let rows = chargers.len();
        let mut levels = vec![0u8; rows];
        let mut pending: Vec<usize> = (0..rows).collect();
        let mut below_k = 0;
        for level in 0..=anonymity.steps.len() {
            if level > 0 {
                let step = &anonymity.steps[level - 1];
                for column in self
                    .columns
                    .iter_mut()
                    .filter(|c| step.columns.contains(&c.name))
                {
                    column.coarsen(step.generalisation, &pending);
                }
            }
            let last = level == anonymity.steps.len();
            pending.sort_unstable_by(|a, b| {
                self.compare(*a, *b).then(chargers[*a].cmp(&chargers[*b]))
            });
            let mut next = Vec::new();
            for group in pending.chunk_by(|a, b| self.compare(*a, *b).is_eq()) {
                let members = distinct_sorted(group.iter().map(|row| chargers[*row]));
                if members >= anonymity.k || last {
                    if members < anonymity.k {
                        below_k += group.len() as u64;
                    }
                    for &row in group {
                        levels[row] = level as u8;
                    }
                } else {
                    next.extend_from_slice(group);
                }
            }
            pending = next;
            if pending.is_empty() {
                break;
            }
        }
        Levels { levels, below_k }
    }

    /// The column rebuilt from its coarsened values, when any row changed.
    pub(crate) fn rebuilt(
        &self,
        name: &str,
        original: &ArrayRef,
    ) -> Result<Option<ArrayRef>, ArrowError> {
        match self.columns.iter().find(|column| column.name == name) {
            Some(column) if column.changed => {
                columns::rebuild(original, &column.values, &column.codes).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// Counts distinct values in a sequence where equal values are adjacent.
pub(crate) fn distinct_sorted(values: impl Iterator<Item = u32>) -> usize {
    let mut count = 0;
    let mut last = None;
    for value in values {
        if last != Some(value) {
            count += 1;
            last = Some(value);
        }
    }
    count
}
