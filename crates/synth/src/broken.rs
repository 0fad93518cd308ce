//! Broken lines: each has exactly one defect, named by a reason code.
//!
//! Apart from the garbage-text and whole-line-of-wrong-type cases, every
//! broken line is a normal observation (with identifiers) that was built
//! valid and then damaged in exactly one place.

use crate::json::{self, Value};
use crate::observation::{self, Kind, Needs};
use crate::population::{Charger, Population};
use crate::rng::Rng;

/// Why a line is broken; [`Reason::code`] is the contract's reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    NotUtf8,
    NotJson,
    TooLarge,
    MissingField,
    WrongType,
    BadTimestamp,
    UnknownSchema,
    UnknownKind,
    OutOfRange,
    BadIdentifier,
}

impl Reason {
    /// The reason code the decoder is expected to report.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Reason::NotUtf8 => "not_utf8",
            Reason::NotJson => "not_json",
            Reason::TooLarge => "too_large",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::UnknownSchema => "unknown_schema",
            Reason::UnknownKind => "unknown_kind",
            Reason::OutOfRange => "out_of_range",
            Reason::BadIdentifier => "bad_identifier",
        }
    }
}

/// Share of each reason among broken lines, in percent. Oversized lines are
/// kept rare because each one is 70 KB .. 2 MB.
const REASON_WEIGHTS: [(Reason, u32); 10] = [
    (Reason::NotUtf8, 8),
    (Reason::NotJson, 12),
    (Reason::TooLarge, 1),
    (Reason::MissingField, 15),
    (Reason::WrongType, 14),
    (Reason::BadTimestamp, 12),
    (Reason::UnknownSchema, 8),
    (Reason::UnknownKind, 8),
    (Reason::OutOfRange, 12),
    (Reason::BadIdentifier, 10),
];

/// Lines that are not JSON at all (all valid UTF-8, none blank).
pub(crate) const GARBAGE: &[&str] = &[
    "<html>oops",
    "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>",
    "HTTP/1.1 503 Service Unavailable",
    "oops",
    "undefined",
    "NaN",
    "ZAP049123;2026-11-20T13:45:12Z;heartbeat;-61",
    "{'schema': 'charger.observation.v1', 'kind': 'heartbeat'}",
    "schema=charger.observation.v1&kind=status",
    "}{",
    "ERROR: broker connection reset by peer",
    "-- MARK --",
];

/// Strings that look like timestamps but are not RFC 3339 with an offset.
const BAD_TIMESTAMPS: &[&str] = &[
    "yesterday",
    "2026-13-45T10:00:00Z",
    "2026-11-31T08:00:00Z",
    "2026-11-20T24:30:00+01:00",
    "20.11.2026 13:45",
    "Fri, 20 Nov 2026 13:45:12 +0100",
    "now",
];

/// A damaged line and the charger it was built for.
pub(crate) struct Damaged {
    pub(crate) line: Vec<u8>,
    /// The charger's serial as its producer knows it, whatever the damage to
    /// the line; `None` for garbage text, which no charger's observation underlies.
    pub(crate) serial: Option<String>,
}

impl Damaged {
    fn from_charger(charger: &Charger, line: Vec<u8>) -> Damaged {
        Damaged {
            line,
            serial: Some(charger.serial.clone()),
        }
    }
}

/// Generates one broken line and its reason code.
pub(crate) fn generate(rng: &mut Rng, pop: &Population) -> (Damaged, &'static str) {
    let reason = rng.weighted(&REASON_WEIGHTS);
    let line = match reason {
        Reason::NotUtf8 => not_utf8(rng, pop),
        Reason::NotJson => not_json(rng, pop),
        Reason::TooLarge => too_large(rng, pop),
        Reason::MissingField => missing_field(rng, pop),
        Reason::WrongType => wrong_type(rng, pop),
        Reason::BadTimestamp => bad_timestamp(rng, pop),
        Reason::UnknownSchema => unknown_schema(rng, pop),
        Reason::UnknownKind => unknown_kind(rng, pop),
        Reason::OutOfRange => out_of_range(rng, pop),
        Reason::BadIdentifier => bad_identifier(rng, pop),
    };
    (line, reason.code())
}

fn session_kind(rng: &mut Rng) -> Option<Kind> {
    Some(if rng.per_mille(500) {
        Kind::SessionStart
    } else {
        Kind::SessionStop
    })
}

/// A char boundary in valid UTF-8 `bytes`, chosen at random.
fn char_boundary(rng: &mut Rng, bytes: &[u8]) -> usize {
    let mut pos = rng.index(bytes.len() + 1);
    while pos > 0 && pos < bytes.len() && bytes[pos] & 0xC0 == 0x80 {
        pos -= 1;
    }
    pos
}

/// Valid JSON whose `installation.site_name` holds invalid UTF-8.
fn not_utf8(rng: &mut Rng, pop: &Population) -> Damaged {
    const LATIN1: &[&str] = &[
        "Grünerløkka P-hus",
        "Søndre Åsen 4 garasje",
        "Café Müller",
        "Bjørnstad hytte",
    ];
    let needs = Needs {
        installation: true,
        ..Needs::default()
    };
    let mut built = observation::build(rng, pop, needs);
    if let Some(inst) = built.obj.obj_mut("installation") {
        let mut bytes = match inst.get("site_name") {
            Some(Value::Str(s)) => s.as_bytes().to_vec(),
            _ => b"Garage".to_vec(),
        };
        match rng.below(6) {
            // A stray 0xFF byte.
            0 => {
                let at = char_boundary(rng, &bytes);
                bytes.insert(at, 0xFF);
            }
            // Text encoded as Latin-1 instead of UTF-8.
            1 => {
                bytes = rng
                    .pick(LATIN1)
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect();
            }
            // A multi-byte sequence cut short ("€" without its last byte).
            2 => bytes.extend_from_slice(&[0xE2, 0x82]),
            // A lone continuation byte.
            3 => {
                let at = char_boundary(rng, &bytes);
                bytes.insert(at, 0x80);
            }
            // An encoded UTF-16 surrogate (CESU-8).
            4 => {
                let at = char_boundary(rng, &bytes);
                bytes.splice(at..at, [0xED, 0xA0, 0x80]);
            }
            // An overlong encoding of '/'.
            _ => {
                let at = char_boundary(rng, &bytes);
                bytes.splice(at..at, [0xC0, 0xAF]);
            }
        }
        inst.set("site_name", Value::RawStr(bytes));
    }
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// A truncated observation or a line of garbage text.
fn not_json(rng: &mut Rng, pop: &Population) -> Damaged {
    if rng.per_mille(300) {
        return Damaged {
            line: rng.pick(GARBAGE).as_bytes().to_vec(),
            serial: None,
        };
    }
    let built = observation::build(rng, pop, Needs::default());
    let mut line = built.obj.to_bytes();
    // Cut between 20% and 90% of the way through, on a char boundary, so the
    // rest is still valid UTF-8 and the closing brace is always lost.
    let len = line.len();
    let mut cut = len / 5 + rng.index(len * 7 / 10);
    while cut > 1 && line[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    line.truncate(cut);
    Damaged::from_charger(built.charger, line)
}

/// A valid observation with an extra field of 70-300 KB (rarely 1-2 MB).
fn too_large(rng: &mut Rng, pop: &Population) -> Damaged {
    const CHUNK: &str =
        "ts=2026-11-20T13:45:12.345Z lvl=debug mod=ocpp msg=frame ack seq=4711 rssi=-61 | ";
    let mut built = observation::build(rng, pop, Needs::default());
    let len = if rng.per_mille(50) {
        rng.range(1_000_000, 2_000_000)
    } else {
        rng.range(70_000, 300_000)
    } as usize;
    let mut text = CHUNK.repeat(len / CHUNK.len() + 1);
    text.truncate(len);
    let key = *rng.pick(&["diagnostics_dump", "debug_log", "raw_frame"]);
    built.obj.push(key, Value::str(text));
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// One required field absent or null.
fn missing_field(rng: &mut Rng, pop: &Population) -> Damaged {
    const FIELDS: &[&str] = &[
        "schema",
        "observation_id",
        "observed_at",
        "kind",
        "charger",
        "charger.serial",
    ];
    let mut built = observation::build(rng, pop, Needs::default());
    let field = *rng.pick(FIELDS);
    let as_null = rng.per_mille(400);
    let (obj, key) = match field.split_once('.') {
        Some((parent, key)) => (built.obj.obj_mut(parent), key),
        None => (Some(&mut built.obj), field),
    };
    if let Some(obj) = obj {
        if as_null {
            obj.set(key, Value::Null);
        } else {
            obj.remove(key);
        }
    }
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// A field (or the whole line) of the wrong JSON type.
fn wrong_type(rng: &mut Rng, pop: &Population) -> Damaged {
    let variant = rng.below(9);
    let needs = match variant {
        2 => Needs {
            kind: Some(Kind::SessionStop),
            ..Needs::default()
        },
        3 => Needs {
            kind: session_kind(rng),
            ..Needs::default()
        },
        4 => Needs {
            account_user: true,
            ..Needs::default()
        },
        5 => Needs {
            kind: Some(Kind::MeterReading),
            ..Needs::default()
        },
        _ => Needs::default(),
    };
    let mut built = observation::build(rng, pop, needs);
    let obj = &mut built.obj;
    match variant {
        0 => {
            let secs = built.stamp.epoch_secs();
            let value = if rng.per_mille(500) {
                secs
            } else {
                secs * 1000
            };
            obj.set("observed_at", Value::Int(value));
        }
        1 => obj.set("charger", Value::str(built.charger.serial.as_str())),
        2 => {
            if let Some(session) = obj.obj_mut("session") {
                let text = *rng.pick(&["lots", "18.2 kWh", "18250.5"]);
                session.set("energy_wh", Value::str(text));
            }
        }
        3 => {
            if let Some(session) = obj.obj_mut("session") {
                let phases = match session.get("phases") {
                    Some(Value::Int(p)) => p.to_string(),
                    _ => "3".to_string(),
                };
                session.set("phases", Value::str(phases));
            }
        }
        4 => {
            if let Some(user) = obj.obj_mut("user") {
                let role = *rng.pick(&["owner", "user", "owner,admin"]);
                user.set("roles", Value::str(role));
            }
        }
        5 => {
            if let Some(meter) = obj.obj_mut("meter") {
                meter.set("voltage_v", Value::Fixed(rng.float(225.0, 240.0), 1));
            }
        }
        6 => {
            // The observation wrapped in an array.
            let inner = obj.to_bytes();
            let mut line = Vec::with_capacity(inner.len() + 2);
            line.push(b'[');
            line.extend_from_slice(&inner);
            line.push(b']');
            return Damaged::from_charger(built.charger, line);
        }
        7 => {
            // The observation double-encoded as a JSON string.
            let inner = obj.to_bytes();
            let mut line = Vec::with_capacity(inner.len() * 5 / 4);
            json::write_string(&mut line, &inner);
            return Damaged::from_charger(built.charger, line);
        }
        _ => {
            let n = if rng.per_mille(500) {
                built.stamp.epoch_secs()
            } else {
                42
            };
            return Damaged::from_charger(built.charger, n.to_string().into_bytes());
        }
    }
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// `observed_at` (or `session.started_at`) a string that is not RFC 3339.
fn bad_timestamp(rng: &mut Rng, pop: &Population) -> Damaged {
    let on_session = rng.per_mille(200);
    let needs = Needs {
        kind: if on_session { session_kind(rng) } else { None },
        ..Needs::default()
    };
    let mut built = observation::build(rng, pop, needs);
    let text = match rng.below(3) {
        // The local time with its offset dropped.
        0 => built.stamp.render_local(),
        // Epoch seconds as a string.
        1 if rng.per_mille(300) => built.stamp.epoch_secs().to_string(),
        _ => (*rng.pick(BAD_TIMESTAMPS)).to_string(),
    };
    let target = if on_session {
        built.obj.obj_mut("session").map(|s| (s, "started_at"))
    } else {
        Some((&mut built.obj, "observed_at"))
    };
    if let Some((obj, key)) = target {
        obj.set(key, Value::str(text));
    }
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// `schema` a string other than `charger.observation.v1`.
fn unknown_schema(rng: &mut Rng, pop: &Population) -> Damaged {
    const SCHEMAS: &[&str] = &[
        "charger.observation.v2",
        "charger.observation.v0",
        "charger.observation",
        "charger.observation.v1.1",
        "meter.observation.v1",
        "charger.event.v1",
    ];
    let mut built = observation::build(rng, pop, Needs::default());
    built.obj.set("schema", Value::str(*rng.pick(SCHEMAS)));
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// `kind` a string not in the contract's list.
fn unknown_kind(rng: &mut Rng, pop: &Population) -> Damaged {
    const KINDS: &[&str] = &[
        "reboot",
        "firmware_update",
        "session_pause",
        "diagnostics",
        "ping",
        "config_changed",
    ];
    let mut built = observation::build(rng, pop, Needs::default());
    built.obj.set("kind", Value::str(*rng.pick(KINDS)));
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// A number or array outside its allowed range.
fn out_of_range(rng: &mut Rng, pop: &Population) -> Damaged {
    let variant = rng.below(4);
    let needs = match variant {
        0 => Needs {
            kind: session_kind(rng),
            ..Needs::default()
        },
        1 | 2 => Needs {
            installation: true,
            ..Needs::default()
        },
        _ => Needs {
            kind: Some(Kind::MeterReading),
            ..Needs::default()
        },
    };
    let mut built = observation::build(rng, pop, needs);
    let sign = if rng.per_mille(500) { 1.0 } else { -1.0 };
    let obj = &mut built.obj;
    match variant {
        0 => {
            if let Some(session) = obj.obj_mut("session") {
                let phases = if rng.per_mille(400) {
                    0
                } else {
                    rng.range(4, 9)
                };
                session.set("phases", Value::Int(phases));
            }
        }
        1 => {
            if let Some(inst) = obj.obj_mut("installation") {
                inst.set("lat", Value::Float(sign * rng.float(90.5, 900.0)));
            }
        }
        2 => {
            if let Some(inst) = obj.obj_mut("installation") {
                inst.set("lon", Value::Float(sign * rng.float(180.5, 1800.0)));
            }
        }
        _ => {
            if let Some(meter) = obj.obj_mut("meter") {
                let n = if rng.per_mille(400) {
                    0
                } else {
                    rng.range(4, 6)
                };
                let volts = (0..n)
                    .map(|_| Value::Fixed(rng.float(224.0, 242.0), 1))
                    .collect();
                meter.set("voltage_v", Value::Arr(volts));
            }
        }
    }
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}

/// `observation_id` or `charger.serial` empty or longer than 128 chars.
fn bad_identifier(rng: &mut Rng, pop: &Population) -> Damaged {
    let mut built = observation::build(rng, pop, Needs::default());
    let long_len = rng.range(129, 300) as usize;
    let empty = rng.per_mille(500);
    if rng.per_mille(500) {
        let id = if empty {
            String::new()
        } else {
            let mut id = built
                .observation_id
                .repeat(long_len / built.observation_id.len() + 1);
            id.truncate(long_len);
            id
        };
        built.obj.set("observation_id", Value::str(id));
    } else {
        let serial = if empty {
            String::new()
        } else {
            let mut serial = built
                .charger
                .serial
                .repeat(long_len / built.charger.serial.len() + 1);
            serial.truncate(long_len);
            serial
        };
        if let Some(charger) = built.obj.obj_mut("charger") {
            charger.set("serial", Value::str(serial));
        }
    }
    Damaged::from_charger(built.charger, built.obj.to_bytes())
}
