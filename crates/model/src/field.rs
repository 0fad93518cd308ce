use crate::Scope;

/// Names one field of the input contract (`spec/observation-v1.md`).
///
/// The catalogue is closed: a field that is not a variant here is unknown,
/// and unknown fields are counted, never copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // each variant is documented by its `path()`
pub enum Field {
    Schema,
    ObservationId,
    ObservedAt,
    Kind,
    ChargerSerial,
    ChargerModel,
    ChargerFirmware,
    ComponentKinds,
    ComponentSerials,
    InstallationId,
    InstallationSiteName,
    InstallationAddress,
    InstallationLat,
    InstallationLon,
    InstallationCountry,
    InstallationPropertyType,
    UserAccountId,
    UserEmail,
    UserName,
    UserPhone,
    UserRfid,
    UserRoles,
    SessionId,
    SessionStartedAt,
    SessionEndedAt,
    SessionEnergyWh,
    SessionMaxCurrentA,
    SessionPhases,
    MeterEnergyTotalWh,
    MeterPowerW,
    MeterVoltageV,
    MeterCurrentA,
    StatusState,
    StatusFaultCode,
    StatusTemperatureC,
    OperatorCpoId,
    NetworkIp,
    NetworkSignalDbm,
}

/// Describes the JSON type of a field once decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A short string from a small vocabulary, or an identifier.
    Str,
    /// Free text written by people (names, addresses).
    Text,
    /// A JSON number.
    Float,
    /// A JSON integer.
    Int,
    /// An RFC 3339 timestamp, held as UTC microseconds.
    Timestamp,
    /// An array of strings.
    StrList,
    /// An array of numbers.
    FloatList,
}

/// Classifies a field by what it reveals about a person; it bounds what a policy may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClass {
    /// Device or measurement data: may be kept as is.
    NonPersonal,
    /// An identifier: never written in clear; may be pseudonymised under `scopes`.
    Identifier {
        /// Scopes whose key may hash this identifier.
        scopes: &'static [Scope],
    },
    /// Contact data or free text about a person: never written in clear.
    Personal {
        /// Scopes whose key may hash this value.
        scopes: &'static [Scope],
    },
    /// A precise location: only ever written generalised.
    Location,
}

impl Field {
    /// Every field of the contract, in spec order.
    pub const ALL: [Field; 38] = [
        Field::Schema,
        Field::ObservationId,
        Field::ObservedAt,
        Field::Kind,
        Field::ChargerSerial,
        Field::ChargerModel,
        Field::ChargerFirmware,
        Field::ComponentKinds,
        Field::ComponentSerials,
        Field::InstallationId,
        Field::InstallationSiteName,
        Field::InstallationAddress,
        Field::InstallationLat,
        Field::InstallationLon,
        Field::InstallationCountry,
        Field::InstallationPropertyType,
        Field::UserAccountId,
        Field::UserEmail,
        Field::UserName,
        Field::UserPhone,
        Field::UserRfid,
        Field::UserRoles,
        Field::SessionId,
        Field::SessionStartedAt,
        Field::SessionEndedAt,
        Field::SessionEnergyWh,
        Field::SessionMaxCurrentA,
        Field::SessionPhases,
        Field::MeterEnergyTotalWh,
        Field::MeterPowerW,
        Field::MeterVoltageV,
        Field::MeterCurrentA,
        Field::StatusState,
        Field::StatusFaultCode,
        Field::StatusTemperatureC,
        Field::OperatorCpoId,
        Field::NetworkIp,
        Field::NetworkSignalDbm,
    ];

    /// Returns the dotted input path, as written in policy files.
    pub fn path(self) -> &'static str {
        match self {
            Field::Schema => "schema",
            Field::ObservationId => "observation_id",
            Field::ObservedAt => "observed_at",
            Field::Kind => "kind",
            Field::ChargerSerial => "charger.serial",
            Field::ChargerModel => "charger.model",
            Field::ChargerFirmware => "charger.firmware",
            Field::ComponentKinds => "charger.components.kind",
            Field::ComponentSerials => "charger.components.serial",
            Field::InstallationId => "installation.id",
            Field::InstallationSiteName => "installation.site_name",
            Field::InstallationAddress => "installation.address",
            Field::InstallationLat => "installation.lat",
            Field::InstallationLon => "installation.lon",
            Field::InstallationCountry => "installation.country",
            Field::InstallationPropertyType => "installation.property_type",
            Field::UserAccountId => "user.account_id",
            Field::UserEmail => "user.email",
            Field::UserName => "user.name",
            Field::UserPhone => "user.phone",
            Field::UserRfid => "user.rfid",
            Field::UserRoles => "user.roles",
            Field::SessionId => "session.id",
            Field::SessionStartedAt => "session.started_at",
            Field::SessionEndedAt => "session.ended_at",
            Field::SessionEnergyWh => "session.energy_wh",
            Field::SessionMaxCurrentA => "session.max_current_a",
            Field::SessionPhases => "session.phases",
            Field::MeterEnergyTotalWh => "meter.energy_total_wh",
            Field::MeterPowerW => "meter.power_w",
            Field::MeterVoltageV => "meter.voltage_v",
            Field::MeterCurrentA => "meter.current_a",
            Field::StatusState => "status.state",
            Field::StatusFaultCode => "status.fault_code",
            Field::StatusTemperatureC => "status.temperature_c",
            Field::OperatorCpoId => "operator.cpo_id",
            Field::NetworkIp => "network.ip",
            Field::NetworkSignalDbm => "network.signal_dbm",
        }
    }

    /// Finds the field with this dotted path.
    pub fn from_path(path: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.path() == path)
    }

    /// Returns the decoded type of the field.
    pub fn value_type(self) -> ValueType {
        use Field::*;
        match self {
            ObservedAt | SessionStartedAt | SessionEndedAt => ValueType::Timestamp,
            InstallationSiteName | InstallationAddress | UserName => ValueType::Text,
            InstallationLat | InstallationLon | SessionEnergyWh | SessionMaxCurrentA
            | MeterEnergyTotalWh | MeterPowerW | StatusTemperatureC => ValueType::Float,
            SessionPhases | NetworkSignalDbm => ValueType::Int,
            ComponentKinds | ComponentSerials | UserRoles => ValueType::StrList,
            MeterVoltageV | MeterCurrentA => ValueType::FloatList,
            _ => ValueType::Str,
        }
    }

    /// Returns the privacy class of the field (privacy model, "what may never be written").
    pub fn class(self) -> FieldClass {
        use Field::*;
        use Scope::*;
        match self {
            ObservationId => FieldClass::Identifier {
                scopes: &[Subject, Device, Dataset],
            },
            SessionId => FieldClass::Identifier {
                scopes: &[Subject, Dataset],
            },
            ChargerSerial | ComponentSerials => FieldClass::Identifier { scopes: &[Device] },
            InstallationId => FieldClass::Identifier {
                scopes: &[Installation],
            },
            UserAccountId | UserRfid => FieldClass::Identifier { scopes: &[Subject] },
            UserEmail | UserName | UserPhone => FieldClass::Personal { scopes: &[Subject] },
            InstallationSiteName | InstallationAddress => FieldClass::Personal {
                scopes: &[Installation],
            },
            NetworkIp => FieldClass::Personal { scopes: &[Device] },
            InstallationLat | InstallationLon => FieldClass::Location,
            _ => FieldClass::NonPersonal,
        }
    }

    /// Tells whether the field describes a person or their session, whatever its class.
    pub fn is_subject_linked(self) -> bool {
        use Field::*;
        matches!(
            self,
            UserAccountId | UserEmail | UserName | UserPhone | UserRfid | UserRoles | SessionId
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_path(field.path()), Some(field), "{field:?}");
        }
        let mut paths: Vec<_> = Field::ALL.iter().map(|f| f.path()).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), Field::ALL.len());
    }

    #[test]
    fn every_spec_personal_field_is_protected() {
        let must_not_be_clear = [
            "user.email",
            "user.name",
            "user.phone",
            "installation.address",
            "installation.site_name",
            "network.ip",
            "user.account_id",
            "user.rfid",
            "charger.serial",
            "charger.components.serial",
            "installation.id",
            "session.id",
            "observation_id",
            "installation.lat",
            "installation.lon",
        ];
        for path in must_not_be_clear {
            let field = Field::from_path(path).expect("field in catalogue");
            assert_ne!(field.class(), FieldClass::NonPersonal, "{path}");
        }
    }
}
