//! Columns as text (the form profiles are compared in), dictionary-coded, and back.

use std::fmt::Write;
use std::hash::Hash;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType};
use delink_policy::format_number;
use rustc_hash::FxHashMap;

/// Distinct values as text (null as `None`), each with its code: the order
/// in which they were first seen.
#[derive(Default)]
pub(crate) struct Dictionary {
    pub(crate) values: Vec<Option<String>>,
    by_text: FxHashMap<String, u32>,
    null: Option<u32>,
}

impl Dictionary {
    /// The code of a value, a new one when it was never seen.
    pub(crate) fn code(&mut self, text: Option<&str>) -> u32 {
        let next = self.values.len() as u32;
        let code = match text {
            None => *self.null.get_or_insert(next),
            Some(text) => match self.by_text.get(text) {
                Some(code) => *code,
                None => {
                    self.by_text.insert(text.to_owned(), next);
                    next
                }
            },
        };
        if code == next {
            self.values.push(text.map(str::to_owned));
        }
        code
    }
}

/// The text of `rows` of a column, coded into a new dictionary: numbers with
/// six decimals, lists and other types as displayed, null as `None`.
pub(crate) fn coded(array: &ArrayRef, rows: &[u32]) -> Result<(Dictionary, Vec<u32>), ArrowError> {
    let mut dictionary = Dictionary::default();
    let rows = rows.iter().map(|row| *row as usize);
    let codes = match array.data_type() {
        DataType::Utf8 => {
            let array = array.as_string::<i32>();
            codes_by_key(
                rows,
                &mut dictionary,
                |row| array.is_valid(row).then(|| array.value(row)),
                |value| value.map(str::to_owned),
            )
        }
        DataType::Float64 => {
            let array = array.as_primitive::<Float64Type>();
            codes_by_key(
                rows,
                &mut dictionary,
                |row| array.is_valid(row).then(|| array.value(row).to_bits()),
                |bits| bits.map(|bits| format_number(f64::from_bits(bits))),
            )
        }
        DataType::Int64 => {
            let array = array.as_primitive::<Int64Type>();
            codes_by_key(
                rows,
                &mut dictionary,
                |row| array.is_valid(row).then(|| array.value(row)),
                |value| value.map(|value| value.to_string()),
            )
        }
        _ => {
            let array = formattable(array)?;
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            let mut text = String::new();
            let mut codes = Vec::with_capacity(rows.len());
            for row in rows {
                if array.is_valid(row) {
                    text.clear();
                    write!(text, "{}", formatter.value(row))
                        .map_err(|error| ArrowError::ComputeError(error.to_string()))?;
                    codes.push(dictionary.code(Some(&text)));
                } else {
                    codes.push(dictionary.code(None));
                }
            }
            codes
        }
    };
    Ok((dictionary, codes))
}

/// Codes rows through a cheap key of their value, rendering the text only for
/// a key not seen before (two keys may render alike: the text decides).
fn codes_by_key<K: Hash + Eq + Copy>(
    rows: impl ExactSizeIterator<Item = usize>,
    dictionary: &mut Dictionary,
    key: impl Fn(usize) -> Option<K>,
    text: impl Fn(Option<K>) -> Option<String>,
) -> Vec<u32> {
    let mut seen: FxHashMap<Option<K>, u32> = FxHashMap::default();
    let mut codes = Vec::with_capacity(rows.len());
    for row in rows {
        let key = key(row);
        let code = *seen
            .entry(key)
            .or_insert_with(|| dictionary.code(text(key).as_deref()));
        codes.push(code);
    }
    codes
}

/// Every row's value as text: numbers with six decimals, lists joined, null as `None`.
#[cfg(test)]
pub(crate) fn text(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let rows: Vec<u32> = (0..array.len() as u32).collect();
    let (dictionary, codes) = coded(array, &rows)?;
    Ok(codes
        .into_iter()
        .map(|code| dictionary.values[code as usize].clone())
        .collect())
}

/// The array in a form the text formatter takes: timestamps as microseconds.
pub(crate) fn formattable(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Timestamp(..) => arrow_cast::cast(array, &DataType::Int64),
        _ => Ok(array.clone()),
    }
}

/// Rebuilds `rows` of a column of `original`'s type from coarsened values:
/// each row's code into the dictionary of values.
pub(crate) fn rebuild(
    original: &ArrayRef,
    rows: &[u32],
    values: &[Option<String>],
    codes: &[u32],
) -> Result<ArrayRef, ArrowError> {
    let value = |row: usize| values[codes[row] as usize].as_deref();
    let numbers: Vec<Option<f64>> = values
        .iter()
        .map(|value| value.as_deref().and_then(|v| v.parse().ok()))
        .collect();
    let number = |row: usize| numbers[codes[row] as usize];
    let positions = 0..codes.len();
    Ok(match original.data_type() {
        DataType::Utf8 => Arc::new(positions.map(value).collect::<StringArray>()),
        DataType::Float64 => Arc::new(positions.map(number).collect::<Float64Array>()),
        DataType::Int64 => Arc::new(
            positions
                .map(|row| number(row).map(|n| n as i64))
                .collect::<Int64Array>(),
        ),
        // Lists are only ever withheld: keep the value where one survived.
        _ => {
            let original = arrow_select::take::take(
                original.as_ref(),
                &UInt32Array::from(rows.to_vec()),
                None,
            )?;
            let withheld: BooleanArray = positions
                .map(|row| Some(value(row).is_none() && original.is_valid(row)))
                .collect();
            arrow_select::nullif::nullif(original.as_ref(), &withheld)?
        }
    })
}
