use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use delink_decode::{DecodeLimits, decode};
use delink_policy::{Plan, compile};

use super::*;
use crate::pseudonym_hex;

const POLICY: &str = include_str!("../../../../config/policy.toml");
const EXAMPLE: &str = r#"{"schema":"charger.observation.v1","observation_id":"0b6f6c1e-6a51-4d7e-9b0e-3f1f2b8e9d10","observed_at":"2026-11-20T13:45:12.345+01:00","kind":"session_stop","charger":{"serial":"ZAP049123","model":"go2","firmware":"2.4.1","components":[{"kind":"sense","serial":"SNS00012"}]},"installation":{"id":"5d1c7a8e-2f4b-4c1a-9a7e-0e6b3f2d4c11","site_name":"Solbakken 12 garage","address":"Solbakken 12, 4021 Stavanger","lat":58.970123,"lon":5.733145,"country":"NO","property_type":"house"},"user":{"account_id":"c3f1e2d4-8b7a-4f6e-9d5c-1a2b3c4d5e6f","email":"Kari.Nordmann@example.no","name":"Kari Nordmann","phone":"+4791234567","rfid":"04a2 24b2 c13f 80","roles":["owner"]},"session":{"id":"9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b","started_at":"2026-11-20T09:02:00+01:00","ended_at":"2026-11-20T13:45:00+01:00","energy_wh":18250.5,"max_current_a":16.0,"phases":3},"meter":{"energy_total_wh":4521880.0,"power_w":0.0,"voltage_v":[231.2,230.8,232.0],"current_a":[0.0,0.0,0.0]},"status":{"state":"finished","fault_code":null,"temperature_c":21.5},"operator":{"cpo_id":"cpo-0042"},"network":{"ip":"81.166.12.34","signal_dbm":-61}}"#;

const SUBJECT: KeyBytes = [1; 32];
const INSTALLATION: KeyBytes = [2; 32];
const DEVICE: KeyBytes = [3; 32];
const COMPONENT: KeyBytes = [4; 32];
const DATASET: KeyBytes = [5; 32];

fn rows(plan: &Plan, dataset: delink_model::Dataset) -> RecordBatch {
    rows_of(EXAMPLE, plan, dataset)
}

/// Decodes one observation and builds its row of `dataset` under fixed test keys.
fn rows_of(text: &str, plan: &Plan, dataset: delink_model::Dataset) -> RecordBatch {
    builder_with(text, plan.dataset(dataset)).finish()
}

/// A builder holding the row of one observation under fixed test keys.
fn builder_with<'p>(text: &str, plan: &'p DatasetPlan) -> DatasetBatchBuilder<'p> {
    let decoded = decode(text.as_bytes(), &DecodeLimits::default()).expect("valid observation");
    let mut builder = DatasetBatchBuilder::new(plan, arrow_schema(plan));
    let keys = ObservationKeys {
        subject: Some(&SUBJECT),
        installation: Some(&INSTALLATION),
        device: &DEVICE,
        components: &[&COMPONENT],
        dataset: &DATASET,
    };
    builder.append(&decoded.observation, &keys);
    builder
}

fn text(batch: &RecordBatch, column: &str) -> String {
    batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"))
        .as_string::<i32>()
        .value(0)
        .to_owned()
}

#[test]
fn history_row_holds_pseudonyms_under_the_right_keys() {
    let plan = compile(POLICY).expect("policy");
    let batch = rows(&plan, delink_model::Dataset::History);
    assert_eq!(
        text(&batch, "account_pseudonym"),
        pseudonym_hex(
            &SUBJECT,
            "delink pseudonym v1 history/user.account_id",
            "c3f1e2d4-8b7a-4f6e-9d5c-1a2b3c4d5e6f"
        )
    );
    assert_eq!(
        text(&batch, "rfid_pseudonym"),
        pseudonym_hex(
            &SUBJECT,
            "delink pseudonym v1 history/user.rfid",
            "04a224b2c13f80"
        )
    );
    assert_eq!(
        text(&batch, "charger_pseudonym"),
        pseudonym_hex(
            &DEVICE,
            "delink pseudonym v1 history/charger.serial",
            "ZAP049123"
        )
    );
    let components = batch
        .column_by_name("component_pseudonyms")
        .expect("column")
        .as_list::<i32>();
    assert_eq!(
        components.value(0).as_string::<i32>().value(0),
        pseudonym_hex(
            &COMPONENT,
            "delink pseudonym v1 history/charger.components.serial",
            "SNS00012"
        )
    );
    let lat = batch
        .column_by_name("lat_grid")
        .expect("lat")
        .as_primitive::<Float64Type>();
    assert_eq!(lat.value(0), 58.97);
}

#[test]
fn devices_row_is_truncated_and_shares_no_value_with_history() {
    let plan = compile(POLICY).expect("policy");
    let history = rows(&plan, delink_model::Dataset::History);
    let devices = rows(&plan, delink_model::Dataset::Devices);
    let day = devices
        .column_by_name("observed_day")
        .expect("day")
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(day.value(0) % 86_400_000_000, 0);
    assert!(devices.column_by_name("account_pseudonym").is_none());
    for device_column in ["observation_pseudonym", "charger_pseudonym"] {
        let value = text(&devices, device_column);
        for field in history.schema().fields() {
            if field.data_type() == &DataType::Utf8 {
                assert_ne!(
                    text(&history, field.name()),
                    value,
                    "{device_column} vs {}",
                    field.name()
                );
            }
        }
    }
}

#[test]
fn no_input_value_of_a_personal_field_survives() {
    let plan = compile(POLICY).expect("policy");
    for dataset in delink_model::Dataset::ALL {
        let batch = rows(&plan, dataset);
        let rendered = format!("{batch:?}");
        for raw in [
            "Kari",
            "kari",
            "Solbakken",
            "81.166",
            "+4791234567",
            "ZAP049123",
            "SNS00012",
            "c3f1e2d4",
            "04a2",
            "5d1c7a8e",
            "9e8d7c6b",
            "0b6f6c1e",
            "58.970123",
        ] {
            assert!(!rendered.contains(raw), "{dataset:?} leaks {raw}");
        }
    }
}

mod dropped_fields {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever personal values an observation carries, the shipped policy writes none
        /// of them (nor any unknown field) to either dataset.
        #[test]
        fn dropped_and_unknown_values_never_reach_a_row(
            email in "[a-z]{6,12}@[a-z]{4,8}\\.no",
            name in "[A-Z][a-z]{5,9} [A-Z][a-z]{5,9}",
            phone in "\\+47[0-9]{8}",
            address in "[A-Z][a-z]{6,10}vegen [0-9]{1,3}",
            licence in "DL-[0-9]{8}",
        ) {
            let mut value: serde_json::Value = serde_json::from_str(EXAMPLE).expect("example");
            value["user"]["email"] = email.clone().into();
            value["user"]["name"] = name.clone().into();
            value["user"]["phone"] = phone.clone().into();
            value["installation"]["address"] = address.clone().into();
            value["installation"]["site_name"] = address.clone().into();
            value["user"]["driver_license"] = licence.clone().into();
            let text = value.to_string();
            let plan = compile(POLICY).expect("policy");
            for dataset in delink_model::Dataset::ALL {
                let rendered = format!("{:?}", rows_of(&text, &plan, dataset));
                for secret in [&email, &email.to_lowercase(), &name, &phone, &address, &licence] {
                    prop_assert!(!rendered.contains(secret.as_str()), "{:?} leaks {}", dataset, secret);
                }
            }
        }
    }
}

#[test]
fn kept_values_outside_their_domain_are_null_and_counted_by_field_and_reason() {
    let plan = compile(POLICY).expect("policy");
    let leaky = EXAMPLE
        .replace(r#""model":"go2""#, r#""model":"Kari Nordmann""#)
        .replace(
            r#""firmware":"2.4.1""#,
            r#""firmware":"kari.nordmann@example.no""#,
        )
        .replace(
            r#""kind":"sense""#,
            r#""kind":"Solbakken 12, 4021 Stavanger""#,
        )
        .replace(r#""cpo_id":"cpo-0042""#, r#""cpo_id":"+4791234567""#)
        .replace(
            r#""roles":["owner"]"#,
            r#""roles":["owner","c3f1e2d4-8b7a-4f6e"]"#,
        )
        .replace(r#""temperature_c":21.5"#, r#""temperature_c":4791234567"#)
        .replace(r#""fault_code":null"#, r#""fault_code":"Kari Nordmann""#);
    let mut builder = builder_with(&leaky, plan.dataset(delink_model::Dataset::History));
    let batch = builder.finish();
    for column in [
        "charger_model",
        "charger_firmware",
        "operator_cpo_id",
        "status_fault_code",
    ] {
        assert!(
            batch.column_by_name(column).expect(column).is_null(0),
            "{column}"
        );
    }
    assert!(
        batch
            .column_by_name("status_temperature_c")
            .expect("t")
            .is_null(0)
    );
    let kinds = batch
        .column_by_name("component_kinds")
        .expect("kinds")
        .as_list::<i32>();
    assert!(
        kinds.value(0).is_null(0),
        "the component kind element is left out"
    );
    let withheld = builder.take_withheld();
    let reason_of = |field: Field| {
        withheld
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, reason, count)| (*reason, *count))
    };
    assert_eq!(
        reason_of(Field::ChargerModel),
        Some((Withheld::NotInVocabulary, 1))
    );
    assert_eq!(
        reason_of(Field::ChargerFirmware),
        Some((Withheld::TooLong, 1))
    );
    assert_eq!(
        reason_of(Field::OperatorCpoId),
        Some((Withheld::NoMatch, 1))
    );
    assert_eq!(
        reason_of(Field::StatusTemperatureC),
        Some((Withheld::OutOfRange, 1))
    );
    assert!(
        builder.take_withheld().is_empty(),
        "taking the counts resets them"
    );
    // The kept values inside their domain pass unchanged.
    assert_eq!(text(&batch, "status_state"), "finished");
}
