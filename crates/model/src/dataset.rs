/// Names one of the two outputs (privacy model, "the two outputs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    /// Identifiable (pseudonymised) charging history: observations linked to a subject.
    History,
    /// De-linked device records: every valid observation, no subject-linked column.
    Devices,
}

impl Dataset {
    /// Both datasets, in output order.
    pub const ALL: [Dataset; 2] = [Dataset::History, Dataset::Devices];

    /// Returns the directory and policy-section name of the dataset.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::History => "history",
            Dataset::Devices => "devices",
        }
    }
}
