//! Arrow columns for one dataset, built row by row from the plan.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use delink_model::{Field, Observation, Scope, ValueType};
use delink_policy::{Action, Column, DatasetPlan, Domain, Withheld};

use crate::generalise::{floor_to_grid, truncate_micros};
use crate::pseudonym::{ContextTag, PSEUDONYM_HEX_LEN, context_tag, hex_into, pseudonym};
use crate::value::{Value, value_of};
use crate::{KeyBytes, ObservationKeys};

/// Builds the Arrow schema of a dataset; each field carries its source and action as metadata.
pub fn arrow_schema(plan: &DatasetPlan) -> SchemaRef {
    let fields: Vec<ArrowField> = plan
        .columns
        .iter()
        .map(|column| {
            let metadata = HashMap::from([
                ("delink.source".to_owned(), column.field.path().to_owned()),
                ("delink.action".to_owned(), describe(&column.action)),
            ]);
            ArrowField::new(&column.name, data_type(column), true).with_metadata(metadata)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Names the columns whose values are (nearly) all distinct, where a Parquet
/// dictionary only costs time: pseudonyms of observation and session ids.
pub fn distinct_valued_columns(plan: &DatasetPlan) -> Vec<String> {
    plan.columns
        .iter()
        .filter(|column| matches!(column.field, Field::ObservationId | Field::SessionId))
        .map(|column| column.name.clone())
        .collect()
}

fn describe(action: &Action) -> String {
    match action {
        Action::Keep { domain: None } => "keep".to_owned(),
        Action::Keep {
            domain: Some(domain),
        } => format!("keep({})", domain.describe()),
        Action::Pseudonymise { scope, .. } => format!("pseudonymise({})", scope.as_str()),
        Action::Grid { grid } => format!("generalise(grid={grid})"),
        Action::Truncate { unit } => format!("generalise(truncate={unit:?})").to_lowercase(),
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn data_type(column: &Column) -> DataType {
    match (column.field.value_type(), &column.action) {
        (ValueType::StrList, _) => DataType::new_list(DataType::Utf8, true),
        (_, Action::Pseudonymise { .. }) => DataType::Utf8,
        (ValueType::Str | ValueType::Text, _) => DataType::Utf8,
        (ValueType::Float, _) => DataType::Float64,
        (ValueType::Int, _) => DataType::Int64,
        (ValueType::Timestamp, _) => timestamp_type(),
        (ValueType::FloatList, _) => DataType::new_list(DataType::Float64, true),
    }
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    Float(Float64Builder),
    Int(Int64Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Utf8List(ListBuilder<StringBuilder>),
    FloatList(ListBuilder<Float64Builder>),
}

impl ColumnBuilder {
    fn for_type(data_type: &DataType) -> ColumnBuilder {
        match data_type {
            DataType::Float64 => ColumnBuilder::Float(Float64Builder::new()),
            DataType::Int64 => ColumnBuilder::Int(Int64Builder::new()),
            DataType::Timestamp(..) => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            DataType::List(item) if item.data_type() == &DataType::Utf8 => {
                ColumnBuilder::Utf8List(ListBuilder::new(StringBuilder::new()))
            }
            DataType::List(_) => ColumnBuilder::FloatList(ListBuilder::new(Float64Builder::new())),
            _ => ColumnBuilder::Utf8(StringBuilder::new()),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Float(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Int(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Timestamp(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Utf8List(builder) => Arc::new(builder.finish()),
            ColumnBuilder::FloatList(builder) => Arc::new(builder.finish()),
        }
    }
}

/// Accumulates rows of one dataset and hands them out as a [`RecordBatch`].
pub struct DatasetBatchBuilder<'p> {
    plan: &'p DatasetPlan,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    /// The context tag of each pseudonymised column, by column index.
    context_tags: Vec<Option<ContextTag>>,
    /// Kept values left out for being outside their domain, by column index and reason.
    withheld: Vec<[u64; Withheld::ALL.len()]>,
    rows: usize,
}

impl<'p> DatasetBatchBuilder<'p> {
    /// Creates an empty builder for the dataset of `plan`, with the schema from [`arrow_schema`].
    pub fn new(plan: &'p DatasetPlan, schema: SchemaRef) -> Self {
        let builders = schema
            .fields()
            .iter()
            .map(|field| ColumnBuilder::for_type(field.data_type()))
            .collect();
        let context_tags = plan
            .columns
            .iter()
            .map(|column| match &column.action {
                Action::Pseudonymise { context, .. } => Some(context_tag(context)),
                _ => None,
            })
            .collect();
        DatasetBatchBuilder {
            plan,
            schema,
            builders,
            context_tags,
            withheld: vec![[0; Withheld::ALL.len()]; plan.columns.len()],
            rows: 0,
        }
    }

    /// Returns how many rows are buffered.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Tells whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends the row of one observation.
    pub fn append(&mut self, observation: &Observation<'_>, keys: &ObservationKeys<'_>) {
        let columns = self.plan.columns.iter().zip(&self.context_tags);
        for (((column, tag), builder), withheld) in
            columns.zip(&mut self.builders).zip(&mut self.withheld)
        {
            let cell = Cell {
                column,
                context: tag.as_ref(),
                withheld,
            };
            append_column(builder, cell, observation, keys);
        }
        self.rows += 1;
    }

    /// Hands out the counts of kept values left out (field, reason, count) and starts afresh.
    pub fn take_withheld(&mut self) -> Vec<(Field, Withheld, u64)> {
        let mut taken = Vec::new();
        for (column, counts) in self.plan.columns.iter().zip(&mut self.withheld) {
            for reason in Withheld::ALL {
                let count = std::mem::take(&mut counts[reason.index()]);
                if count > 0 {
                    taken.push((column.field, reason, count));
                }
            }
        }
        taken
    }

    /// Hands out the buffered rows and starts afresh.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        self.rows = 0;
        // Builders were made from this schema, so types and lengths match.
        RecordBatch::try_new(self.schema.clone(), arrays)
            .unwrap_or_else(|error| unreachable!("builders follow the schema: {error}"))
    }
}

fn key_of<'k>(scope: Scope, keys: &ObservationKeys<'k>) -> Option<&'k KeyBytes> {
    match scope {
        Scope::Subject => keys.subject,
        Scope::Installation => keys.installation,
        Scope::Device => Some(keys.device),
        Scope::Dataset => Some(keys.dataset),
        Scope::Quarantine => None,
    }
}

fn append_pseudonym(
    builder: &mut StringBuilder,
    key: Option<&KeyBytes>,
    context: Option<&ContextTag>,
    id: Option<&str>,
) {
    match (key, context, id) {
        (Some(key), Some(context), Some(id)) => {
            let mut buffer = [0u8; PSEUDONYM_HEX_LEN];
            builder.append_value(hex_into(&pseudonym(key, context, id), &mut buffer));
        }
        _ => builder.append_null(),
    }
}

/// One cell being appended: its column, the column's context tag and withheld counts.
struct Cell<'c> {
    column: &'c Column,
    context: Option<&'c ContextTag>,
    withheld: &'c mut [u64; Withheld::ALL.len()],
}

impl Cell<'_> {
    /// Passes a kept value through its domain check, counting it when it is left out.
    fn admit<T>(
        &mut self,
        value: Option<T>,
        check: impl FnOnce(&T) -> Option<Result<(), Withheld>>,
    ) -> Option<T> {
        let value = value?;
        match check(&value) {
            Some(Err(reason)) => {
                self.withheld[reason.index()] += 1;
                None
            }
            _ => Some(value),
        }
    }

    fn admit_str<'v>(
        &mut self,
        domain: Option<&Domain>,
        value: Option<&'v str>,
    ) -> Option<&'v str> {
        self.admit(value, |text| domain.map(|domain| domain.admit_str(text)))
    }

    fn admit_number(&mut self, domain: Option<&Domain>, value: Option<f64>) -> Option<f64> {
        self.admit(value, |number| {
            domain.map(|domain| domain.admit_number(*number))
        })
    }
}

fn append_column(
    builder: &mut ColumnBuilder,
    mut cell: Cell<'_>,
    observation: &Observation<'_>,
    keys: &ObservationKeys<'_>,
) {
    let column = cell.column;
    let context = cell.context;
    let value = value_of(observation, column.field);
    let domain = match &column.action {
        Action::Keep { domain } => domain.as_ref(),
        _ => None,
    };
    match (builder, &column.action, value) {
        (ColumnBuilder::Utf8(b), Action::Pseudonymise { scope, .. }, Value::Str(id)) => {
            append_pseudonym(b, key_of(*scope, keys), context, id);
        }
        (ColumnBuilder::Utf8List(b), Action::Pseudonymise { scope, .. }, Value::StrList(ids)) => {
            if ids.is_empty() {
                b.append_null();
                return;
            }
            for (index, id) in ids.iter().enumerate() {
                // Component serials are hashed under each component's own device key.
                let key = if column.field == Field::ComponentSerials {
                    keys.components.get(index).copied()
                } else {
                    key_of(*scope, keys)
                };
                append_pseudonym(b.values(), key, context, Some(id));
            }
            b.append(true);
        }
        (ColumnBuilder::Utf8(b), _, Value::Str(text)) => {
            b.append_option(cell.admit_str(domain, text));
        }
        (ColumnBuilder::Float(b), Action::Grid { grid }, Value::Float(number)) => {
            b.append_option(number.map(|n| floor_to_grid(n, *grid)));
        }
        (ColumnBuilder::Float(b), _, Value::Float(number)) => {
            b.append_option(cell.admit_number(domain, number));
        }
        (ColumnBuilder::Int(b), _, Value::Int(number)) => {
            let admitted = cell.admit_number(domain, number.map(|n| n as f64));
            b.append_option(number.filter(|_| admitted.is_some()));
        }
        (ColumnBuilder::Timestamp(b), Action::Truncate { unit }, Value::Timestamp(micros)) => {
            b.append_option(micros.map(|m| truncate_micros(m, *unit)));
        }
        (ColumnBuilder::Timestamp(b), _, Value::Timestamp(micros)) => b.append_option(micros),
        (ColumnBuilder::Utf8List(b), _, Value::StrList(items)) => {
            if items.is_empty() {
                b.append_null();
                return;
            }
            for item in items {
                b.values().append_option(cell.admit_str(domain, Some(item)));
            }
            b.append(true);
        }
        (ColumnBuilder::FloatList(b), _, Value::FloatList(items)) => match items {
            Some(items) => {
                for item in items {
                    b.values()
                        .append_option(cell.admit_number(domain, Some(*item)));
                }
                b.append(true);
            }
            None => b.append_null(),
        },
        (builder, action, _) => unreachable!(
            "column {} has builder {} for action {action:?}",
            column.name,
            builder_name(builder)
        ),
    }
}

fn builder_name(builder: &ColumnBuilder) -> &'static str {
    match builder {
        ColumnBuilder::Utf8(_) => "utf8",
        ColumnBuilder::Float(_) => "float",
        ColumnBuilder::Int(_) => "int",
        ColumnBuilder::Timestamp(_) => "timestamp",
        ColumnBuilder::Utf8List(_) => "utf8 list",
        ColumnBuilder::FloatList(_) => "float list",
    }
}

#[cfg(test)]
mod tests;
