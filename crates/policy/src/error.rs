use std::fmt;

/// Explains why a policy was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid TOML of the policy shape.
    #[error("policy file does not parse: {message}")]
    Parse {
        /// The parser's message (it quotes the policy file, never input data).
        message: String,
    },
    /// The policy parsed but breaks one or more rules; all are listed.
    #[error("policy refused:\n{}", Problems(.problems))]
    Invalid {
        /// Every problem found, one per line.
        problems: Vec<String>,
    },
}

struct Problems<'a>(&'a [String]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, PolicyError>;
