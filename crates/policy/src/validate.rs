//! The rules a policy must follow before any record is read.

use std::collections::BTreeSet;

use delink_model::{Dataset, Field, FieldClass, Scope, ValueType};

use crate::file::{DatasetRules, DetailedRule, FieldRule, PolicyFile};
use crate::plan::{Action, Column, DatasetPlan, Plan, TimeUnit};
use crate::{Domain, MAX_DOMAIN_LEN};
use crate::{PolicyError, Result};

/// Coarsest precision a location may be written with: 0.01° is about 1 km.
const MIN_LOCATION_GRID_DEGREES: f64 = 0.01;

/// Prefix of every derivation context; bump the version to re-key every column.
const CONTEXT_PREFIX: &str = "delink pseudonym v1";

pub(crate) fn validate(file: &PolicyFile) -> Result<Plan> {
    let mut problems = Vec::new();
    if file.version != 1 {
        problems.push(format!(
            "version {} is not supported; use version = 1",
            file.version
        ));
    }
    let history = dataset_plan(Dataset::History, &file.history, &mut problems);
    let devices = dataset_plan(Dataset::Devices, &file.devices, &mut problems);
    if !problems.is_empty() {
        return Err(PolicyError::Invalid { problems });
    }
    Ok(Plan {
        history,
        devices,
        digest: String::new(),
    })
}

fn dataset_plan(dataset: Dataset, rules: &DatasetRules, problems: &mut Vec<String>) -> DatasetPlan {
    let name = dataset.as_str();
    let mut columns = Vec::new();
    for (path, rule) in &rules.fields {
        let Some(field) = Field::from_path(path) else {
            problems.push(format!("{name}: `{path}` is not a field of observation v1"));
            continue;
        };
        match column(dataset, field, rule) {
            Ok(Some(column)) => columns.push(column),
            Ok(None) => {}
            Err(problem) => problems.push(format!("{name}: `{path}`: {problem}")),
        }
    }
    for field in Field::ALL {
        if !rules.fields.contains_key(field.path()) {
            problems.push(format!(
                "{name}: `{}` is not classified; add it (e.g. \"{}\" = \"drop\")",
                field.path(),
                field.path()
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for column in &columns {
        if !seen.insert(column.name.as_str()) {
            problems.push(format!(
                "{name}: column name `{}` is used twice",
                column.name
            ));
        }
    }
    columns.sort_by_key(|column| column.field);
    let anonymity = match (&rules.anonymity, dataset) {
        (None, _) => None,
        (Some(_), Dataset::History) => {
            problems.push(format!(
                "{name}.anonymity: history/ is pseudonymised, not anonymised; k-anonymity applies to devices/"
            ));
            None
        }
        (Some(anonymity), Dataset::Devices) => {
            crate::anonymity::validate(anonymity, &columns, problems, name)
        }
    };
    DatasetPlan {
        dataset,
        columns,
        anonymity,
    }
}

/// Checks one rule; `Ok(None)` means the field is dropped.
fn column(
    dataset: Dataset,
    field: Field,
    rule: &FieldRule,
) -> std::result::Result<Option<Column>, String> {
    let detailed = match rule {
        FieldRule::Bare(action) => DetailedRule {
            action: action.clone(),
            scope: None,
            grid: None,
            truncate: None,
            column: None,
            values: None,
            pattern: None,
            max_len: None,
            range: None,
        },
        FieldRule::Detailed(detailed) => detailed.clone(),
    };
    let action = match detailed.action.as_str() {
        "drop" => return Ok(None),
        "keep" => keep(field, &detailed)?,
        "pseudonymise" => pseudonymise(dataset, field, detailed.scope.as_deref())?,
        "generalise" => generalise(field, &detailed)?,
        other => {
            return Err(format!(
                "unknown action `{other}`; use keep, drop, pseudonymise or generalise"
            ));
        }
    };
    if dataset == Dataset::Devices {
        devices_allows(field, &action)?;
    }
    let name = detailed
        .column
        .clone()
        .unwrap_or_else(|| default_column_name(field, &action));
    if !is_column_name(&name) {
        return Err(format!("column name `{name}` must be snake_case ascii"));
    }
    Ok(Some(Column {
        field,
        name,
        action,
    }))
}

fn keep(field: Field, rule: &DetailedRule) -> std::result::Result<Action, String> {
    match field.class() {
        FieldClass::NonPersonal => Ok(Action::Keep {
            domain: domain(field, rule)?,
        }),
        FieldClass::Location => Err(
            "a precise location may not be kept; generalise it (grid >= 0.01) or drop it".into(),
        ),
        FieldClass::Identifier { .. } | FieldClass::Personal { .. } => {
            Err("personal data may not be kept in clear; pseudonymise or drop it".into())
        }
    }
}

/// Reads the domain a kept field needs: strings `values` or `pattern` +
/// `max_len`, numbers a finite `range`, timestamps none.
fn domain(field: Field, rule: &DetailedRule) -> std::result::Result<Option<Domain>, String> {
    let strings = matches!(field.value_type(), ValueType::Str | ValueType::StrList);
    let numbers = matches!(
        field.value_type(),
        ValueType::Float | ValueType::Int | ValueType::FloatList
    );
    let string_domain = rule.values.is_some() || rule.pattern.is_some() || rule.max_len.is_some();
    if !strings && string_domain {
        return Err("values, pattern and max_len apply to kept strings only".into());
    }
    if !numbers && rule.range.is_some() {
        return Err("range applies to kept numbers only".into());
    }
    if strings {
        return match (&rule.values, &rule.pattern, rule.max_len) {
            (Some(values), None, None) => {
                if values.is_empty() || values.iter().any(|v| v.is_empty() || v.len() > MAX_DOMAIN_LEN) {
                    return Err(format!(
                        "values must be non-empty strings of at most {MAX_DOMAIN_LEN} bytes"
                    ));
                }
                Ok(Some(Domain::Values(values.iter().cloned().collect())))
            }
            (None, Some(pattern), Some(max_len)) => Domain::pattern(pattern, max_len).map(Some),
            (None, Some(_), None) => Err("a pattern needs max_len = <bytes>".into()),
            (None, None, _) => Err(
                "a kept string needs a domain: values = [...], or pattern = \"...\" with max_len = <bytes>"
                    .into(),
            ),
            _ => Err("give either values or pattern + max_len, not both".into()),
        };
    }
    if numbers {
        let [min, max] = rule
            .range
            .ok_or("a kept number needs a finite range = [min, max]")?;
        if !(min.is_finite() && max.is_finite() && min <= max) {
            return Err("range must be [min, max] with finite min <= max".into());
        }
        return Ok(Some(Domain::Range { min, max }));
    }
    Ok(None)
}

fn pseudonymise(
    dataset: Dataset,
    field: Field,
    scope: Option<&str>,
) -> std::result::Result<Action, String> {
    let allowed = match field.class() {
        FieldClass::Identifier { scopes } | FieldClass::Personal { scopes } => scopes,
        FieldClass::NonPersonal | FieldClass::Location => {
            return Err("only identifiers and personal fields can be pseudonymised".into());
        }
    };
    let names: Vec<&str> = allowed.iter().map(|scope| scope.as_str()).collect();
    let Some(scope_name) = scope else {
        return Err(format!(
            "pseudonymise needs a scope: one of {}",
            names.join(", ")
        ));
    };
    let scope = Scope::parse(scope_name)
        .filter(|scope| allowed.contains(scope))
        .ok_or_else(|| {
            format!(
                "scope `{scope_name}` is not allowed here; use one of {}",
                names.join(", ")
            )
        })?;
    let context = format!("{CONTEXT_PREFIX} {}/{}", dataset.as_str(), field.path());
    Ok(Action::Pseudonymise { scope, context })
}

fn generalise(field: Field, rule: &DetailedRule) -> std::result::Result<Action, String> {
    match field.value_type() {
        ValueType::Timestamp => {
            let unit_name = rule
                .truncate
                .as_deref()
                .ok_or("generalise on a timestamp needs truncate = second|minute|hour|day")?;
            let unit = TimeUnit::parse(unit_name).ok_or_else(|| {
                format!("truncate `{unit_name}` is not second, minute, hour or day")
            })?;
            Ok(Action::Truncate { unit })
        }
        ValueType::Float => {
            let grid = rule
                .grid
                .ok_or("generalise on a number needs grid = <step>")?;
            if !(grid.is_finite() && grid > 0.0) {
                return Err("grid must be a positive number".into());
            }
            if field.class() == FieldClass::Location && grid < MIN_LOCATION_GRID_DEGREES {
                return Err(format!(
                    "a location grid finer than {MIN_LOCATION_GRID_DEGREES}° would point at a home"
                ));
            }
            Ok(Action::Grid { grid })
        }
        _ => Err("generalise applies to timestamps and numbers only".into()),
    }
}

/// The de-linked dataset may hold nothing that points at a person (privacy model).
fn devices_allows(field: Field, action: &Action) -> std::result::Result<(), String> {
    if field.is_subject_linked() {
        return Err("devices/ may hold no subject-linked column; drop it".into());
    }
    if matches!(field.class(), FieldClass::Personal { .. }) {
        return Err("devices/ may hold no personal data, not even pseudonymised; drop it".into());
    }
    if let Action::Pseudonymise { scope, .. } = action
        && *scope != Scope::Device
    {
        return Err(format!(
            "devices/ pseudonyms must use device keys (so erasing a charger makes its rows unlinkable), not {}",
            scope.as_str()
        ));
    }
    if field == Field::InstallationId {
        return Err("devices/ may hold no installation pseudonym; drop it".into());
    }
    Ok(())
}

fn default_column_name(field: Field, action: &Action) -> String {
    let base = field.path().replace('.', "_");
    match action {
        Action::Pseudonymise { .. } => format!("{base}_pseudonym"),
        _ => base,
    }
}

fn is_column_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_lowercase()
}
