//! Levels: each row's profile — every published column but pseudonyms and
//! microaggregated numbers — coarsened step by step until `k` chargers share it.

use std::collections::{HashMap, HashSet};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use delink_policy::Anonymity;

use crate::columns;

/// The profile columns of a batch, as text, coarsened as rows take steps.
pub(crate) struct Profile {
    names: Vec<String>,
    parts: Vec<Vec<Option<String>>>,
    /// Whether a step changed the column for any row.
    changed: Vec<bool>,
}

/// The level of every row, and how many rows never reached k.
pub(crate) struct Levels {
    pub(crate) levels: Vec<u8>,
    pub(crate) below_k: u64,
}

impl Profile {
    pub(crate) fn read(batch: &RecordBatch, anonymity: &Anonymity) -> Result<Profile, ArrowError> {
        let mut names = Vec::new();
        let mut parts = Vec::new();
        for (index, field) in batch.schema().fields().iter().enumerate() {
            let pseudonym = field
                .metadata()
                .get("delink.action")
                .is_some_and(|action| action.starts_with("pseudonymise"));
            if pseudonym || anonymity.microaggregate.contains(field.name()) {
                continue;
            }
            names.push(field.name().clone());
            parts.push(columns::text(batch.column(index))?);
        }
        Ok(Profile {
            changed: vec![false; names.len()],
            names,
            parts,
        })
    }

    /// The row's profile as one comparable key.
    pub(crate) fn key(&self, row: usize, key: &mut String) {
        for part in &self.parts {
            match &part[row] {
                Some(value) => key.push_str(value),
                None => key.push('\u{0}'),
            }
            key.push('\u{1f}');
        }
    }

    /// Takes steps for the rows whose profile lacks `k` chargers, until each
    /// has them or every step is taken.
    pub(crate) fn assign_levels(&mut self, chargers: &[&str], anonymity: &Anonymity) -> Levels {
        let rows = chargers.len();
        let mut levels = vec![0u8; rows];
        let mut pending: Vec<usize> = (0..rows).collect();
        let mut below_k = 0;
        for level in 0..=anonymity.steps.len() {
            if level > 0 {
                self.take_step(level - 1, &pending, anonymity);
            }
            let last = level == anonymity.steps.len();
            let mut groups: HashMap<String, (HashSet<&str>, Vec<usize>)> = HashMap::new();
            let mut key = String::new();
            for &row in &pending {
                key.clear();
                self.key(row, &mut key);
                let group = groups.entry(key.clone()).or_default();
                group.0.insert(chargers[row]);
                group.1.push(row);
            }
            let mut next = Vec::new();
            for (members, group_rows) in groups.into_values() {
                if members.len() >= anonymity.k || last {
                    if members.len() < anonymity.k {
                        below_k += group_rows.len() as u64;
                    }
                    for row in group_rows {
                        levels[row] = level as u8;
                    }
                } else {
                    next.extend(group_rows);
                }
            }
            next.sort_unstable();
            pending = next;
            if pending.is_empty() {
                break;
            }
        }
        Levels { levels, below_k }
    }

    fn take_step(&mut self, step: usize, rows: &[usize], anonymity: &Anonymity) {
        let step = &anonymity.steps[step];
        for name in &step.columns {
            let Some(index) = self.names.iter().position(|n| n == name) else {
                continue;
            };
            let part = &mut self.parts[index];
            for &row in rows {
                let coarser = step.generalisation.apply(part[row].as_deref());
                if coarser != part[row] {
                    part[row] = coarser;
                    self.changed[index] = true;
                }
            }
        }
    }

    /// The column rebuilt from its coarsened values, when any row changed.
    pub(crate) fn rebuilt(
        &self,
        name: &str,
        original: &ArrayRef,
    ) -> Result<Option<ArrayRef>, ArrowError> {
        match self.names.iter().position(|n| n == name) {
            Some(index) if self.changed[index] => {
                columns::rebuild(original, &self.parts[index]).map(Some)
            }
            _ => Ok(None),
        }
    }
}
