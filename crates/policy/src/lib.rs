//! The field-classification policy: what each dataset does with every input
//! field, checked at startup and compiled into a [`Plan`].
//!
//! Sits between configuration and `transform`; pure, no IO (the caller reads
//! the file). The design decision to know: the policy is deny-by-default and
//! complete — every field of the catalogue must be classified for every
//! dataset, a personal field can never be `keep`, and `devices` can hold no
//! subject-linked column — so a policy that would leak is refused before a
//! single record is read, with every problem listed at once.

mod anonymity;
mod domain;
mod error;
mod file;
mod plan;
mod validate;

pub use anonymity::{Anonymity, AnonymityRules, Generalisation, Step, StepRule, format_number};
pub use domain::{Domain, MAX_DOMAIN_LEN, Withheld};
pub use error::{PolicyError, Result};
pub use file::PolicyFile;
pub use plan::{Action, Column, DatasetPlan, Plan, SortKey, TimeUnit};

/// Parses policy TOML text and validates it into a [`Plan`].
pub fn compile(toml_text: &str) -> Result<Plan> {
    let file: PolicyFile = toml::from_str(toml_text).map_err(|error| PolicyError::Parse {
        message: error.to_string(),
    })?;
    let mut plan = validate::validate(&file)?;
    plan.digest = blake3::hash(toml_text.as_bytes()).to_hex().to_string();
    Ok(plan)
}

#[cfg(test)]
mod tests;
