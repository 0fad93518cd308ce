//! Turns a decoded observation, the compiled policy and the entity keys into
//! Arrow rows for `history/` and `devices/`.
//!
//! Pure, no IO: keys arrive as plain values ([`ObservationKeys`]) that the
//! pipeline fetched from a key store. The design decision to know: a column
//! only exists because the [`Plan`](delink_policy::Plan) names it, so a field
//! the policy drops or does not know has no code path to an output.

mod batch;
mod generalise;
mod pseudonym;
mod value;

pub use batch::{DatasetBatchBuilder, arrow_schema, distinct_valued_columns};
pub use pseudonym::{ContextTag, PSEUDONYM_HEX_LEN, context_tag, pseudonym, pseudonym_hex};

/// A 256-bit entity key as plain bytes.
pub type KeyBytes = [u8; 32];

/// Holds the keys one observation needs, fetched by the caller.
#[derive(Clone, Copy)]
pub struct ObservationKeys<'k> {
    /// Key of the subject (account, else RFID tag), when the observation has one.
    pub subject: Option<&'k KeyBytes>,
    /// Key of the installation, when the observation names one.
    pub installation: Option<&'k KeyBytes>,
    /// Key of the charger.
    pub device: &'k KeyBytes,
    /// Keys of the charger's components, in component order.
    pub components: &'k [&'k KeyBytes],
    /// Key of the dataset being written (one per dataset).
    pub dataset: &'k KeyBytes,
}

impl std::fmt::Debug for ObservationKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObservationKeys(<redacted>)")
    }
}
