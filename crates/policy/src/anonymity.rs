//! k-anonymity of a dataset's device profiles: the quasi-identifier columns,
//! the order in which they are coarsened for rows whose profile has fewer than
//! `k` chargers on a day, and the numbers replaced by the mean of `k` peers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::plan::{Action, Column};
use delink_model::{Field, ValueType};

/// The `[<dataset>.anonymity]` table of the policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymityRules {
    /// Chargers a published profile needs on a day.
    pub k: usize,
    /// Coarsening steps, first taken first.
    pub steps: Vec<StepRule>,
    /// Other steps for rows of these kinds (the `kind` column's value), so
    /// each kind keeps longest what its questions need.
    #[serde(default)]
    pub steps_by_kind: BTreeMap<String, Vec<StepRule>>,
    /// Numeric columns published as the mean of a cluster of at least `k` chargers.
    #[serde(default)]
    pub microaggregate: Vec<String>,
}

/// One coarsening step as written: its columns and how far.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRule {
    /// The columns coarsened together.
    pub columns: Vec<String>,
    /// A coarser grid for number columns.
    pub grid: Option<f64>,
    /// Dotted segments a version string keeps (`2.4.1` with 2 is `2.4`).
    pub segments: Option<usize>,
}

/// The validated anonymity section.
#[derive(Debug, Clone, PartialEq)]
pub struct Anonymity {
    /// Chargers a published profile needs on a day.
    pub k: usize,
    /// The column whose distinct values count chargers (the charger pseudonym).
    pub charger_column: String,
    /// Coarsening steps, first taken first; a row's level is how many it took.
    pub steps: Vec<Step>,
    /// Other steps for rows of these kinds.
    pub steps_by_kind: BTreeMap<String, Vec<Step>>,
    /// The column holding the kind, when steps depend on it.
    pub kind_column: Option<String>,
    /// Numeric columns published as cluster means.
    pub microaggregate: Vec<String>,
}

impl Anonymity {
    /// The steps rows of `kind` take.
    pub fn steps_for(&self, kind: Option<&str>) -> &[Step] {
        kind.and_then(|kind| self.steps_by_kind.get(kind))
            .unwrap_or(&self.steps)
    }

    /// Renders steps as the text written into every file's metadata
    /// (`delink.anonymity`, `delink.anonymity.kind.<kind>`), which
    /// [`Anonymity::parse_steps`] reads back.
    pub fn describe_steps(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|step| {
                format!(
                    "{}:{}",
                    step.columns.join("+"),
                    step.generalisation.describe()
                )
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Reads steps written by [`Anonymity::describe_steps`].
    pub fn parse_steps(text: &str) -> Option<Vec<Step>> {
        if text.is_empty() {
            return Some(Vec::new());
        }
        text.split(';')
            .map(|step| {
                let (columns, how) = step.split_once(':')?;
                Some(Step {
                    columns: columns.split('+').map(str::to_owned).collect(),
                    generalisation: Generalisation::parse(how)?,
                })
            })
            .collect()
    }
}

/// One coarsening step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The columns coarsened together.
    pub columns: Vec<String>,
    /// How.
    pub generalisation: Generalisation,
}

/// How a step coarsens a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Generalisation {
    /// A number floored to a coarser grid.
    Grid(f64),
    /// A dotted version cut to its first segments.
    Segments(usize),
    /// The value withheld (null).
    Withhold,
}

impl Generalisation {
    /// Coarsens one value given as text (numbers as decimals); `None` is null.
    pub fn apply(self, value: Option<&str>) -> Option<String> {
        let value = value?;
        match self {
            Generalisation::Grid(grid) => {
                let number: f64 = value.parse().ok()?;
                Some(format_number((number / grid).floor() * grid))
            }
            Generalisation::Segments(keep) => {
                let cut: Vec<&str> = value.split('.').take(keep).collect();
                Some(cut.join("."))
            }
            Generalisation::Withhold => None,
        }
    }

    fn describe(self) -> String {
        match self {
            Generalisation::Grid(grid) => format!("grid={grid}"),
            Generalisation::Segments(keep) => format!("segments={keep}"),
            Generalisation::Withhold => "withhold".to_owned(),
        }
    }

    fn parse(text: &str) -> Option<Generalisation> {
        if text == "withhold" {
            return Some(Generalisation::Withhold);
        }
        if let Some(grid) = text.strip_prefix("grid=") {
            return grid.parse().ok().map(Generalisation::Grid);
        }
        text.strip_prefix("segments=")?
            .parse()
            .ok()
            .map(Generalisation::Segments)
    }
}

/// The text form of a number the profile comparisons use (six decimals).
pub fn format_number(number: f64) -> String {
    format!("{number:.6}")
}

/// Checks the anonymity section against the dataset's columns.
pub(crate) fn validate(
    rules: &AnonymityRules,
    columns: &[Column],
    problems: &mut Vec<String>,
    name: &str,
) -> Option<Anonymity> {
    let before = problems.len();
    let mut problem = |text: String| problems.push(format!("{name}.anonymity: {text}"));
    if !(2..=1000).contains(&rules.k) {
        problem(format!("k = {} must be between 2 and 1000", rules.k));
    }
    let charger_column = columns
        .iter()
        .find(|column| {
            column.field == Field::ChargerSerial
                && matches!(column.action, Action::Pseudonymise { .. })
        })
        .map(|column| column.name.clone());
    if charger_column.is_none() {
        problem("counting chargers needs charger.serial pseudonymised in this dataset".into());
    }
    let find = |wanted: &str| columns.iter().find(|column| column.name == wanted);
    let steps = validate_steps(&rules.steps, columns, &mut problem);
    let mut steps_by_kind = BTreeMap::new();
    for (kind, rules) in &rules.steps_by_kind {
        steps_by_kind.insert(kind.clone(), validate_steps(rules, columns, &mut problem));
    }
    let kind_column = columns
        .iter()
        .find(|column| column.field == Field::Kind && matches!(column.action, Action::Keep { .. }))
        .map(|column| column.name.clone());
    if !steps_by_kind.is_empty() && kind_column.is_none() {
        problem("steps_by_kind needs the kind kept in this dataset".into());
    }
    if steps_by_kind
        .values()
        .chain([&steps])
        .any(|steps| steps.len() > 255)
    {
        problem("at most 255 steps".into());
    }
    let anonymity = Anonymity {
        k: rules.k,
        charger_column: charger_column.unwrap_or_default(),
        steps,
        steps_by_kind,
        kind_column,
        microaggregate: rules.microaggregate.clone(),
    };
    let coarsened: BTreeSet<&str> = anonymity
        .steps_by_kind
        .values()
        .chain([&anonymity.steps])
        .flatten()
        .flat_map(|step| step.columns.iter().map(String::as_str))
        .collect();
    for wanted in &rules.microaggregate {
        match find(wanted) {
            None => problem(format!("`{wanted}` is not a column of this dataset")),
            Some(column)
                if !matches!(column.field.value_type(), ValueType::Float | ValueType::Int)
                    || matches!(column.action, Action::Pseudonymise { .. }) =>
            {
                problem(format!(
                    "`{wanted}` is not a number; only numbers are microaggregated"
                ));
            }
            Some(_) if coarsened.contains(wanted.as_str()) => {
                problem(format!(
                    "`{wanted}` cannot be both coarsened and microaggregated"
                ));
            }
            Some(_) => {}
        }
    }
    (problems.len() == before).then_some(anonymity)
}

/// Checks one list of steps against the dataset's columns.
fn validate_steps(
    rules: &[StepRule],
    columns: &[Column],
    problem: &mut impl FnMut(String),
) -> Vec<Step> {
    let mut steps = Vec::new();
    for rule in rules {
        if rule.columns.is_empty() {
            problem("a step names no column".into());
        }
        let generalisation = match (rule.grid, rule.segments) {
            (None, None) => Generalisation::Withhold,
            (Some(grid), None) if grid.is_finite() && grid > 0.0 => Generalisation::Grid(grid),
            (None, Some(keep)) if keep >= 1 => Generalisation::Segments(keep),
            _ => {
                problem(format!(
                    "step on {:?}: give a positive grid, segments >= 1, or neither (withhold)",
                    rule.columns
                ));
                continue;
            }
        };
        for wanted in &rule.columns {
            match columns.iter().find(|column| column.name == *wanted) {
                None => problem(format!("`{wanted}` is not a column of this dataset")),
                Some(column) => {
                    if let Some(reason) = unfit(column, generalisation) {
                        problem(format!("`{wanted}`: {reason}"));
                    }
                }
            }
        }
        steps.push(Step {
            columns: rule.columns.clone(),
            generalisation,
        });
    }
    steps
}

/// Why a step cannot coarsen this column, if it cannot.
fn unfit(column: &Column, generalisation: Generalisation) -> Option<String> {
    let value_type = column.field.value_type();
    if matches!(column.action, Action::Pseudonymise { .. }) || value_type == ValueType::Timestamp {
        return Some("pseudonyms and timestamps are not profile columns".into());
    }
    match generalisation {
        Generalisation::Grid(grid) => match column.action {
            Action::Grid { grid: base } if grid > base => None,
            Action::Grid { .. } => Some("a step's grid must be coarser than the column's".into()),
            _ if value_type == ValueType::Float || value_type == ValueType::Int => None,
            _ => Some("grid applies to numbers".into()),
        },
        Generalisation::Segments(_) if value_type == ValueType::Str => None,
        Generalisation::Segments(_) => Some("segments apply to strings".into()),
        Generalisation::Withhold => None,
    }
}
