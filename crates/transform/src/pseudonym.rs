//! The pseudonym construction (see `docs/privacy.md`).
//!
//! `pseudonym = BLAKE3-keyed(entity_key, BLAKE3(context)[..16] ‖ normalised_id)`,
//! truncated to 128 bits and written as 32 lower-case hex characters. The
//! context names dataset and field, so the same identifier gives unrelated
//! pseudonyms in different columns; its digest has a fixed length, so the
//! encoding of (context, identifier) is unambiguous, and identifiers up to
//! 48 bytes cost a single BLAKE3 compression.

use crate::KeyBytes;

/// Width of a pseudonym in hex characters (128 bits).
pub const PSEUDONYM_HEX_LEN: usize = 32;

/// The fixed-length digest of a column's derivation context.
pub type ContextTag = [u8; 16];

/// Digests a derivation context; done once per column, not per value.
pub fn context_tag(context: &str) -> ContextTag {
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&blake3::hash(context.as_bytes()).as_bytes()[..16]);
    tag
}

/// Computes the 128-bit pseudonym of a normalised identifier.
pub fn pseudonym(key: &KeyBytes, context: &ContextTag, normalised_id: &str) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(context);
    hasher.update(normalised_id.as_bytes());
    let digest = hasher.finalize();
    let mut truncated = [0u8; 16];
    truncated.copy_from_slice(&digest.as_bytes()[..16]);
    truncated
}

/// Computes a pseudonym as it is written to Parquet: 32 lower-case hex characters.
pub fn pseudonym_hex(key: &KeyBytes, context: &str, normalised_id: &str) -> String {
    let mut buffer = [0u8; PSEUDONYM_HEX_LEN];
    hex_into(
        &pseudonym(key, &context_tag(context), normalised_id),
        &mut buffer,
    )
    .to_owned()
}

/// Writes `bytes` as lower-case hex into `buffer` and returns it as text.
pub(crate) fn hex_into<'b>(bytes: &[u8; 16], buffer: &'b mut [u8; PSEUDONYM_HEX_LEN]) -> &'b str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in buffer.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    // Only ASCII hex digits were written, so this cannot fail.
    std::str::from_utf8(buffer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_answer() {
        // Pins the construction: changing it would re-key every dataset.
        let hex = pseudonym_hex(
            &[7; 32],
            "delink pseudonym v1 history/user.rfid",
            "04a224b2c13f80",
        );
        assert_eq!(hex.len(), PSEUDONYM_HEX_LEN);
        let context = blake3::hash(b"delink pseudonym v1 history/user.rfid");
        let mut hasher = blake3::Hasher::new_keyed(&[7; 32]);
        hasher.update(&context.as_bytes()[..16]);
        hasher.update(b"04a224b2c13f80");
        let expected: String = hasher.finalize().as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, expected);
    }

    proptest! {
        #[test]
        fn deterministic_and_separated(id in "[a-z0-9]{1,40}", key in any::<[u8; 32]>()) {
            let (ctx_a, ctx_b) = (context_tag("ctx/a"), context_tag("ctx/b"));
            let a = pseudonym(&key, &ctx_a, &id);
            prop_assert_eq!(a, pseudonym(&key, &ctx_a, &id));
            prop_assert_ne!(a, pseudonym(&key, &ctx_b, &id));
            let mut other_key = key;
            other_key[0] ^= 1;
            prop_assert_ne!(a, pseudonym(&other_key, &ctx_a, &id));
        }

        #[test]
        fn context_boundary_is_unambiguous(id in "[a-z]{1,10}") {
            // ("ab", "c…") and ("a", "bc…") must not collide.
            let key = [1; 32];
            prop_assert_ne!(
                pseudonym(&key, &context_tag("ab"), &id),
                pseudonym(&key, &context_tag("a"), &format!("b{id}"))
            );
        }
    }
}
