//! The shadow of the contract: every field optional, strings borrowed.

use std::borrow::Cow;

use delink_model::{Rejection, RejectionReason};
use serde::de::DeserializeSeed;

use crate::shadow::{Seed, Unknowns, shadow};

shadow! {
    RawObservation<'a> {
        schema: Cow<'a, str>,
        observation_id: Cow<'a, str>,
        observed_at: Cow<'a, str>,
        kind: Cow<'a, str>,
        charger: RawCharger<'a>,
        installation: RawInstallation<'a>,
        user: RawUser<'a>,
        session: RawSession<'a>,
        meter: RawMeter,
        status: RawStatus<'a>,
        operator: RawOperator<'a>,
        network: RawNetwork<'a>,
    }
}

shadow! {
    RawCharger<'a> {
        serial: Cow<'a, str>,
        model: Cow<'a, str>,
        firmware: Cow<'a, str>,
        components: Vec<RawComponent<'a>>,
    }
}

shadow! {
    RawComponent<'a> {
        kind: Cow<'a, str>,
        serial: Cow<'a, str>,
    }
}

shadow! {
    RawInstallation<'a> {
        id: Cow<'a, str>,
        site_name: Cow<'a, str>,
        address: Cow<'a, str>,
        lat: f64,
        lon: f64,
        country: Cow<'a, str>,
        property_type: Cow<'a, str>,
    }
}

shadow! {
    RawUser<'a> {
        account_id: Cow<'a, str>,
        email: Cow<'a, str>,
        name: Cow<'a, str>,
        phone: Cow<'a, str>,
        rfid: Cow<'a, str>,
        roles: Vec<Cow<'a, str>>,
    }
}

shadow! {
    RawSession<'a> {
        id: Cow<'a, str>,
        started_at: Cow<'a, str>,
        ended_at: Cow<'a, str>,
        energy_wh: f64,
        max_current_a: f64,
        phases: i64,
    }
}

shadow! {
    RawMeter {
        energy_total_wh: f64,
        power_w: f64,
        voltage_v: Vec<f64>,
        current_a: Vec<f64>,
    }
}

shadow! {
    RawStatus<'a> {
        state: Cow<'a, str>,
        fault_code: Cow<'a, str>,
        temperature_c: f64,
    }
}

shadow! {
    RawOperator<'a> {
        cpo_id: Cow<'a, str>,
    }
}

shadow! {
    RawNetwork<'a> {
        ip: Cow<'a, str>,
        signal_dbm: i64,
    }
}

/// Parses the JSON text (one object), reporting every field outside the contract to `on_unknown`.
pub(crate) fn parse<'a>(
    text: &'a str,
    mut on_unknown: impl FnMut(String),
) -> Result<RawObservation<'a>, Rejection> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut unknowns = Unknowns::new(&mut on_unknown);
    let raw = Seed::<RawObservation<'a>>::new(&mut unknowns)
        .deserialize(&mut deserializer)
        .map_err(classify)?;
    deserializer.end().map_err(classify)?;
    Ok(raw)
}

/// Maps a serde error to a reason; the error text itself may quote input and is dropped.
fn classify(error: serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let reason = match error.classify() {
        Category::Io | Category::Syntax | Category::Eof => RejectionReason::NotJson,
        Category::Data if error.to_string().starts_with("duplicate field") => {
            RejectionReason::NotJson
        }
        Category::Data => RejectionReason::WrongType,
    };
    Rejection::new(reason)
}
