//! `delink export --subject`: a subject's history rows, machine-readable
//! (JSON lines and CSV), with what every column means (access and portability).

use delink_datadir::{create_private_dir_all, create_private_file};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field as ArrowField, Schema};
use arrow_select::filter::filter_record_batch;
use delink_config::Config;
use delink_datadir::{OutputStore, read_parquet};
use delink_keystore::KeyStore;
use delink_policy::{Action, Plan};
use serde::Serialize;

use crate::history;
use crate::subject::{SubjectRef, subject_column};

/// Says what an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Rows exported.
    pub rows: u64,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Describes one exported column.
#[derive(Debug, Serialize)]
struct ColumnMeaning {
    name: String,
    source_field: Option<&'static str>,
    meaning: String,
}

/// Writes `rows.jsonl`, `rows.csv` and `columns.json` for one subject into `out_dir`.
///
/// A subject without a key (never seen, or erased) gets empty files: there is
/// nothing linked to them.
pub fn export_subject(
    config: &Config,
    plan: &Plan,
    store: &dyn KeyStore,
    subject: &SubjectRef,
    out_dir: &Path,
) -> Result<ExportReport> {
    let subject = subject.normalised();
    let entity_id = subject.entity_id();
    let key = store.existing_key(&SubjectRef::entity(&entity_id))?;
    let outputs = OutputStore::for_config(config)?;
    let mut rows: Vec<RecordBatch> = Vec::new();
    if let Some(key) = key {
        let marker = subject_column(plan, &subject, &key)?;
        let wanted: HashMap<String, HashSet<String>> =
            [(marker.column, [marker.pseudonym].into())].into();
        for (date, partition) in history::partitions(&outputs)? {
            for file in history::parquet_files(&outputs, &partition)? {
                for batch in read_parquet(&outputs, &file)?.batches {
                    let mask: BooleanArray = history::matching_rows(&batch, &wanted)?;
                    let selected = filter_record_batch(&batch, &mask)?;
                    if selected.num_rows() > 0 {
                        rows.push(with_date(&selected, &date)?);
                    }
                }
            }
        }
    }
    create_private_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let jsonl = out_dir.join("rows.jsonl");
    let csv = out_dir.join("rows.csv");
    let meanings = out_dir.join("columns.json");
    let mut json_writer = arrow_json::LineDelimitedWriter::new(create(&jsonl)?);
    let mut csv_writer = arrow_csv::Writer::new(create(&csv)?);
    for batch in &rows {
        json_writer.write(batch)?;
        csv_writer.write(&flat(batch)?)?;
    }
    json_writer.finish()?;
    serde_json::to_writer_pretty(create(&meanings)?, &column_meanings(plan))?;
    Ok(ExportReport {
        rows: rows.iter().map(|batch| batch.num_rows() as u64).sum(),
        files: vec![jsonl, csv, meanings],
    })
}

fn create(path: &Path) -> Result<File> {
    create_private_file(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Adds the partition date as the first column, and writes UTC timestamps with an
/// explicit `+00:00` offset (what JSON and CSV writers can print).
fn with_date(batch: &RecordBatch, date: &str) -> Result<RecordBatch> {
    let dated = recast(batch, |data_type| match data_type {
        DataType::Timestamp(unit, Some(_)) => {
            Some(DataType::Timestamp(*unit, Some("+00:00".into())))
        }
        _ => None,
    })?;
    let mut fields = vec![Arc::new(ArrowField::new("date", DataType::Utf8, false))];
    fields.extend(dated.schema().fields().iter().cloned());
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(StringArray::from(vec![date; batch.num_rows()]))];
    columns.extend(dated.columns().iter().cloned());
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Writes nested columns (lists) as text, which CSV can hold.
fn flat(batch: &RecordBatch) -> Result<RecordBatch> {
    recast(batch, |data_type| {
        data_type.is_nested().then_some(DataType::Utf8)
    })
}

/// Casts every column for which `target` names a new type; the others are kept.
fn recast(
    batch: &RecordBatch,
    target: impl Fn(&DataType) -> Option<DataType>,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match target(field.data_type()) {
            Some(data_type) => {
                columns.push(arrow_cast::cast(column, &data_type)?);
                fields.push(Arc::new(field.as_ref().clone().with_data_type(data_type)));
            }
            None => {
                columns.push(column.clone());
                fields.push(field.clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn column_meanings(plan: &Plan) -> Vec<ColumnMeaning> {
    let mut meanings = vec![ColumnMeaning {
        name: "date".to_owned(),
        source_field: None,
        meaning: "UTC day of the observation (the partition it is stored in)".to_owned(),
    }];
    for column in &plan.history.columns {
        let field = column.field.path();
        let meaning = match &column.action {
            Action::Keep { domain: None } => format!("{field}, as the charger reported it"),
            Action::Keep {
                domain: Some(domain),
            } => format!(
                "{field}, as the charger reported it when {}; otherwise empty",
                domain.describe()
            ),
            Action::Pseudonymise { scope, .. } => format!(
                "pseudonym of {field}: a keyed hash under the {} key, the same for the same value in this column, not reversible",
                scope.as_str()
            ),
            Action::Grid { grid } => format!("{field}, rounded down to a multiple of {grid}"),
            Action::Truncate { unit } => {
                format!("{field}, truncated to the {unit:?}").to_lowercase()
            }
        };
        meanings.push(ColumnMeaning {
            name: column.name.clone(),
            source_field: Some(field),
            meaning,
        });
    }
    meanings
}
