use std::fmt;

/// Says why an input record was rejected; a bounded set, safe as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectionReason {
    /// The bytes are not valid UTF-8.
    NotUtf8,
    /// The bytes are not a JSON document (garbage or truncated).
    NotJson,
    /// The record exceeds the configured size cap.
    TooLarge,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type, or the document is not an object.
    WrongType,
    /// A timestamp is not RFC 3339 with an offset.
    BadTimestamp,
    /// `schema` names a version this build does not understand.
    UnknownSchema,
    /// `kind` is not one of the spec's kinds.
    UnknownKind,
    /// A number or array length is outside the spec's range.
    OutOfRange,
    /// An identifier is empty or implausibly long.
    BadIdentifier,
}

impl RejectionReason {
    /// Every reason, in a fixed order.
    pub const ALL: [RejectionReason; 10] = [
        RejectionReason::NotUtf8,
        RejectionReason::NotJson,
        RejectionReason::TooLarge,
        RejectionReason::MissingField,
        RejectionReason::WrongType,
        RejectionReason::BadTimestamp,
        RejectionReason::UnknownSchema,
        RejectionReason::UnknownKind,
        RejectionReason::OutOfRange,
        RejectionReason::BadIdentifier,
    ];

    /// Returns the snake_case code written to the quarantine and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::NotUtf8 => "not_utf8",
            RejectionReason::NotJson => "not_json",
            RejectionReason::TooLarge => "too_large",
            RejectionReason::MissingField => "missing_field",
            RejectionReason::WrongType => "wrong_type",
            RejectionReason::BadTimestamp => "bad_timestamp",
            RejectionReason::UnknownSchema => "unknown_schema",
            RejectionReason::UnknownKind => "unknown_kind",
            RejectionReason::OutOfRange => "out_of_range",
            RejectionReason::BadIdentifier => "bad_identifier",
        }
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Describes a rejected record without any of its content.
///
/// `field` names the offending field from the catalogue when one is known;
/// it never holds input data, so a rejection can be logged and stored as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Why the record was rejected.
    pub reason: RejectionReason,
    /// The catalogue path of the offending field, when known.
    pub field: Option<&'static str>,
}

impl Rejection {
    /// Creates a rejection that names no field.
    pub fn new(reason: RejectionReason) -> Self {
        Rejection {
            reason,
            field: None,
        }
    }

    /// Creates a rejection that names the offending field.
    pub fn at(reason: RejectionReason, field: &'static str) -> Self {
        Rejection {
            reason,
            field: Some(field),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{} ({field})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}
