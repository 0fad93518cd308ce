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

/// Rebuilds a column of `original`'s type from coarsened text values.
pub(crate) fn rebuild(
    original: &ArrayRef,
    parts: &[Option<String>],
) -> Result<ArrayRef, ArrowError> {
    Ok(match original.data_type() {
        DataType::Utf8 => Arc::new(parts.iter().map(Option::as_deref).collect::<StringArray>()),
        DataType::Float64 => Arc::new(
            parts
                .iter()
                .map(|part| part.as_deref().and_then(|p| p.parse::<f64>().ok()))
                .collect::<Float64Array>(),
        ),
        DataType::Int64 => Arc::new(
            parts
                .iter()
                .map(|part| {
                    let number = part.as_deref().and_then(|p| p.parse::<f64>().ok())?;
                    Some(number as i64)
                })
                .collect::<Int64Array>(),
        ),
        // Lists are only ever withheld: keep the value where the text survived.
        _ => {
            let withheld: BooleanArray = parts
                .iter()
                .enumerate()
                .map(|(row, part)| Some(part.is_none() && original.is_valid(row)))
                .collect();
            arrow_select::nullif::nullif(original.as_ref(), &withheld)?
        }
    })
}
