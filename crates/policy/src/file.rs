//! The on-disk shape of `config/policy.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::anonymity::AnonymityRules;

/// Mirrors the policy file before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; only `1` exists.
    pub version: u32,
    /// Rules for `history/`.
    pub history: DatasetRules,
    /// Rules for `devices/`.
    pub devices: DatasetRules,
}

/// Maps every input field path to its rule for one dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRules {
    /// Field path → rule.
    pub fields: BTreeMap<String, FieldRule>,
    /// k-anonymity of device profiles (`devices` only).
    pub anonymity: Option<AnonymityRules>,
}

/// Says what to do with one field: a bare action name, or a table with parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FieldRule {
    /// `"keep"` or `"drop"`.
    Bare(String),
    /// `{ action = "...", scope = ..., grid = ..., truncate = ..., column = ..., values |
    /// pattern + max_len | range = ... }`.
    Detailed(DetailedRule),
}

/// Holds a rule with parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedRule {
    /// `keep`, `drop`, `pseudonymise` or `generalise`.
    pub action: String,
    /// Key scope for `pseudonymise`.
    pub scope: Option<String>,
    /// Grid step in degrees (or units) for numeric `generalise`.
    pub grid: Option<f64>,
    /// Unit for timestamp `generalise`: `second`, `minute`, `hour`, `day`.
    pub truncate: Option<String>,
    /// Output column name, when the default does not suit.
    pub column: Option<String>,
    /// For a kept string: the only values it may take.
    pub values: Option<Vec<String>>,
    /// For a kept string: a pattern the whole value must match (with `max_len`).
    pub pattern: Option<String>,
    /// For a kept string with a `pattern`: its longest length, in bytes.
    pub max_len: Option<usize>,
    /// For a kept number: `[min, max]`, both finite.
    pub range: Option<[f64; 2]>,
}
