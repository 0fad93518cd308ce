//! Names for unknown fields that are safe to count.
//!
//! A field *name* comes from the input, and a hostile or careless producer
//! could put personal data in one (`{"kari@example.no": 1}`). Names are kept
//! only when every dotted segment looks like a schema word (lower-case
//! letters and `_`, starting with a letter, at most 32 bytes; at most 4
//! segments and 64 bytes in all): digits, which is where tags, serials, IP
//! addresses and phone numbers show, never pass. Anything else is counted
//! under one placeholder.

/// The name under which unknown fields with unusual names are counted.
pub const UNKNOWN_FIELD_UNNAMEABLE: &str = "(unnameable)";

const MAX_NAME_BYTES: usize = 64;

/// The dotted path of unknown field `key` in the object at `parent` (array
/// indices left out), or the placeholder when it does not look like a schema name.
pub(crate) fn field_name(parent: &[&str], key: &str) -> String {
    let mut name = parent.join(".");
    if !name.is_empty() {
        name.push('.');
    }
    name.push_str(key);
    if is_schema_like(&name) {
        name
    } else {
        UNKNOWN_FIELD_UNNAMEABLE.to_owned()
    }
}

const MAX_SEGMENT_BYTES: usize = 32;
const MAX_SEGMENTS: usize = 4;

fn is_schema_like(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES
        && name.split('.').count() <= MAX_SEGMENTS
        && name.split('.').all(is_schema_word)
}

fn is_schema_word(segment: &str) -> bool {
    (1..=MAX_SEGMENT_BYTES).contains(&segment.len())
        && segment.as_bytes()[0].is_ascii_lowercase()
        && segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
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
        for leaky in [
            "user.04a7ee8f2865cf",
            "charger.zap547561",
            "network.212.134.247.231",
            "phone.4791234567",
            "user..name",
            "user.",
            "_hidden",
            "a.b.c.d.e",
            "user.Kari",
        ] {
            assert!(!is_schema_like(leaky), "{leaky}");
        }
        assert!(is_schema_like("meter.energy_total_wh"));
    }
}
