//! Rows picked from arrays in a given order and copied out one chunk at a time,
//! so that a sorted copy of a whole day never has to sit in memory.

use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{ArrowError, SchemaRef};
use arrow_select::take::take;

/// A batch to be: each column's values, and the positions to take from them
/// in output order.
pub struct Gathered {
    schema: SchemaRef,
    columns: Vec<(ArrayRef, UInt32Array)>,
    rows: usize,
}

impl Gathered {
    /// Gathers `columns` (values, positions) into rows of `schema`; every
    /// column must pick the same number of rows, and there must be one per field.
    pub fn new(
        schema: SchemaRef,
        columns: Vec<(ArrayRef, UInt32Array)>,
    ) -> Result<Gathered, ArrowError> {
        let rows = columns.first().map_or(0, |(_, positions)| positions.len());
        if columns.len() != schema.fields().len()
            || columns.iter().any(|(_, positions)| positions.len() != rows)
        {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{} columns of unequal lengths gathered into {} fields",
                columns.len(),
                schema.fields().len()
            )));
        }
        Ok(Gathered {
            schema,
            columns,
            rows,
        })
    }

    /// Every row of `batch`, taken at `positions`.
    pub fn from_batch(batch: &RecordBatch, positions: UInt32Array) -> Result<Gathered, ArrowError> {
        let columns = batch
            .columns()
            .iter()
            .map(|column| (column.clone(), positions.clone()))
            .collect();
        Gathered::new(batch.schema(), columns)
    }

    /// How many rows there are.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Copies out `len` rows from `offset` (in output order).
    pub fn slice(&self, offset: usize, len: usize) -> Result<RecordBatch, ArrowError> {
        let arrays = self
            .columns
            .iter()
            .map(|(values, positions)| take(values.as_ref(), &positions.slice(offset, len), None))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }

    /// Copies out the rows in order, at most `chunk_rows` at a time.
    pub fn chunks(
        &self,
        chunk_rows: usize,
    ) -> impl Iterator<Item = Result<RecordBatch, ArrowError>> + '_ {
        let chunk_rows = chunk_rows.max(1);
        (0..self.rows)
            .step_by(chunk_rows)
            .map(move |offset| self.slice(offset, chunk_rows.min(self.rows - offset)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn chunks_together_are_the_columns_taken_at_their_positions() {
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![10, 11, 12, 13, 14]));
        let letters: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e"]));
        let gathered = Gathered::new(
            schema(),
            vec![
                (numbers, UInt32Array::from(vec![4, 0, 3, 1, 2])),
                (letters, UInt32Array::from(vec![0, 1, 2, 3, 4])),
            ],
        )
        .expect("gathered");
        let chunks: Vec<RecordBatch> = gathered
            .chunks(2)
            .collect::<Result<_, _>>()
            .expect("chunks");
        assert_eq!(
            chunks.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        let numbers: Vec<i64> = chunks
            .iter()
            .flat_map(|chunk| {
                chunk
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(numbers, [14, 10, 13, 11, 12]);
        let letters: Vec<&str> = chunks
            .iter()
            .flat_map(|chunk| chunk.column(1).as_string::<i32>().iter().flatten())
            .collect();
        assert_eq!(letters, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn columns_of_unequal_lengths_are_refused() {
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let letters: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let unequal = Gathered::new(
            schema(),
            vec![
                (numbers, UInt32Array::from(vec![0, 1])),
                (letters, UInt32Array::from(vec![0])),
            ],
        );
        assert!(unequal.is_err());
    }
}
