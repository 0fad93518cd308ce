//! Names for unknown fields that are safe to count.
//!
//! A field *name* comes from the input, and a hostile or careless producer
//! could put personal data in one (`{"kari@example.no": 1}`). Names are kept
//! only when they look like schema field names; anything else is counted
//! under one placeholder.

use serde_ignored::Path;

/// The name under which unknown fields with unusual names are counted.
pub const UNKNOWN_FIELD_UNNAMEABLE: &str = "(unnameable)";

const MAX_NAME_BYTES: usize = 64;

/// Builds the dotted path of an ignored field, without array indices.
pub(crate) fn field_name(path: &Path<'_>) -> String {
    let mut segments = Vec::new();
    collect_segments(path, &mut segments);
    let name = segments.join(".");
    if is_schema_like(&name) {
        name
    } else {
        UNKNOWN_FIELD_UNNAMEABLE.to_owned()
    }
}

fn collect_segments(path: &Path<'_>, segments: &mut Vec<String>) {
    match path {
        Path::Root => {}
        Path::Seq { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => collect_segments(parent, segments),
        Path::Map { parent, key } => {
            collect_segments(parent, segments);
            segments.push(key.clone());
        }
    }
}

fn is_schema_like(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        && name.as_bytes()[0].is_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_like_names_pass_and_others_are_masked() {
        assert!(is_schema_like("driver_license"));
        assert!(is_schema_like("user.driver_license"));
        assert!(!is_schema_like("kari@example.no"));
        assert!(!is_schema_like("Kari Nordmann"));
        assert!(!is_schema_like(""));
        assert!(!is_schema_like(&"a".repeat(65)));
    }
}
