//! The shadow of the contract: every field optional, strings borrowed.

use std::borrow::Cow;

use delink_model::{Rejection, RejectionReason};
use serde::Deserialize;

use crate::unknown::field_name;

#[derive(Deserialize)]
pub(crate) struct RawObservation<'a> {
    #[serde(borrow)]
    pub(crate) schema: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) observation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) observed_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) charger: Option<RawCharger<'a>>,
    #[serde(borrow)]
    pub(crate) installation: Option<RawInstallation<'a>>,
    #[serde(borrow)]
    pub(crate) user: Option<RawUser<'a>>,
    #[serde(borrow)]
    pub(crate) session: Option<RawSession<'a>>,
    pub(crate) meter: Option<RawMeter>,
    #[serde(borrow)]
    pub(crate) status: Option<RawStatus<'a>>,
    #[serde(borrow)]
    pub(crate) operator: Option<RawOperator<'a>>,
    #[serde(borrow)]
    pub(crate) network: Option<RawNetwork<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct RawCharger<'a> {
    #[serde(borrow)]
    pub(crate) serial: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) firmware: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) components: Option<Vec<RawComponent<'a>>>,
}

#[derive(Deserialize)]
pub(crate) struct RawComponent<'a> {
    #[serde(borrow)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) serial: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct RawInstallation<'a> {
    #[serde(borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) site_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) address: Option<Cow<'a, str>>,
    pub(crate) lat: Option<f64>,
    pub(crate) lon: Option<f64>,
    #[serde(borrow)]
    pub(crate) country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) property_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct RawUser<'a> {
    #[serde(borrow)]
    pub(crate) account_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) phone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) rfid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) roles: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
pub(crate) struct RawSession<'a> {
    #[serde(borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) started_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) ended_at: Option<Cow<'a, str>>,
    pub(crate) energy_wh: Option<f64>,
    pub(crate) max_current_a: Option<f64>,
    pub(crate) phases: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct RawMeter {
    pub(crate) energy_total_wh: Option<f64>,
    pub(crate) power_w: Option<f64>,
    pub(crate) voltage_v: Option<Vec<f64>>,
    pub(crate) current_a: Option<Vec<f64>>,
}

#[derive(Deserialize)]
pub(crate) struct RawStatus<'a> {
    #[serde(borrow)]
    pub(crate) state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) fault_code: Option<Cow<'a, str>>,
    pub(crate) temperature_c: Option<f64>,
}

#[derive(Deserialize)]
pub(crate) struct RawOperator<'a> {
    #[serde(borrow)]
    pub(crate) cpo_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(crate) struct RawNetwork<'a> {
    #[serde(borrow)]
    pub(crate) ip: Option<Cow<'a, str>>,
    pub(crate) signal_dbm: Option<i64>,
}

/// Parses the JSON text, reporting every field outside the shadow struct to `on_unknown`.
pub(crate) fn parse<'a>(
    text: &'a str,
    mut on_unknown: impl FnMut(String),
) -> Result<RawObservation<'a>, Rejection> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw = serde_ignored::deserialize(&mut deserializer, |path| on_unknown(field_name(&path)))
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
