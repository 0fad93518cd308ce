use std::borrow::Cow;

/// Holds one valid, normalised charger observation, borrowing from the input bytes.
///
/// Identifiers are already normalised (privacy model, "normalisation is part
/// of the contract"); timestamps are UTC microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation<'a> {
    /// Normalised `observation_id` (lower-case).
    pub observation_id: Cow<'a, str>,
    /// `observed_at` in UTC microseconds.
    pub observed_at_us: i64,
    /// What the charger saw or did.
    pub kind: Kind,
    /// The device.
    pub charger: Charger<'a>,
    /// The site, when known.
    pub installation: Option<Installation<'a>>,
    /// The person linked to the observation, when any.
    pub user: Option<User<'a>>,
    /// The charging session, on session events.
    pub session: Option<Session<'a>>,
    /// Meter readings.
    pub meter: Option<Meter>,
    /// Charger status.
    pub status: Option<Status<'a>>,
    /// The third-party charge point operator.
    pub operator: Option<Operator<'a>>,
    /// Network data.
    pub network: Option<Network<'a>>,
}

/// Lists the `kind` values of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Kind {
    SessionStart,
    SessionStop,
    MeterReading,
    Status,
    Fault,
    Heartbeat,
}

impl Kind {
    /// Parses a spec `kind` string.
    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "session_start" => Kind::SessionStart,
            "session_stop" => Kind::SessionStop,
            "meter_reading" => Kind::MeterReading,
            "status" => Kind::Status,
            "fault" => Kind::Fault,
            "heartbeat" => Kind::Heartbeat,
            _ => return None,
        })
    }

    /// Returns the spec string of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::SessionStop => "session_stop",
            Kind::MeterReading => "meter_reading",
            Kind::Status => "status",
            Kind::Fault => "fault",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

/// Describes the charger (device identifiers).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Charger<'a> {
    /// Normalised serial (trimmed, upper-case).
    pub serial: Cow<'a, str>,
    /// Model name.
    pub model: Option<Cow<'a, str>>,
    /// Firmware version.
    pub firmware: Option<Cow<'a, str>>,
    /// Attached components, such as energy meters.
    pub components: Vec<Component<'a>>,
}

/// Describes a component attached to a charger.
#[derive(Debug, Clone, PartialEq)]
pub struct Component<'a> {
    /// Component kind, e.g. `sense`.
    pub kind: Option<Cow<'a, str>>,
    /// Normalised serial (trimmed, upper-case).
    pub serial: Cow<'a, str>,
}

/// Describes the site of the charger.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Installation<'a> {
    /// Normalised installation id (lower-case UUID).
    pub id: Option<Cow<'a, str>>,
    /// Free-text site name.
    pub site_name: Option<Cow<'a, str>>,
    /// Free-text address.
    pub address: Option<Cow<'a, str>>,
    /// Latitude, WGS84.
    pub lat: Option<f64>,
    /// Longitude, WGS84.
    pub lon: Option<f64>,
    /// ISO 3166 alpha-2 country.
    pub country: Option<Cow<'a, str>>,
    /// `house`, `apartment` or `commercial`.
    pub property_type: Option<Cow<'a, str>>,
}

/// Describes the person linked to an observation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User<'a> {
    /// Normalised account id (lower-case UUID).
    pub account_id: Option<Cow<'a, str>>,
    /// Normalised e-mail (trimmed, lower-case).
    pub email: Option<Cow<'a, str>>,
    /// Name (trimmed).
    pub name: Option<Cow<'a, str>>,
    /// Phone (blanks removed).
    pub phone: Option<Cow<'a, str>>,
    /// Normalised RFID tag (lower-case, blanks removed).
    pub rfid: Option<Cow<'a, str>>,
    /// Roles of the user at the installation.
    pub roles: Vec<Cow<'a, str>>,
}

impl User<'_> {
    /// Returns the subject this user denotes: the account, else the RFID tag.
    pub fn subject(&self) -> Option<SubjectId<'_>> {
        if let Some(account) = &self.account_id {
            return Some(SubjectId::Account(account));
        }
        self.rfid.as_deref().map(SubjectId::Rfid)
    }
}

/// Names the entity that is the subject of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectId<'a> {
    /// A normalised account id.
    Account(&'a str),
    /// A normalised RFID tag with no account: an anonymous tag is its own subject.
    Rfid(&'a str),
}

/// Describes a charging session.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Session<'a> {
    /// Normalised session id (lower-case UUID).
    pub id: Option<Cow<'a, str>>,
    /// Start, UTC microseconds.
    pub started_at_us: Option<i64>,
    /// End, UTC microseconds.
    pub ended_at_us: Option<i64>,
    /// Energy delivered in the session.
    pub energy_wh: Option<f64>,
    /// Maximum current.
    pub max_current_a: Option<f64>,
    /// Number of phases, 1..=3.
    pub phases: Option<i64>,
}

/// Holds meter readings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meter {
    /// Lifetime energy counter.
    pub energy_total_wh: Option<f64>,
    /// Instant power.
    pub power_w: Option<f64>,
    /// Per-phase voltage, 1..=3 values.
    pub voltage_v: Option<Vec<f64>>,
    /// Per-phase current, 1..=3 values.
    pub current_a: Option<Vec<f64>>,
}

/// Holds the charger status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status<'a> {
    /// State name.
    pub state: Option<Cow<'a, str>>,
    /// Fault code, when faulted.
    pub fault_code: Option<Cow<'a, str>>,
    /// Temperature in degrees Celsius.
    pub temperature_c: Option<f64>,
}

/// Names the third-party operator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Operator<'a> {
    /// Charge point operator id.
    pub cpo_id: Option<Cow<'a, str>>,
}

/// Holds network data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Network<'a> {
    /// IP address the charger connected from (personal data).
    pub ip: Option<Cow<'a, str>>,
    /// Signal strength.
    pub signal_dbm: Option<i64>,
}
