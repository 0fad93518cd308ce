//! Columns as text (the form profiles are compared in) and back.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType};
use delink_policy::format_number;

/// Every row's value as text: numbers with six decimals, lists joined, null as `None`.
pub(crate) fn text(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    Ok(match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|value| value.map(str::to_owned))
            .collect(),
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .iter()
            .map(|value| value.map(format_number))
            .collect(),
        DataType::Int64 => array
            .as_primitive::<Int64Type>()
            .iter()
            .map(|value| value.map(|v| v.to_string()))
            .collect(),
        _ => {
            let array = formattable(array)?;
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            (0..array.len())
                .map(|row| {
                    array
                        .is_valid(row)
                        .then(|| formatter.value(row).to_string())
                })
                .collect()
        }
    })
}

/// The array in a form the text formatter takes: timestamps as microseconds.
pub(crate) fn formattable(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Timestamp(..) => arrow_cast::cast(array, &DataType::Int64),
        _ => Ok(array.clone()),
    }
}

/// Rebuilds a column of `original`'s type from coarsened values: each row's
/// code into the dictionary of values.
pub(crate) fn rebuild(
    original: &ArrayRef,
    values: &[Option<String>],
    codes: &[u32],
) -> Result<ArrayRef, ArrowError> {
    let value = |row: usize| values[codes[row] as usize].as_deref();
    let numbers: Vec<Option<f64>> = values
        .iter()
        .map(|value| value.as_deref().and_then(|v| v.parse().ok()))
        .collect();
    let number = |row: usize| numbers[codes[row] as usize];
    let rows = 0..codes.len();
    Ok(match original.data_type() {
        DataType::Utf8 => Arc::new(rows.map(value).collect::<StringArray>()),
        DataType::Float64 => Arc::new(rows.map(number).collect::<Float64Array>()),
        DataType::Int64 => Arc::new(
            rows.map(|row| number(row).map(|n| n as i64))
                .collect::<Int64Array>(),
        ),
        // Lists are only ever withheld: keep the value where one survived.
        _ => {
            let withheld: BooleanArray = rows
                .map(|row| Some(value(row).is_none() && original.is_valid(row)))
                .collect();
            arrow_select::nullif::nullif(original.as_ref(), &withheld)?
        }
    })
}
