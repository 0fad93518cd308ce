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
//! and a row's profile at any level is a table lookup. Each level's profiles
//! are then ranked (equal profiles, equal ranks, in the order of their codes),
//! so grouping and ordering rows compares one number.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use delink_policy::{Anonymity, Step};
use rustc_hash::FxHashMap;

use crate::columns::{self, Dictionary};

/// One profile column: its distinct values (coarsened ones included), each
/// row's code as written, and per level the code each written code becomes.
struct Coded {
    name: String,
    dictionary: Dictionary,
    codes: Vec<u32>,
    /// `at_level[level][code]`: the code of `code`'s value after `level` steps.
    at_level: Vec<Vec<u32>>,
}

impl Coded {
    fn new(name: String, mut dictionary: Dictionary, codes: Vec<u32>, steps: &[Step]) -> Coded {
        let written = dictionary.values.len();
        let mut at_level = vec![(0..written as u32).collect::<Vec<u32>>()];
        for step in steps {
            let previous = at_level.last().cloned().unwrap_or_default();
            let next = if step.columns.contains(&name) {
                previous
                    .iter()
                    .map(|code| {
                        let value = dictionary.values[*code as usize].as_deref();
                        let coarser = step.generalisation.apply(value);
                        dictionary.code(coarser.as_deref())
                    })
                    .collect()
            } else {
                previous
            };
            at_level.push(next);
        }
        Coded {
            name,
            dictionary,
            codes,
            at_level,
        }
    }

    fn code(&self, row: usize, level: usize) -> u32 {
        self.at_level[level][self.codes[row] as usize]
    }
}

/// The profile columns of some rows of a batch (row `i` here is `rows[i]` there).
pub(crate) struct Profile {
    columns: Vec<Coded>,
    /// Each row's profile as written: an index into every level's ranks.
    written: Vec<u32>,
    /// `ranks[level][profile]`: where a written profile, at `level`, ranks
    /// among that level's profiles.
    ranks: Vec<Vec<u32>>,
    levels: Vec<u8>,
}

impl Profile {
    pub(crate) fn read(
        batch: &RecordBatch,
        rows: &[u32],
        anonymity: &Anonymity,
        steps: &[Step],
    ) -> Result<Profile, ArrowError> {
        let mut columns = Vec::new();
        for (index, field) in batch.schema().fields().iter().enumerate() {
            if crate::is_pseudonym(field) || anonymity.microaggregate.contains(field.name()) {
                continue;
            }
            let (dictionary, codes) = columns::coded(batch.column(index), rows)?;
            columns.push(Coded::new(field.name().clone(), dictionary, codes, steps));
        }
        let (written, profiles) = written_profiles(&columns, rows.len());
        let ranks = (0..=steps.len())
            .map(|level| ranks_at(&columns, &profiles, level))
            .collect();
        Ok(Profile {
            columns,
            written,
            ranks,
            levels: vec![0; rows.len()],
        })
    }

    /// Where a row's profile at `level` ranks among that level's profiles.
    fn rank(&self, level: usize, row: usize) -> u32 {
        self.ranks[level][self.written[row] as usize]
    }

    /// The rank of a row's published profile (at its own level), the level first.
    pub(crate) fn published_rank(&self, row: usize) -> (u8, u32) {
        let level = self.levels[row];
        (level, self.rank(usize::from(level), row))
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
            if distinct_sorted(&group, chargers) >= k {
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
            .partition(|sub| distinct_sorted(sub, chargers) < k);
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

    /// Splits rows into groups of equal profile at `level`, each sorted by charger.
    fn split(&self, rows: &mut [usize], level: usize, chargers: &[u32]) -> Vec<Vec<usize>> {
        let rank = |row: usize| self.rank(level, row);
        rows.sort_unstable_by_key(|row| (u64::from(rank(*row)) << 32) | u64::from(chargers[*row]));
        rows.chunk_by(|a, b| rank(*a) == rank(*b))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The column rebuilt at each row's level, when any row changed.
    pub(crate) fn rebuilt(
        &self,
        name: &str,
        original: &ArrayRef,
        rows: &[u32],
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
        columns::rebuild(original, rows, &column.dictionary.values, &codes).map(Some)
    }
}

/// Each row's profile as written (codes column by column), as an index into
/// the distinct ones, which are returned one after another.
fn written_profiles(columns: &[Coded], rows: usize) -> (Vec<u32>, Vec<u32>) {
    let mut distinct: FxHashMap<Box<[u32]>, u32> = FxHashMap::default();
    let mut profiles = Vec::new();
    let mut profile = Vec::with_capacity(columns.len());
    let written = (0..rows)
        .map(|row| {
            profile.clear();
            profile.extend(columns.iter().map(|column| column.codes[row]));
            if let Some(index) = distinct.get(profile.as_slice()) {
                return *index;
            }
            let index = distinct.len() as u32;
            distinct.insert(profile.as_slice().into(), index);
            profiles.extend_from_slice(&profile);
            index
        })
        .collect();
    (written, profiles)
}

/// Where each written profile ranks at `level` among the level's profiles,
/// profiles ordered column by column by their codes (equal ones, equal ranks).
fn ranks_at(columns: &[Coded], written: &[u32], level: usize) -> Vec<u32> {
    let width = columns.len();
    if width == 0 {
        return vec![0];
    }
    let at_level: Vec<u32> = written
        .chunks_exact(width)
        .flat_map(|profile| {
            profile
                .iter()
                .zip(columns)
                .map(|(code, column)| column.at_level[level][*code as usize])
        })
        .collect();
    delink_sort::dense_ranks(at_level.chunks_exact(width))
}

/// Makes the rows that stay at a level a group of `k` chargers: takes whole
/// chargers from the largest sub-groups that can spare them (keeping `k`),
/// then, if that is not enough, whole sub-groups, smallest first. Sub-groups
/// are sorted by charger.
fn borrow(stay: &mut Vec<usize>, go: &mut Vec<Vec<usize>>, chargers: &[u32], k: usize) {
    go.sort_by_cached_key(|sub| std::cmp::Reverse(distinct_sorted(sub, chargers)));
    let mut have = distinct(stay, chargers);
    for sub in go.iter_mut() {
        let needed = k.saturating_sub(have);
        let spare = distinct_sorted(sub, chargers).saturating_sub(k);
        if needed == 0 {
            return;
        }
        if spare == 0 {
            continue;
        }
        // The first chargers move, all their rows.
        let mut moved = 0;
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
            moved += 1;
        }
        stay.extend(sub.drain(..moved));
        have = distinct(stay, chargers);
    }
    while have < k {
        match go.pop() {
            Some(sub) => {
                stay.extend(sub);
                have = distinct(stay, chargers);
            }
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

/// Distinct chargers among rows sorted by charger.
fn distinct_sorted(rows: &[usize], chargers: &[u32]) -> usize {
    rows.chunk_by(|a, b| chargers[*a] == chargers[*b]).count()
}
