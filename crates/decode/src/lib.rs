//! Turns the bytes of one input record into a validated, normalised
//! [`Observation`] or a bounded [`Rejection`] — never a panic, never a silent
//! drop.
//!
//! Sits between a source (NDJSON lines, Kafka values) and `transform`; pure,
//! no IO. The design decision to know: the JSON is read into a shadow struct
//! in which every field is optional and borrowed from the input (read by hand,
//! see `shadow`), and the contract is checked afterwards, so a missing field, a wrong type and a bad
//! value get distinct reasons, and no error text (which could quote input)
//! ever leaves this crate.

mod normalise;
mod raw;
mod shadow;
mod unknown;
mod validate;

pub use unknown::UNKNOWN_FIELD_UNNAMEABLE;

use delink_model::{Observation, Rejection, RejectionReason};

pub use delink_model::SCHEMA_V1;

/// Normalises an identifier given by an operator (erasure, export) exactly as
/// the decoder normalises that field; `None` for a field that is not an identifier.
pub fn normalise_identifier(field: delink_model::Field, value: &str) -> Option<String> {
    use delink_model::Field;
    use std::borrow::Cow;
    let value = Cow::Borrowed(value);
    let normal = match field {
        Field::UserAccountId | Field::InstallationId => normalise::lower(value),
        Field::UserRfid => normalise::compact_lower(value),
        Field::ChargerSerial => normalise::upper(value),
        _ => return None,
    };
    Some(normal.into_owned())
}

/// Bounds what one record may cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Records longer than this are rejected as `too_large` before parsing.
    pub max_record_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_record_bytes: 64 * 1024,
        }
    }
}

/// Holds a decoded observation and the names of the fields the contract does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    /// The validated, normalised observation.
    pub observation: Observation<'a>,
    /// Dotted paths of unknown fields (sanitised; never copied to any output).
    pub unknown_fields: Vec<String>,
}

/// Decodes one record.
pub fn decode<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Decoded<'a>, Rejection> {
    if bytes.len() > limits.max_record_bytes {
        return Err(Rejection::new(RejectionReason::TooLarge));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Rejection::new(RejectionReason::NotUtf8))?;
    let mut unknown_fields = Vec::new();
    let raw = raw::parse(text, |path| unknown_fields.push(path))?;
    let observation = validate::validate(raw)?;
    Ok(Decoded {
        observation,
        unknown_fields,
    })
}

#[cfg(test)]
mod tests;
