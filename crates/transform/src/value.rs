//! Reads one catalogue field out of a typed observation.

use delink_model::{Field, Observation};

/// A field's value in one observation, borrowed from it.
pub(crate) enum Value<'o> {
    Str(Option<&'o str>),
    Float(Option<f64>),
    Int(Option<i64>),
    Timestamp(Option<i64>),
    StrList(Vec<&'o str>),
    FloatList(Option<&'o [f64]>),
}

/// Returns the value of `field` in `observation`.
pub(crate) fn value_of<'o>(observation: &'o Observation<'_>, field: Field) -> Value<'o> {
    use Field::*;
    let installation = observation.installation.as_ref();
    let user = observation.user.as_ref();
    let session = observation.session.as_ref();
    let meter = observation.meter.as_ref();
    let status = observation.status.as_ref();
    match field {
        Schema => Value::Str(Some(delink_model::SCHEMA_V1)),
        ObservationId => Value::Str(Some(&observation.observation_id)),
        ObservedAt => Value::Timestamp(Some(observation.observed_at_us)),
        Kind => Value::Str(Some(observation.kind.as_str())),
        ChargerSerial => Value::Str(Some(&observation.charger.serial)),
        ChargerModel => Value::Str(observation.charger.model.as_deref()),
        ChargerFirmware => Value::Str(observation.charger.firmware.as_deref()),
        ComponentKinds => Value::StrList(
            observation
                .charger
                .components
                .iter()
                .map(|component| component.kind.as_deref().unwrap_or(""))
                .collect(),
        ),
        ComponentSerials => Value::StrList(
            observation
                .charger
                .components
                .iter()
                .map(|component| component.serial.as_ref())
                .collect(),
        ),
        InstallationId => Value::Str(installation.and_then(|i| i.id.as_deref())),
        InstallationSiteName => Value::Str(installation.and_then(|i| i.site_name.as_deref())),
        InstallationAddress => Value::Str(installation.and_then(|i| i.address.as_deref())),
        InstallationLat => Value::Float(installation.and_then(|i| i.lat)),
        InstallationLon => Value::Float(installation.and_then(|i| i.lon)),
        InstallationCountry => Value::Str(installation.and_then(|i| i.country.as_deref())),
        InstallationPropertyType => {
            Value::Str(installation.and_then(|i| i.property_type.as_deref()))
        }
        UserAccountId => Value::Str(user.and_then(|u| u.account_id.as_deref())),
        UserEmail => Value::Str(user.and_then(|u| u.email.as_deref())),
        UserName => Value::Str(user.and_then(|u| u.name.as_deref())),
        UserPhone => Value::Str(user.and_then(|u| u.phone.as_deref())),
        UserRfid => Value::Str(user.and_then(|u| u.rfid.as_deref())),
        UserRoles => Value::StrList(
            user.map(|u| u.roles.iter().map(|role| role.as_ref()).collect())
                .unwrap_or_default(),
        ),
        SessionId => Value::Str(session.and_then(|s| s.id.as_deref())),
        SessionStartedAt => Value::Timestamp(session.and_then(|s| s.started_at_us)),
        SessionEndedAt => Value::Timestamp(session.and_then(|s| s.ended_at_us)),
        SessionEnergyWh => Value::Float(session.and_then(|s| s.energy_wh)),
        SessionMaxCurrentA => Value::Float(session.and_then(|s| s.max_current_a)),
        SessionPhases => Value::Int(session.and_then(|s| s.phases)),
        MeterEnergyTotalWh => Value::Float(meter.and_then(|m| m.energy_total_wh)),
        MeterPowerW => Value::Float(meter.and_then(|m| m.power_w)),
        MeterVoltageV => Value::FloatList(meter.and_then(|m| m.voltage_v.as_deref())),
        MeterCurrentA => Value::FloatList(meter.and_then(|m| m.current_a.as_deref())),
        StatusState => Value::Str(status.and_then(|s| s.state.as_deref())),
        StatusFaultCode => Value::Str(status.and_then(|s| s.fault_code.as_deref())),
        StatusTemperatureC => Value::Float(status.and_then(|s| s.temperature_c)),
        OperatorCpoId => Value::Str(
            observation
                .operator
                .as_ref()
                .and_then(|o| o.cpo_id.as_deref()),
        ),
        NetworkIp => Value::Str(observation.network.as_ref().and_then(|n| n.ip.as_deref())),
        NetworkSignalDbm => Value::Int(observation.network.as_ref().and_then(|n| n.signal_dbm)),
    }
}
