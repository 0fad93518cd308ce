//! Assembly of one valid observation as a JSON tree.
//!
//! The builder honours [`Needs`] so that a defect applied afterwards (see
//! `broken.rs`) always finds the object it targets, e.g. a `session` for a
//! bad `session.phases`.

use std::borrow::Cow;

use crate::ids;
use crate::json::{Obj, Value};
use crate::population::{self, Charger, Installation, Population};
use crate::rng::Rng;
use crate::time::Stamp;

/// The only schema this version of the contract accepts.
pub(crate) const SCHEMA: &str = "charger.observation.v1";

/// The kinds of observation in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SessionStart,
    SessionStop,
    MeterReading,
    Status,
    Fault,
    Heartbeat,
}

impl Kind {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::SessionStop => "session_stop",
            Kind::MeterReading => "meter_reading",
            Kind::Status => "status",
            Kind::Fault => "fault",
            Kind::Heartbeat => "heartbeat",
        }
    }

    /// Whether observations of this kind carry a `session` object.
    pub(crate) fn has_session(self) -> bool {
        matches!(self, Kind::SessionStart | Kind::SessionStop)
    }
}

/// Meter readings, status and heartbeats dominate.
const KIND_WEIGHTS: [(Kind, u32); 6] = [
    (Kind::MeterReading, 34),
    (Kind::Heartbeat, 26),
    (Kind::Status, 20),
    (Kind::SessionStart, 8),
    (Kind::SessionStop, 8),
    (Kind::Fault, 4),
];

const FAULT_CODES: &[&str] = &[
    "E001_GROUND_FAULT",
    "E014_OVERTEMP",
    "E022_RCD_TRIP",
    "E031_COMMS_LOST",
    "E040_PEN_FAULT",
];

/// What a defect will need to find in the observation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Needs {
    /// Force this kind.
    pub(crate) kind: Option<Kind>,
    /// Force a complete `installation` object.
    pub(crate) installation: bool,
    /// Force a `user` object with an account and `roles`.
    pub(crate) account_user: bool,
}

/// A built observation and the facts the generator reports about it.
#[derive(Debug, Clone)]
pub(crate) struct Built<'a> {
    pub(crate) obj: Obj<'a>,
    pub(crate) observation_id: String,
    pub(crate) stamp: Stamp,
    pub(crate) has_subject: bool,
    pub(crate) charger: &'a Charger,
}

/// Builds one valid observation.
pub(crate) fn build<'a>(rng: &mut Rng, pop: &'a Population, needs: Needs) -> Built<'a> {
    let kind = needs.kind.unwrap_or_else(|| rng.weighted(&KIND_WEIGHTS));
    let charger = rng.pick(&pop.chargers);
    let inst = &pop.installations[charger.installation];
    let stamp = Stamp::random(rng);
    let observation_id = if rng.per_mille(100) {
        ids::ulid(rng, stamp.epoch_millis())
    } else {
        let upper = rng.per_mille(200);
        ids::uuid_v4(rng, upper)
    };

    let mut obj = Obj::with_capacity(14);
    obj.push("schema", Value::str(SCHEMA));
    obj.push("observation_id", Value::str(observation_id.clone()));
    obj.push("observed_at", Value::str(stamp.render()));
    obj.push("kind", Value::str(kind.as_str()));
    obj.push("charger", Value::Obj(charger_obj(rng, charger)));

    let installation_share = if kind.has_session() { 850 } else { 550 };
    if needs.installation || rng.per_mille(installation_share) {
        obj.push("installation", Value::Obj(installation_obj(rng, inst)));
    } else if rng.per_mille(50) {
        obj.push("installation", Value::Null);
    }

    let (user, has_subject) = user_value(rng, pop, charger, kind, needs.account_user);
    if let Some(user) = user {
        obj.push("user", user);
    }

    let charging = match kind {
        Kind::SessionStart => true,
        Kind::SessionStop | Kind::Fault => false,
        _ => rng.per_mille(400),
    };
    if kind.has_session() {
        obj.push(
            "session",
            Value::Obj(session_obj(rng, kind, charger, stamp)),
        );
    }
    if kind == Kind::MeterReading || (kind == Kind::SessionStop && rng.per_mille(500)) {
        obj.push(
            "meter",
            Value::Obj(meter_obj(rng, charger, stamp, charging)),
        );
    }
    let status_share = match kind {
        Kind::Status | Kind::Fault => 1000,
        Kind::Heartbeat => 300,
        Kind::SessionStart | Kind::SessionStop => 400,
        Kind::MeterReading => 250,
    };
    if rng.per_mille(status_share) {
        obj.push("status", Value::Obj(status_obj(rng, kind, charging)));
    }
    if let Some(cpo) = &inst.cpo {
        if rng.per_mille(920) {
            let mut operator = Obj::with_capacity(1);
            operator.push("cpo_id", Value::str(cpo.as_str()));
            obj.push("operator", Value::Obj(operator));
        }
    } else if rng.per_mille(20) {
        obj.push("operator", Value::Null);
    }
    if kind == Kind::Heartbeat || rng.per_mille(400) {
        obj.push("network", Value::Obj(network_obj(rng, charger)));
    }

    Built {
        obj,
        observation_id,
        stamp,
        has_subject,
        charger,
    }
}

fn charger_obj<'a>(rng: &mut Rng, charger: &'a Charger) -> Obj<'a> {
    let mut obj = Obj::with_capacity(4);
    obj.push("serial", Value::str(charger.serial.as_str()));
    if rng.per_mille(20) {
        obj.push("model", Value::Null);
    } else {
        obj.push("model", Value::str(charger.model));
    }
    if !rng.per_mille(30) {
        obj.push("firmware", Value::str(charger.firmware));
    }
    if !charger.components.is_empty() && rng.per_mille(950) {
        let components = charger
            .components
            .iter()
            .map(|serial| {
                let mut c = Obj::with_capacity(2);
                c.push("kind", Value::str("sense"));
                c.push("serial", Value::str(serial.as_str()));
                Value::Obj(c)
            })
            .collect();
        obj.push("components", Value::Arr(components));
    }
    obj
}

fn installation_obj<'a>(rng: &mut Rng, inst: &'a Installation) -> Obj<'a> {
    let mut obj = Obj::with_capacity(7);
    obj.push("id", Value::str(inst.id.as_str()));
    obj.push("site_name", Value::str(inst.site_name.as_str()));
    if rng.per_mille(50) {
        obj.push("address", Value::Null);
    } else {
        obj.push("address", Value::str(inst.address.as_str()));
    }
    obj.push("lat", Value::Float(inst.lat));
    obj.push("lon", Value::Float(inst.lon));
    if !rng.per_mille(30) {
        obj.push("country", Value::str(inst.country));
    }
    obj.push("property_type", Value::str(inst.property_type));
    obj
}

/// The `user` value (if any) and whether it identifies a subject.
fn user_value<'a>(
    rng: &mut Rng,
    pop: &'a Population,
    charger: &Charger,
    kind: Kind,
    force_account: bool,
) -> (Option<Value<'a>>, bool) {
    if !force_account && kind.has_session() && rng.per_mille(150) {
        // Anonymous charging card: the tag is all we know.
        let tag = rng.pick(&pop.anonymous_tags);
        let mut user = Obj::with_capacity(1);
        user.push("rfid", Value::str(ids::render_rfid(rng, tag)));
        return (Some(Value::Obj(user)), true);
    }
    let share = match kind {
        Kind::SessionStart | Kind::SessionStop => 1000,
        Kind::MeterReading => 350,
        Kind::Fault => 300,
        Kind::Status => 150,
        Kind::Heartbeat => 50,
    };
    if !(force_account || rng.per_mille(share)) {
        let user = rng.per_mille(20).then_some(Value::Null);
        return (user, false);
    }

    let users = &pop.installations[charger.installation].users;
    let account_index = if rng.per_mille(600) {
        charger.owner
    } else {
        *rng.pick(users)
    };
    let account = &pop.accounts[account_index];
    let mut user = Obj::with_capacity(7);
    user.push("account_id", Value::str(account.id.as_str()));
    if !rng.per_mille(40) {
        user.push("email", Value::str(ids::render_email(rng, &account.email)));
    }
    if rng.per_mille(30) {
        user.push("name", Value::Null);
    } else {
        user.push("name", Value::str(account.name.as_str()));
    }
    match rng.below(100) {
        0..=7 => user.push("phone", Value::Null),
        8..=15 => {}
        _ => user.push("phone", Value::str(account.phone.as_str())),
    }
    if let Some(tag) = &account.rfid
        && rng.per_mille(if kind.has_session() { 700 } else { 200 })
    {
        user.push("rfid", Value::str(ids::render_rfid(rng, tag)));
    }
    if force_account || !rng.per_mille(50) {
        let roles = account.roles.iter().map(|r| Value::str(*r)).collect();
        user.push("roles", Value::Arr(roles));
    }
    (Some(Value::Obj(user)), true)
}

fn session_obj<'a>(rng: &mut Rng, kind: Kind, charger: &Charger, stamp: Stamp) -> Obj<'a> {
    const SEC: i64 = 1_000_000;
    let mut obj = Obj::with_capacity(6);
    let upper = rng.per_mille(100);
    obj.push("id", Value::str(ids::uuid_v4(rng, upper)));
    let phases = if charger.phases == 3 && rng.per_mille(150) {
        1
    } else {
        charger.phases
    };
    if kind == Kind::SessionStop {
        let duration_s = rng.range(600, 50_400);
        let started = stamp.shifted(-duration_s * SEC);
        let ended = stamp.shifted(-rng.range(0, 5) * SEC);
        let power_w = f64::from(phases) * 230.0 * charger.max_current_a * rng.float(0.3, 0.95);
        let cap_wh = rng.float(8_000.0, 90_000.0);
        let energy_wh = (duration_s as f64 * power_w / 3600.0).min(cap_wh);
        obj.push("started_at", Value::str(started.render()));
        obj.push("ended_at", Value::str(ended.render()));
        obj.push("energy_wh", Value::Fixed(energy_wh, 1));
    } else {
        let started = stamp.shifted(-rng.range(0, 20) * SEC);
        obj.push("started_at", Value::str(started.render()));
    }
    if !rng.per_mille(50) {
        obj.push("max_current_a", Value::Fixed(charger.max_current_a, 1));
    }
    obj.push("phases", Value::Int(i64::from(phases)));
    obj
}

fn meter_obj<'a>(rng: &mut Rng, charger: &Charger, stamp: Stamp, charging: bool) -> Obj<'a> {
    let phases = if rng.per_mille(30) {
        2
    } else {
        usize::from(charger.phases)
    };
    let voltages: Vec<f64> = (0..phases).map(|_| rng.float(224.0, 242.0)).collect();
    let currents: Vec<f64> = (0..phases)
        .map(|_| {
            if charging {
                rng.float(5.0, charger.max_current_a)
            } else {
                0.0
            }
        })
        .collect();
    let power_w: f64 = voltages.iter().zip(&currents).map(|(v, i)| v * i).sum();
    // Grows through the window so totals look cumulative.
    let elapsed_s = (stamp.epoch_secs() % 1_000_000) as f64;
    let total_wh = charger.energy_base_wh + elapsed_s * 0.8;

    let mut obj = Obj::with_capacity(4);
    obj.push("energy_total_wh", Value::Fixed(total_wh, 1));
    obj.push("power_w", Value::Fixed(power_w, 1));
    obj.push(
        "voltage_v",
        Value::Arr(voltages.into_iter().map(|v| Value::Fixed(v, 1)).collect()),
    );
    obj.push(
        "current_a",
        Value::Arr(currents.into_iter().map(|a| Value::Fixed(a, 1)).collect()),
    );
    obj
}

fn status_obj<'a>(rng: &mut Rng, kind: Kind, charging: bool) -> Obj<'a> {
    let state = match kind {
        Kind::Fault => "faulted",
        Kind::SessionStart => "charging",
        Kind::SessionStop => "finished",
        Kind::Status => rng.weighted(&[
            ("available", 35),
            ("charging", 30),
            ("paused", 8),
            ("finished", 12),
            ("faulted", 3),
            ("offline", 12),
        ]),
        Kind::MeterReading | Kind::Heartbeat if charging => "charging",
        Kind::MeterReading | Kind::Heartbeat => {
            rng.weighted(&[("available", 80), ("paused", 10), ("offline", 10)])
        }
    };
    let mut obj = Obj::with_capacity(3);
    obj.push("state", Value::str(state));
    if state == "faulted" {
        obj.push("fault_code", Value::str(*rng.pick(FAULT_CODES)));
    } else if !rng.per_mille(200) {
        obj.push("fault_code", Value::Null);
    }
    obj.push("temperature_c", Value::Fixed(rng.float(-15.0, 55.0), 1));
    obj
}

fn network_obj<'a>(rng: &mut Rng, charger: &'a Charger) -> Obj<'a> {
    let mut obj = Obj::with_capacity(2);
    let ip: Cow<'a, str> = if rng.per_mille(100) {
        Cow::Owned(population::random_ip(rng))
    } else {
        Cow::Borrowed(charger.ip.as_str())
    };
    obj.push("ip", Value::Str(ip));
    match rng.below(100) {
        0..=3 => obj.push("signal_dbm", Value::Null),
        4..=7 => {}
        _ => obj.push("signal_dbm", Value::Int(rng.range(-95, -38))),
    }
    obj
}

/// Adds one field the contract does not know (producers upgrade). The line
/// stays valid; the pipeline must simply not copy the field.
pub(crate) fn add_unknown_field(rng: &mut Rng, built: &mut Built<'_>) {
    let obj = &mut built.obj;
    match rng.below(6) {
        0 => {
            if let Some(user) = obj.obj_mut("user") {
                let licence = format!("DL-{}", ids::digits(rng, 8));
                user.push("driver_license", Value::str(licence));
                return;
            }
        }
        1 => {
            if let Some(network) = obj.obj_mut("network") {
                let mac = format!(
                    "a4:cf:12:{:02x}:{:02x}:{:02x}",
                    rng.below(256),
                    rng.below(256),
                    rng.below(256)
                );
                network.push("mac", Value::str(mac));
                return;
            }
        }
        2 => {
            if let Some(installation) = obj.obj_mut("installation") {
                let id = ids::digits(rng, 11);
                installation.push("owner_national_id", Value::str(id));
                return;
            }
        }
        3 => {
            if let Some(charger) = obj.obj_mut("charger") {
                let revision = *rng.pick(&["C3", "D1", "D2"]);
                charger.push("hw_revision", Value::str(revision));
                return;
            }
        }
        4 => {
            let mut debug = Obj::with_capacity(2);
            debug.push(
                "trace_id",
                Value::str(ids::hex_upper(rng, 32).to_ascii_lowercase()),
            );
            debug.push("sampled", Value::Bool(true));
            obj.push("debug", Value::Obj(debug));
            return;
        }
        _ => {}
    }
    let channel = *rng.pick(&["beta", "stable", "canary"]);
    obj.push("firmware_channel", Value::str(channel));
}
