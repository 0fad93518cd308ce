//! Checks the contract on the shadow struct and builds the typed observation.

use std::borrow::Cow;

use chrono::DateTime;
use delink_model::{
    Charger, Component, Installation, Kind, Meter, Network, Observation, Operator, Rejection,
    RejectionReason, Session, Status, User,
};

use crate::SCHEMA_V1;
use crate::normalise::{compact, compact_lower, lower, trim, upper};
use crate::raw::{
    RawCharger, RawInstallation, RawMeter, RawNetwork, RawObservation, RawOperator, RawSession,
    RawStatus, RawUser,
};

/// Longest identifier accepted, in bytes, after normalisation.
const MAX_IDENTIFIER_BYTES: usize = 128;

type Checked<T> = Result<T, Rejection>;

pub(crate) fn validate(raw: RawObservation<'_>) -> Checked<Observation<'_>> {
    let schema = required(raw.schema, "schema")?;
    if schema != SCHEMA_V1 {
        return Err(Rejection::at(RejectionReason::UnknownSchema, "schema"));
    }
    let observation_id = identifier(
        lower(required(raw.observation_id, "observation_id")?),
        "observation_id",
    )?;
    let observed_at_us = timestamp(&required(raw.observed_at, "observed_at")?, "observed_at")?;
    let kind = Kind::parse(&required(raw.kind, "kind")?)
        .ok_or(Rejection::at(RejectionReason::UnknownKind, "kind"))?;
    let charger = charger(raw.charger.ok_or(missing("charger"))?)?;
    Ok(Observation {
        observation_id,
        observed_at_us,
        kind,
        charger,
        installation: raw.installation.map(installation).transpose()?,
        user: raw.user.map(user).transpose()?,
        session: raw.session.map(session).transpose()?,
        meter: raw.meter.map(meter).transpose()?,
        status: raw.status.map(status),
        operator: raw.operator.map(operator),
        network: raw.network.map(network),
    })
}

fn charger(raw: RawCharger<'_>) -> Checked<Charger<'_>> {
    let serial = identifier(
        upper(required(raw.serial, "charger.serial")?),
        "charger.serial",
    )?;
    let components = raw
        .components
        .unwrap_or_default()
        .into_iter()
        .map(|component| {
            let serial = required(component.serial, "charger.components.serial")?;
            Ok(Component {
                kind: component.kind,
                serial: identifier(upper(serial), "charger.components.serial")?,
            })
        })
        .collect::<Checked<Vec<_>>>()?;
    Ok(Charger {
        serial,
        model: raw.model,
        firmware: raw.firmware,
        components,
    })
}

fn installation(raw: RawInstallation<'_>) -> Checked<Installation<'_>> {
    let lat = in_range(raw.lat, -90.0, 90.0, "installation.lat")?;
    let lon = in_range(raw.lon, -180.0, 180.0, "installation.lon")?;
    Ok(Installation {
        id: optional_identifier(raw.id.map(lower), "installation.id")?,
        site_name: raw.site_name.map(trim),
        address: raw.address.map(trim),
        lat,
        lon,
        country: raw.country,
        property_type: raw.property_type,
    })
}

fn user(raw: RawUser<'_>) -> Checked<User<'_>> {
    Ok(User {
        account_id: optional_identifier(raw.account_id.map(lower), "user.account_id")?,
        email: raw.email.map(lower),
        name: raw.name.map(trim),
        phone: raw.phone.map(compact),
        rfid: optional_identifier(raw.rfid.map(compact_lower), "user.rfid")?,
        roles: raw.roles.unwrap_or_default(),
    })
}

fn session(raw: RawSession<'_>) -> Checked<Session<'_>> {
    if let Some(phases) = raw.phases
        && !(1..=3).contains(&phases)
    {
        return Err(Rejection::at(RejectionReason::OutOfRange, "session.phases"));
    }
    Ok(Session {
        id: optional_identifier(raw.id.map(lower), "session.id")?,
        started_at_us: raw
            .started_at
            .map(|text| timestamp(&text, "session.started_at"))
            .transpose()?,
        ended_at_us: raw
            .ended_at
            .map(|text| timestamp(&text, "session.ended_at"))
            .transpose()?,
        energy_wh: raw.energy_wh,
        max_current_a: raw.max_current_a,
        phases: raw.phases,
    })
}

fn meter(raw: RawMeter) -> Checked<Meter> {
    for (values, field) in [
        (&raw.voltage_v, "meter.voltage_v"),
        (&raw.current_a, "meter.current_a"),
    ] {
        if let Some(values) = values
            && !(1..=3).contains(&values.len())
        {
            return Err(Rejection::at(RejectionReason::OutOfRange, field));
        }
    }
    Ok(Meter {
        energy_total_wh: raw.energy_total_wh,
        power_w: raw.power_w,
        voltage_v: raw.voltage_v,
        current_a: raw.current_a,
    })
}

fn status(raw: RawStatus<'_>) -> Status<'_> {
    Status {
        state: raw.state,
        fault_code: raw.fault_code,
        temperature_c: raw.temperature_c,
    }
}

fn operator(raw: RawOperator<'_>) -> Operator<'_> {
    Operator { cpo_id: raw.cpo_id }
}

fn network(raw: RawNetwork<'_>) -> Network<'_> {
    Network {
        ip: raw.ip.map(lower),
        signal_dbm: raw.signal_dbm,
    }
}

fn missing(field: &'static str) -> Rejection {
    Rejection::at(RejectionReason::MissingField, field)
}

fn required<T>(value: Option<T>, field: &'static str) -> Checked<T> {
    value.ok_or(missing(field))
}

fn identifier<'a>(value: Cow<'a, str>, field: &'static str) -> Checked<Cow<'a, str>> {
    if value.is_empty() || value.len() > MAX_IDENTIFIER_BYTES {
        return Err(Rejection::at(RejectionReason::BadIdentifier, field));
    }
    Ok(value)
}

fn optional_identifier<'a>(
    value: Option<Cow<'a, str>>,
    field: &'static str,
) -> Checked<Option<Cow<'a, str>>> {
    value.map(|value| identifier(value, field)).transpose()
}

fn in_range(value: Option<f64>, min: f64, max: f64, field: &'static str) -> Checked<Option<f64>> {
    match value {
        Some(number) if !(min..=max).contains(&number) => {
            Err(Rejection::at(RejectionReason::OutOfRange, field))
        }
        _ => Ok(value),
    }
}

/// Parses RFC 3339 with an offset into UTC microseconds.
fn timestamp(text: &str, field: &'static str) -> Checked<i64> {
    let bad = || Rejection::at(RejectionReason::BadTimestamp, field);
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| bad())?;
    Ok(parsed.timestamp_micros())
}
