//! One dataset of a data directory, read whole, with what each column is.

use std::collections::HashMap;

use anyhow::{Result, bail};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use delink_datadir::{OutputStore, read_parquet};

/// A column as the writer described it in the field metadata.
pub(crate) struct TableColumn {
    /// The column's name.
    pub(crate) name: String,
    /// The input field it came from (`delink.source`).
    pub(crate) source: String,
    /// What was done to it (`delink.action`).
    pub(crate) action: String,
    /// Every row's value.
    pub(crate) values: ArrayRef,
}

impl TableColumn {
    pub(crate) fn is_pseudonym(&self) -> bool {
        self.action.starts_with("pseudonymise")
    }

    /// Renders every row as text (empty for null), for keys and grouping.
    pub(crate) fn text(&self) -> Result<Vec<String>> {
        let mut values = self.values.clone();
        if matches!(values.data_type(), DataType::Timestamp(..)) {
            values = arrow_cast::cast(&values, &DataType::Int64)?;
        }
        let options = FormatOptions::default().with_null("");
        let formatter = ArrayFormatter::try_new(values.as_ref(), &options)?;
        Ok((0..values.len())
            .map(|row| formatter.value(row).to_string())
            .collect())
    }
}

/// Every row of one dataset.
pub(crate) struct Table {
    pub(crate) rows: usize,
    pub(crate) columns: Vec<TableColumn>,
    /// The key-value metadata of its first file.
    pub(crate) metadata: HashMap<String, String>,
}

impl Table {
    /// Reads every visible Parquet file below the key `prefix` of the outputs.
    pub(crate) fn read(outputs: &OutputStore, prefix: &str) -> Result<Table> {
        let files = outputs.list(prefix)?.into_iter().filter(|object| {
            object.key.ends_with(".parquet")
                && !object.key.split('/').any(|part| part.starts_with('_'))
        });
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut metadata = HashMap::new();
        for file in files {
            let content = read_parquet(outputs, &file.key)?;
            if metadata.is_empty() {
                for pair in content.metadata.into_iter().flatten() {
                    metadata.insert(pair.key, pair.value.unwrap_or_default());
                }
            }
            batches.extend(content.batches);
        }
        let Some(first) = batches.first() else {
            return Ok(Table {
                rows: 0,
                columns: Vec::new(),
                metadata,
            });
        };
        let schema = first.schema();
        if batches
            .iter()
            .any(|batch| batch.schema().fields() != schema.fields())
        {
            bail!(
                "{} holds files of different layouts (written under different policies); assess them apart",
                outputs.describe(prefix)
            );
        }
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let mut columns = Vec::new();
        for (index, field) in schema.fields().iter().enumerate() {
            let parts: Vec<&dyn arrow_array::Array> = batches
                .iter()
                .map(|batch| batch.column(index).as_ref())
                .collect();
            let metadata = field.metadata();
            columns.push(TableColumn {
                name: field.name().clone(),
                source: metadata.get("delink.source").cloned().unwrap_or_default(),
                action: metadata.get("delink.action").cloned().unwrap_or_default(),
                values: arrow_select_concat(&parts)?,
            });
        }
        Ok(Table {
            rows,
            columns,
            metadata,
        })
    }

    /// Finds the column named `name`.
    pub(crate) fn named(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|column| column.name == name)
    }

    /// Finds the column computed from `source`.
    pub(crate) fn column(&self, source: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|column| column.source == source)
    }
}

fn arrow_select_concat(parts: &[&dyn arrow_array::Array]) -> Result<ArrayRef> {
    Ok(arrow_select::concat::concat(parts)?)
}
