/// Names the kind of entity a key belongs to (privacy model, "key scopes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A person: `user.account_id`, else the normalised `user.rfid`.
    Subject,
    /// A site: `installation.id`.
    Installation,
    /// A charger or component, by serial.
    Device,
    /// One key per output dataset, for identifiers that name no entity.
    Dataset,
    /// One key per UTC day of quarantined records.
    Quarantine,
}

impl Scope {
    /// Every scope, in a fixed order.
    pub const ALL: [Scope; 5] = [
        Scope::Subject,
        Scope::Installation,
        Scope::Device,
        Scope::Dataset,
        Scope::Quarantine,
    ];

    /// Returns the lowercase name used in policy files and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Subject => "subject",
            Scope::Installation => "installation",
            Scope::Device => "device",
            Scope::Dataset => "dataset",
            Scope::Quarantine => "quarantine",
        }
    }

    /// Returns the stable one-byte code used in key-store records and lookup tags.
    pub fn code(self) -> u8 {
        match self {
            Scope::Subject => 1,
            Scope::Installation => 2,
            Scope::Device => 3,
            Scope::Dataset => 4,
            Scope::Quarantine => 5,
        }
    }

    /// Parses a code written by [`Scope::code`].
    pub fn from_code(code: u8) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.code() == code)
    }

    /// Parses a policy-file name written by [`Scope::as_str`].
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::from_code(scope.code()), Some(scope));
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::from_code(0), None);
        assert_eq!(Scope::parse("person"), None);
    }
}
