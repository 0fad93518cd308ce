use delink_model::{Kind, RejectionReason, SubjectId};
use proptest::prelude::*;

use super::*;

const SPEC_EXAMPLE: &str = r#"{"schema":"charger.observation.v1","observation_id":"0b6f6c1e-6a51-4d7e-9b0e-3f1f2b8e9d10","observed_at":"2026-11-20T13:45:12.345+01:00","kind":"session_stop","charger":{"serial":"ZAP049123","model":"go2","firmware":"2.4.1","components":[{"kind":"sense","serial":"SNS00012"}]},"installation":{"id":"5d1c7a8e-2f4b-4c1a-9a7e-0e6b3f2d4c11","site_name":"Solbakken 12 garage","address":"Solbakken 12, 4021 Stavanger","lat":58.970123,"lon":5.733145,"country":"NO","property_type":"house"},"user":{"account_id":"c3f1e2d4-8b7a-4f6e-9d5c-1a2b3c4d5e6f","email":"Kari.Nordmann@example.no","name":"Kari Nordmann","phone":"+4791234567","rfid":"04a2 24b2 c13f 80","roles":["owner"]},"session":{"id":"9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b","started_at":"2026-11-20T09:02:00+01:00","ended_at":"2026-11-20T13:45:00+01:00","energy_wh":18250.5,"max_current_a":16.0,"phases":3},"meter":{"energy_total_wh":4521880.0,"power_w":0.0,"voltage_v":[231.2,230.8,232.0],"current_a":[0.0,0.0,0.0]},"status":{"state":"finished","fault_code":null,"temperature_c":21.5},"operator":{"cpo_id":"cpo-0042"},"network":{"ip":"81.166.12.34","signal_dbm":-61}}"#;

fn reason_of(text: &str) -> RejectionReason {
    decode(text.as_bytes(), &DecodeLimits::default())
        .expect_err("should be rejected")
        .reason
}

fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(SPEC_EXAMPLE).expect("example parses");
    edit(&mut value);
    value.to_string()
}

#[test]
fn spec_example_decodes_and_normalises() {
    let decoded = decode(SPEC_EXAMPLE.as_bytes(), &DecodeLimits::default()).expect("valid");
    let observation = decoded.observation;
    assert_eq!(observation.kind, Kind::SessionStop);
    assert_eq!(observation.observed_at_us, 1_795_178_712_345_000);
    let user = observation.user.expect("user");
    assert_eq!(user.email.as_deref(), Some("kari.nordmann@example.no"));
    assert_eq!(user.rfid.as_deref(), Some("04a224b2c13f80"));
    assert_eq!(
        user.subject(),
        Some(SubjectId::Account("c3f1e2d4-8b7a-4f6e-9d5c-1a2b3c4d5e6f"))
    );
    assert_eq!(observation.charger.components[0].serial, "SNS00012");
    assert!(decoded.unknown_fields.is_empty());
}

#[test]
fn unknown_fields_are_reported_by_path() {
    let text = edited(|v| {
        v["user"]["driver_license"] = "DL-12345678".into();
        v["firmware_channel"] = "beta".into();
        v["charger"]["components"][0]["colour"] = "red".into();
        v["Kari@example.no"] = 1.into();
    });
    let decoded = decode(text.as_bytes(), &DecodeLimits::default()).expect("still valid");
    let mut names = decoded.unknown_fields;
    names.sort();
    assert_eq!(
        names,
        [
            "(unnameable)",
            "charger.components.colour",
            "firmware_channel",
            "user.driver_license"
        ]
    );
}

#[test]
fn every_broken_form_gets_its_reason() {
    use RejectionReason::*;
    let cases: Vec<(String, RejectionReason)> = vec![
        (SPEC_EXAMPLE[..200].to_owned(), NotJson),
        ("<html>oops".to_owned(), NotJson),
        ("[1,2]".to_owned(), WrongType),
        (
            edited(|v| v["schema"] = "charger.observation.v2".into()),
            UnknownSchema,
        ),
        (
            edited(|v| v["observation_id"] = serde_json::Value::Null),
            MissingField,
        ),
        (
            edited(|v| {
                v.as_object_mut().map(|o| o.remove("charger"));
            }),
            MissingField,
        ),
        (
            edited(|v| {
                v["charger"].as_object_mut().map(|o| o.remove("serial"));
            }),
            MissingField,
        ),
        (
            edited(|v| v["observed_at"] = 1_732_100_000.into()),
            WrongType,
        ),
        (edited(|v| v["session"]["phases"] = "3".into()), WrongType),
        (edited(|v| v["user"]["roles"] = "owner".into()), WrongType),
        (
            edited(|v| v["observed_at"] = "yesterday".into()),
            BadTimestamp,
        ),
        (
            edited(|v| v["observed_at"] = "2026-11-20T13:45:12".into()),
            BadTimestamp,
        ),
        (
            edited(|v| v["session"]["started_at"] = "2026-13-45T10:00:00Z".into()),
            BadTimestamp,
        ),
        (edited(|v| v["kind"] = "reboot".into()), UnknownKind),
        (edited(|v| v["session"]["phases"] = 4.into()), OutOfRange),
        (
            edited(|v| v["installation"]["lat"] = 123.0.into()),
            OutOfRange,
        ),
        (
            edited(|v| v["meter"]["voltage_v"] = serde_json::json!([])),
            OutOfRange,
        ),
        (
            edited(|v| v["charger"]["serial"] = "".into()),
            BadIdentifier,
        ),
        (
            edited(|v| v["observation_id"] = "x".repeat(129).into()),
            BadIdentifier,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(reason_of(&text), expected, "{text}");
    }
}

#[test]
fn a_key_given_twice_is_rejected_even_when_the_first_is_null() {
    let twice = |object: &str, key: &str, first: &str| {
        let at = SPEC_EXAMPLE.find(object).expect("object") + object.len();
        format!(
            "{}\"{key}\":{first},{}",
            &SPEC_EXAMPLE[..at],
            &SPEC_EXAMPLE[at..]
        )
    };
    for text in [
        twice("{", "kind", "\"status\""),
        twice("{", "charger", "null"),
        twice("\"user\":{", "account_id", "null"),
        twice("\"components\":[{", "serial", "\"SNS1\""),
    ] {
        assert_eq!(reason_of(&text), RejectionReason::NotJson, "{text}");
    }
}

#[test]
fn objects_given_as_arrays_are_the_wrong_type() {
    assert_eq!(
        reason_of(r#"["charger.observation.v1","0b6f","2026-11-20T13:45:12Z","status"]"#),
        RejectionReason::WrongType
    );
    let text = edited(|v| v["user"] = serde_json::json!(["c3f1", "kari@example.no"]));
    assert_eq!(reason_of(&text), RejectionReason::WrongType);
}

#[test]
fn strings_borrow_from_the_input_unless_escaped() {
    let escaped = SPEC_EXAMPLE.replace("\"go2\"", "\"go\\u0032\"");
    let raw = raw::parse(&escaped, |_| {}).expect("parses");
    let charger = raw.charger.expect("charger");
    assert!(matches!(
        charger.serial,
        Some(std::borrow::Cow::Borrowed("ZAP049123"))
    ));
    assert!(matches!(&charger.model, Some(std::borrow::Cow::Owned(model)) if model == "go2"));
    let mut keys = Vec::new();
    let escaped_key = SPEC_EXAMPLE.replace("\"firmware\"", "\"firm\\u0077are\"");
    let raw = raw::parse(&escaped_key, |name| keys.push(name)).expect("parses");
    assert_eq!(
        raw.charger.expect("charger").firmware.as_deref(),
        Some("2.4.1")
    );
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn unknown_fields_inside_unknown_objects_are_reported_once_at_the_top() {
    let text = edited(|v| {
        v["vehicle"] = serde_json::json!({"vin": "WVWZZZ1JZXW000001", "owner": {"name": "Kari"}});
        v["meter"]["phase_angles"] = serde_json::json!([1, 2, 3]);
    });
    let mut names = decode(text.as_bytes(), &DecodeLimits::default())
        .expect("still valid")
        .unknown_fields;
    names.sort();
    assert_eq!(names, ["meter.phase_angles", "vehicle"]);
}

#[test]
fn size_cap_and_utf8_are_checked_first() {
    let limits = DecodeLimits {
        max_record_bytes: 100,
    };
    let rejection = decode(SPEC_EXAMPLE.as_bytes(), &limits).expect_err("too large");
    assert_eq!(rejection.reason, RejectionReason::TooLarge);
    let mut bytes = SPEC_EXAMPLE.as_bytes().to_vec();
    let at = SPEC_EXAMPLE.find("Solbakken").expect("site name");
    bytes[at] = 0xFF;
    let rejection = decode(&bytes, &DecodeLimits::default()).expect_err("not utf8");
    assert_eq!(rejection.reason, RejectionReason::NotUtf8);
}

#[test]
fn offsets_are_converted_to_utc() {
    let late = edited(|v| v["observed_at"] = "2026-11-20T23:30:00-05:00".into());
    let decoded = decode(late.as_bytes(), &DecodeLimits::default()).expect("valid");
    assert_eq!(decoded.observation.observed_at_us, 1_795_235_400_000_000);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _verdict = decode(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn any_truncation_of_a_valid_record_is_rejected_as_not_json(cut in 1usize..1300) {
        let cut = cut.min(SPEC_EXAMPLE.len() - 1);
        prop_assert_eq!(reason_of(&SPEC_EXAMPLE[..cut]), RejectionReason::NotJson);
    }
}
