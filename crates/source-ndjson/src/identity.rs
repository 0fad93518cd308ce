//! Source identities: what makes output file names unique to their input.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::Identity;

/// Hex digits of an identity: 64 bits, so distinct inputs never meet in practice.
const IDENTITY_HEX_DIGITS: usize = 16;

/// Names a file by a digest of its whole content (not its path): the same bytes
/// anywhere give the same identity, changed bytes a different one.
pub fn content_identity(path: &Path) -> io::Result<Identity> {
    let mut hasher = blake3::Hasher::new_derive_key("delink ndjson source identity v1");
    hasher.update_reader(File::open(path)?)?;
    Ok(hex_prefix(hasher.finalize().as_bytes()))
}

/// Draws a random identity, for input that cannot be read twice (stdin).
pub fn fresh_identity() -> io::Result<Identity> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| io::Error::other(error.to_string()))?;
    Ok(hex_prefix(&bytes))
}

fn hex_prefix(bytes: &[u8]) -> Identity {
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    hex[..IDENTITY_HEX_DIGITS.min(hex.len())].into()
}
