use delink_model::{Dataset, Field, Scope, ValueType};

use crate::{Anonymity, Domain};

/// Holds the validated policy: what to write to each dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Columns of `history/`.
    pub history: DatasetPlan,
    /// Columns of `devices/`.
    pub devices: DatasetPlan,
    /// BLAKE3 of the policy text (hex): names the policy every output file was written under.
    pub digest: String,
}

impl Plan {
    /// Returns the plan of one dataset.
    pub fn dataset(&self, dataset: Dataset) -> &DatasetPlan {
        match dataset {
            Dataset::History => &self.history,
            Dataset::Devices => &self.devices,
        }
    }
}

/// Lists the output columns of one dataset, in output order.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetPlan {
    /// Which dataset this is.
    pub dataset: Dataset,
    /// Output columns, in policy-file order of their fields.
    pub columns: Vec<Column>,
    /// k-anonymity of its device profiles, applied as each file is sealed.
    pub anonymity: Option<Anonymity>,
}

impl DatasetPlan {
    /// The order of the dataset's rows within each file: whose rows they are
    /// (history/: the subject, by account else RFID pseudonym; devices/: the
    /// charger), then observation time, then the other pseudonyms. Queries for
    /// one subject or charger then read few row groups, and the order tells
    /// nothing of the input's.
    pub fn sort_key(&self) -> SortKey {
        let owners: &[Field] = match self.dataset {
            Dataset::History => &[Field::UserAccountId, Field::UserRfid],
            Dataset::Devices => &[Field::ChargerSerial],
        };
        let pseudonym = |column: &&Column| {
            matches!(column.action, Action::Pseudonymise { .. })
                && column.field.value_type() == ValueType::Str
        };
        let name = |column: &Column| column.name.clone();
        SortKey {
            identity: owners
                .iter()
                .filter_map(|owner| {
                    self.columns
                        .iter()
                        .filter(pseudonym)
                        .find(|column| column.field == *owner)
                })
                .map(name)
                .collect(),
            time: self
                .columns
                .iter()
                .find(|column| column.field == Field::ObservedAt)
                .map(name),
            then: self
                .columns
                .iter()
                .filter(pseudonym)
                .filter(|column| !owners.contains(&column.field))
                .map(name)
                .collect(),
        }
    }
}

/// Names the columns a dataset's rows are sorted by within a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortKey {
    /// Whose row it is: the first of these columns that is not null (nulls first).
    pub identity: Vec<String>,
    /// Then the observation time.
    pub time: Option<String>,
    /// Then these string columns, one after the other (ties broken by them, never by input order).
    pub then: Vec<String>,
}

/// Describes one output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The input field it is computed from.
    pub field: Field,
    /// The output column name.
    pub name: String,
    /// What is done to the value.
    pub action: Action,
}

/// Says how a column's value is computed from its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Copied when inside its domain, else written as null and counted
    /// (non-personal fields only). Timestamps have no domain.
    Keep {
        /// What the value may be.
        domain: Option<Domain>,
    },
    /// Replaced by a keyed hash under the key of `scope`, with `context` as derivation context.
    Pseudonymise {
        /// Whose key hashes the value.
        scope: Scope,
        /// The per-column derivation context; unique across datasets and columns.
        context: String,
    },
    /// Rounded down to a multiple of `grid`.
    Grid {
        /// The grid step.
        grid: f64,
    },
    /// Truncated to the start of its unit.
    Truncate {
        /// The unit.
        unit: TimeUnit,
    },
}

/// Names a timestamp truncation unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Whole seconds.
    Second,
    /// Whole minutes.
    Minute,
    /// Whole hours.
    Hour,
    /// Whole UTC days.
    Day,
}

impl TimeUnit {
    /// Parses a policy-file unit name.
    pub fn parse(name: &str) -> Option<TimeUnit> {
        Some(match name {
            "second" => TimeUnit::Second,
            "minute" => TimeUnit::Minute,
            "hour" => TimeUnit::Hour,
            "day" => TimeUnit::Day,
            _ => return None,
        })
    }

    /// Returns the unit length in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            TimeUnit::Second => 1_000_000,
            TimeUnit::Minute => 60_000_000,
            TimeUnit::Hour => 3_600_000_000,
            TimeUnit::Day => 86_400_000_000,
        }
    }
}
