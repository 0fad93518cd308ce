//! The values a kept column may take. A kept value outside its domain is not
//! copied (the cell is null) and is counted by field and reason — so a
//! producer putting a name, an e-mail or an address into a code field never
//! gets it into an output.

use std::collections::BTreeSet;

use regex::Regex;

/// Longest pattern-checked string a policy may allow.
pub const MAX_DOMAIN_LEN: usize = 128;

/// Describes what a kept column may hold.
#[derive(Debug, Clone)]
pub enum Domain {
    /// Exactly one of these strings.
    Values(BTreeSet<String>),
    /// A string of at most `max_len` bytes matching the whole pattern.
    Pattern {
        /// The pattern as written in the policy.
        source: String,
        /// The pattern, anchored at both ends.
        regex: Regex,
        /// The longest value admitted, in bytes.
        max_len: usize,
    },
    /// A finite number within `min..=max`.
    Range {
        /// The smallest value admitted.
        min: f64,
        /// The largest value admitted.
        max: f64,
    },
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Domain::Values(a), Domain::Values(b)) => a == b,
            (
                Domain::Pattern {
                    source: a,
                    max_len: la,
                    ..
                },
                Domain::Pattern {
                    source: b,
                    max_len: lb,
                    ..
                },
            ) => a == b && la == lb,
            (Domain::Range { min: a, max: b }, Domain::Range { min: c, max: d }) => {
                a == c && b == d
            }
            _ => false,
        }
    }
}

/// Why a kept value was not copied; a metric label and a summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Withheld {
    /// Not one of the enumerated values.
    NotInVocabulary,
    /// Longer than the domain's `max_len`.
    TooLong,
    /// Does not match the domain's pattern.
    NoMatch,
    /// Not a finite number within the range.
    OutOfRange,
    /// A microaggregated number without `k` chargers to share a mean with.
    FewerThanK,
}

impl Withheld {
    /// Every reason, in a fixed order.
    pub const ALL: [Withheld; 5] = [
        Withheld::NotInVocabulary,
        Withheld::TooLong,
        Withheld::NoMatch,
        Withheld::OutOfRange,
        Withheld::FewerThanK,
    ];

    /// Returns the label used in metrics and the run summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::NotInVocabulary => "not_in_vocabulary",
            Withheld::TooLong => "too_long",
            Withheld::NoMatch => "no_match",
            Withheld::OutOfRange => "out_of_range",
            Withheld::FewerThanK => "fewer_than_k",
        }
    }

    /// Returns the position of the reason in [`Withheld::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Domain {
    /// Builds a pattern domain; the pattern must match the whole value.
    pub fn pattern(source: &str, max_len: usize) -> Result<Domain, String> {
        if !(1..=MAX_DOMAIN_LEN).contains(&max_len) {
            return Err(format!("max_len must be 1..={MAX_DOMAIN_LEN}"));
        }
        let regex = Regex::new(&format!("^(?:{source})$"))
            .map_err(|_| format!("pattern `{source}` is not a valid regular expression"))?;
        Ok(Domain::Pattern {
            source: source.to_owned(),
            regex,
            max_len,
        })
    }

    /// Checks a string value.
    pub fn admit_str(&self, value: &str) -> Result<(), Withheld> {
        match self {
            Domain::Values(values) if values.contains(value) => Ok(()),
            Domain::Values(_) => Err(Withheld::NotInVocabulary),
            Domain::Pattern { max_len, .. } if value.len() > *max_len => Err(Withheld::TooLong),
            Domain::Pattern { regex, .. } if regex.is_match(value) => Ok(()),
            Domain::Pattern { .. } => Err(Withheld::NoMatch),
            Domain::Range { .. } => Err(Withheld::OutOfRange),
        }
    }

    /// Checks a numeric value.
    pub fn admit_number(&self, value: f64) -> Result<(), Withheld> {
        match self {
            Domain::Range { min, max } if value.is_finite() && (*min..=*max).contains(&value) => {
                Ok(())
            }
            _ => Err(Withheld::OutOfRange),
        }
    }

    /// Describes the domain for schema metadata and `delink validate`.
    pub fn describe(&self) -> String {
        match self {
            Domain::Values(values) => {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                format!("one of {}", values.join("|"))
            }
            Domain::Pattern {
                source, max_len, ..
            } => format!("/{source}/, at most {max_len} bytes"),
            Domain::Range { min, max } => format!("{min}..={max}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_patterns_and_ranges_admit_only_what_they_name() {
        let models = Domain::Values(["go".to_owned(), "pro".to_owned()].into());
        assert_eq!(models.admit_str("go"), Ok(()));
        assert_eq!(
            models.admit_str("Kari Nordmann"),
            Err(Withheld::NotInVocabulary)
        );
        let firmware = Domain::pattern(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", 12).expect("pattern");
        assert_eq!(firmware.admit_str("2.4.1"), Ok(()));
        assert_eq!(firmware.admit_str("x2.4.1"), Err(Withheld::NoMatch));
        assert_eq!(
            firmware.admit_str("2.4.1 kari@example.no"),
            Err(Withheld::TooLong)
        );
        assert_eq!(firmware.admit_str("2.4.1\n"), Err(Withheld::NoMatch));
        let range = Domain::Range {
            min: 0.0,
            max: 10.0,
        };
        assert_eq!(range.admit_number(10.0), Ok(()));
        assert_eq!(range.admit_number(10.5), Err(Withheld::OutOfRange));
        assert_eq!(range.admit_number(f64::NAN), Err(Withheld::OutOfRange));
        assert!(Domain::pattern("(", 4).is_err());
        assert!(Domain::pattern("a", 0).is_err());
    }
}
