//! Levels: each row's profile — every published column but pseudonyms and
//! microaggregated numbers — at the finest level of the steps at which `k`
//! chargers share it.
//!
//! Top-down: rows are grouped by their profile with every step taken; a group
//! of at least `k` chargers is split by the profile one step finer, the
//! sub-groups of `k` or more are split further, and the rest stay at this
//! level together (joined by the smallest sub-groups when they alone would
//! have fewer than `k`). Every published (level, profile) is thus one group's
//! remainder, shared by `k` chargers unless the whole group had fewer.
//!
//! Columns are dictionary-coded: a step coarsens each distinct value once,
//! and a row's profile at any level is a table lookup.

use std::cmp::Ordering;
use std::collections::HashMap;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use delink_policy::{Anonymity, Step};

use crate::columns;

/// One profile column: its distinct values (coarsened ones included), each
/// row's code as written, and per level the code each written code becomes.
struct Coded {
    name: String,
    values: Vec<Option<String>>,
    codes: Vec<u32>,
    /// `at_level[level][code]`: the code of `code`'s value after `level` steps.
    at_level: Vec<Vec<u32>>,
}

impl Coded {
    fn new(name: String, text: Vec<Option<String>>, steps: &[Step]) -> Coded {
        let mut index: HashMap<Option<String>, u32> = HashMap::new();
        let mut values = Vec::new();
        let mut intern = |value: Option<String>, values: &mut Vec<Option<String>>| {
            *index.entry(value).or_insert_with_key(|value| {
                values.push(value.clone());
                (values.len() - 1) as u32
            })
        };
        let codes: Vec<u32> = text.into_iter().map(|v| intern(v, &mut values)).collect();
        let written = values.len();
        let mut at_level = vec![(0..written as u32).collect::<Vec<u32>>()];
        for step in steps {
            let previous = at_level.last().cloned().unwrap_or_default();
            let next = if step.columns.contains(&name) {
                previous
                    .iter()
                    .map(|code| {
                        let coarser = step.generalisation.apply(values[*code as usize].as_deref());
                        intern(coarser, &mut values)
                    })
                    .collect()
            } else {
                previous
            };
            at_level.push(next);
        }
        Coded {
            name,
            values,
            codes,
            at_level,
        }
    }

    fn code(&self, row: usize, level: usize) -> u32 {
        self.at_level[level][self.codes[row] as usize]
    }
}

/// The profile columns of a batch.
pub(crate) struct Profile {
    columns: Vec<Coded>,
    levels: Vec<u8>,
}

impl Profile {
    pub(crate) fn read(
        batch: &RecordBatch,
        anonymity: &Anonymity,
        steps: &[Step],
    ) -> Result<Profile, ArrowError> {
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
            columns.push(Coded::new(field.name().clone(), text, steps));
        }
        Ok(Profile {
            columns,
            levels: vec![0; batch.num_rows()],
        })
    }

    /// Orders two rows by their profiles at `level`.
    fn compare_at(&self, a: usize, b: usize, level: usize) -> Ordering {
        self.columns
            .iter()
            .map(|column| column.code(a, level).cmp(&column.code(b, level)))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    /// Orders two rows by their published profiles (each at its own level).
    pub(crate) fn compare(&self, a: usize, b: usize) -> Ordering {
        let (la, lb) = (usize::from(self.levels[a]), usize::from(self.levels[b]));
        la.cmp(&lb).then_with(|| {
            self.columns
                .iter()
                .map(|column| column.code(a, la).cmp(&column.code(b, lb)))
                .find(|order| order.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }

    /// Gives every row its level; returns the levels and how many rows sit in
    /// a group of fewer than `k` chargers with every step taken.
    pub(crate) fn assign_levels(
        &mut self,
        chargers: &[u32],
        top: usize,
        k: usize,
    ) -> (Vec<u8>, u64) {
        let mut rows: Vec<usize> = (0..chargers.len()).collect();
        let mut below_k = 0;
        for group in self.split(&mut rows, top, chargers) {
            if distinct(&group, chargers) >= k {
                self.refine(group, top, chargers, k);
            } else {
                below_k += group.len() as u64;
                self.place(&group, top);
            }
        }
        (self.levels.clone(), below_k)
    }

    /// Places a group (sharing its profile at `level`, with `k` chargers) at
    /// the finest levels its sub-groups allow.
    fn refine(&mut self, group: Vec<usize>, level: usize, chargers: &[u32], k: usize) {
        if level == 0 {
            self.place(&group, 0);
            return;
        }
        let mut group = group;
        let finer = self.split(&mut group, level - 1, chargers);
        let (stay, mut go): (Vec<Vec<usize>>, Vec<Vec<usize>>) = finer
            .into_iter()
            .partition(|sub| distinct(sub, chargers) < k);
        let mut stay = stay.concat();
        if !stay.is_empty() {
            borrow(&mut stay, &mut go, chargers, k);
        }
        self.place(&stay, level);
        for sub in go {
            self.refine(sub, level - 1, chargers, k);
        }
    }

    fn place(&mut self, rows: &[usize], level: usize) {
        for &row in rows {
            self.levels[row] = level as u8;
        }
    }

    /// Splits rows into groups of equal profile at `level`.
    fn split(&self, rows: &mut [usize], level: usize, chargers: &[u32]) -> Vec<Vec<usize>> {
        rows.sort_unstable_by(|a, b| {
            self.compare_at(*a, *b, level)
                .then(chargers[*a].cmp(&chargers[*b]))
        });
        rows.chunk_by(|a, b| self.compare_at(*a, *b, level).is_eq())
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The column rebuilt at each row's level, when any row changed.
    pub(crate) fn rebuilt(
        &self,
        name: &str,
        original: &ArrayRef,
    ) -> Result<Option<ArrayRef>, ArrowError> {
        let Some(column) = self.columns.iter().find(|column| column.name == name) else {
            return Ok(None);
        };
        let codes: Vec<u32> = (0..self.levels.len())
            .map(|row| column.code(row, usize::from(self.levels[row])))
            .collect();
        if codes == column.codes {
            return Ok(None);
        }
        columns::rebuild(original, &column.values, &codes).map(Some)
    }
}

/// Makes the rows that stay at a level a group of `k` chargers: takes whole
/// chargers from the largest sub-groups that can spare them (keeping `k`),
/// then, if that is not enough, whole sub-groups, smallest first.
fn borrow(stay: &mut Vec<usize>, go: &mut Vec<Vec<usize>>, chargers: &[u32], k: usize) {
    go.sort_by_key(|sub| std::cmp::Reverse(distinct(sub, chargers)));
    for sub in go.iter_mut() {
        let needed = k.saturating_sub(distinct(stay, chargers));
        let spare = distinct(sub, chargers).saturating_sub(k);
        if needed == 0 {
            return;
        }
        if spare == 0 {
            continue;
        }
        // Sub-groups are sorted by charger: the first chargers move, all their rows.
        let mut moved = Vec::new();
        let mut taken = 0;
        let mut last = None;
        for &row in sub.iter() {
            if last != Some(chargers[row]) {
                if taken == needed.min(spare) {
                    break;
                }
                taken += 1;
                last = Some(chargers[row]);
            }
            moved.push(row);
        }
        sub.drain(..moved.len());
        stay.extend(moved);
    }
    while distinct(stay, chargers) < k {
        match go.pop() {
            Some(sub) => stay.extend(sub),
            None => return,
        }
    }
}

/// Distinct chargers among rows.
fn distinct(rows: &[usize], chargers: &[u32]) -> usize {
    let mut seen: Vec<u32> = rows.iter().map(|row| chargers[*row]).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}
