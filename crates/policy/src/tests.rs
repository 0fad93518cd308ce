use delink_model::{Dataset, Field, Scope};

use super::*;

const SHIPPED: &str = include_str!("../../../config/policy.toml");

fn with_rule(dataset: &str, path: &str, rule: &str) -> String {
    let needle = format!("[{dataset}.fields]");
    let start = SHIPPED.find(&needle).expect("section");
    let key = format!("\n\"{path}\" = ");
    let at = start + SHIPPED[start..].find(&key).expect("field in section");
    let end = at + 1 + SHIPPED[at + 1..].find('\n').expect("line end");
    format!("{}{key}{rule}{}", &SHIPPED[..at], &SHIPPED[end..])
}

fn problems(text: &str) -> Vec<String> {
    match compile(text) {
        Err(PolicyError::Invalid { problems }) => problems,
        other => panic!("expected refusal, got {other:?}"),
    }
}

#[test]
fn shipped_policy_compiles() {
    let plan = compile(SHIPPED).expect("shipped policy is valid");
    let history: Vec<&str> = plan
        .history
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert!(history.contains(&"account_pseudonym"));
    assert!(!history.iter().any(|name| name.contains("email")));
    assert!(
        plan.devices
            .columns
            .iter()
            .all(|c| !c.field.is_subject_linked())
    );
}

#[test]
fn contexts_are_unique_across_datasets_and_columns() {
    let plan = compile(SHIPPED).expect("valid");
    let mut contexts = Vec::new();
    for dataset in Dataset::ALL {
        for column in &plan.dataset(dataset).columns {
            if let Action::Pseudonymise { context, .. } = &column.action {
                contexts.push(context.clone());
            }
        }
    }
    let count = contexts.len();
    contexts.sort();
    contexts.dedup();
    assert_eq!(contexts.len(), count);
}

#[test]
fn keeping_a_personal_field_in_clear_is_refused() {
    for path in [
        "user.email",
        "user.name",
        "user.phone",
        "installation.address",
        "installation.site_name",
        "network.ip",
        "user.account_id",
        "user.rfid",
        "charger.serial",
        "installation.id",
        "session.id",
        "observation_id",
        "installation.lat",
    ] {
        let found = problems(&with_rule("history", path, "\"keep\""));
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert!(found[0].contains(path), "{found:?}");
    }
}

#[test]
fn devices_refuses_subject_linked_and_installation_columns() {
    let cases = [
        (
            "user.account_id",
            r#"{ action = "pseudonymise", scope = "subject" }"#,
        ),
        ("user.roles", r#""keep""#),
        (
            "session.id",
            r#"{ action = "pseudonymise", scope = "dataset" }"#,
        ),
        (
            "installation.id",
            r#"{ action = "pseudonymise", scope = "installation" }"#,
        ),
        (
            "user.email",
            r#"{ action = "pseudonymise", scope = "subject" }"#,
        ),
        (
            "observation_id",
            r#"{ action = "pseudonymise", scope = "subject" }"#,
        ),
        (
            "observation_id",
            r#"{ action = "pseudonymise", scope = "dataset" }"#,
        ),
        (
            "network.ip",
            r#"{ action = "pseudonymise", scope = "device" }"#,
        ),
    ];
    for (path, rule) in cases {
        let found = problems(&with_rule("devices", path, rule));
        assert_eq!(found.len(), 1, "{path}: {found:?}");
    }
}

#[test]
fn incomplete_and_unknown_fields_are_all_reported() {
    let text = SHIPPED
        .replace("\"user.email\" = \"drop\"\n", "")
        .replace("\"network.ip\" = \"drop\"", "\"network.mac\" = \"drop\"");
    let found = problems(&text);
    assert!(
        found
            .iter()
            .any(|p| p.contains("history: `user.email` is not classified"))
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("devices: `user.email` is not classified"))
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("`network.mac` is not a field"))
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("`network.ip` is not classified"))
    );
}

#[test]
fn location_grid_has_a_floor_and_scopes_are_checked() {
    let found = problems(&with_rule(
        "history",
        "installation.lat",
        r#"{ action = "generalise", grid = 0.0001 }"#,
    ));
    assert!(found[0].contains("point at a home"), "{found:?}");
    let found = problems(&with_rule(
        "history",
        "charger.serial",
        r#"{ action = "pseudonymise", scope = "subject" }"#,
    ));
    assert!(found[0].contains("not allowed"), "{found:?}");
    let found = problems(&with_rule(
        "history",
        "charger.serial",
        r#"{ action = "pseudonymise" }"#,
    ));
    assert!(found[0].contains("needs a scope"), "{found:?}");
}

#[test]
fn pseudonymised_columns_carry_their_scope() {
    let plan = compile(SHIPPED).expect("valid");
    let scope_of = |field: Field| {
        plan.history
            .columns
            .iter()
            .find(|c| c.field == field)
            .map(|c| c.action.clone())
    };
    assert!(matches!(
        scope_of(Field::UserRfid),
        Some(Action::Pseudonymise {
            scope: Scope::Subject,
            ..
        })
    ));
    assert!(matches!(
        scope_of(Field::ChargerSerial),
        Some(Action::Pseudonymise {
            scope: Scope::Device,
            ..
        })
    ));
}

#[test]
fn a_kept_string_or_number_without_a_domain_is_refused() {
    for (path, rule, needle) in [
        ("charger.model", r#""keep""#, "a kept string needs a domain"),
        (
            "status.fault_code",
            r#"{ action = "keep", pattern = "[A-Z]+" }"#,
            "max_len",
        ),
        (
            "status.fault_code",
            r#"{ action = "keep", pattern = "(", max_len = 4 }"#,
            "not a valid regular expression",
        ),
        (
            "charger.model",
            r#"{ action = "keep", values = [] }"#,
            "non-empty",
        ),
        (
            "session.energy_wh",
            r#""keep""#,
            "a kept number needs a finite range",
        ),
        (
            "session.energy_wh",
            r#"{ action = "keep", range = [5, 1] }"#,
            "min <= max",
        ),
        (
            "session.energy_wh",
            r#"{ action = "keep", values = ["1"] }"#,
            "kept strings only",
        ),
        (
            "charger.model",
            r#"{ action = "keep", range = [0, 1] }"#,
            "kept numbers only",
        ),
    ] {
        let found = problems(&with_rule("devices", path, rule));
        assert!(
            found
                .iter()
                .any(|problem| problem.contains(needle) && problem.contains(path)),
            "{path} = {rule}: {found:?}"
        );
    }
}

#[test]
fn the_shipped_devices_anonymity_names_real_columns_and_paths_per_kind() {
    let plan = compile(SHIPPED).expect("shipped policy is valid");
    let anonymity = plan
        .devices
        .anonymity
        .as_ref()
        .expect("devices/ is anonymised");
    assert_eq!(anonymity.k, 10);
    assert_eq!(anonymity.charger_column, "charger_pseudonym");
    assert_eq!(anonymity.kind_column.as_deref(), Some("kind"));
    assert_eq!(anonymity.microaggregate, ["session_energy_wh"]);
    let last = |kind: &str| {
        anonymity
            .steps_for(Some(kind))
            .last()
            .map(|s| s.columns.clone())
    };
    assert_eq!(last("fault"), Some(vec!["charger_firmware".to_owned()]));
    assert_eq!(
        last("session_start"),
        Some(vec!["property_type".to_owned()])
    );
    assert_eq!(last("session_stop"), Some(vec!["country".to_owned()]));
    assert_eq!(last("heartbeat"), Some(vec!["status_state".to_owned()]));
    let steps = Anonymity::describe_steps(&anonymity.steps);
    assert_eq!(
        Anonymity::parse_steps(&steps).as_deref(),
        Some(anonymity.steps.as_slice())
    );
    assert!(plan.history.anonymity.is_none());
}

#[test]
fn an_anonymity_section_that_cannot_hold_is_refused_with_every_reason() {
    let (fields, _) = SHIPPED.split_once("[devices.anonymity]").expect("section");
    let broken = format!(
        "{fields}[devices.anonymity]\nk = 1\nsteps = [\n  {{ columns = [\"no_such_column\"] }},\n  {{ columns = [\"country\"], grid = 1.0 }},\n  {{ columns = [\"lat_grid\"], grid = 0.01 }},\n  {{ columns = [\"charger_pseudonym\"] }},\n  {{ columns = [\"lat_grid\"], grid = 1.0, segments = 2 }},\n]\nmicroaggregate = [\"country\", \"lat_grid\"]\n"
    );
    let found = problems(&broken).join("\n");
    for expected in [
        "k = 1 must be between 2 and 1000",
        "`no_such_column` is not a column",
        "`country`: grid applies to numbers",
        "coarser than the column's",
        "pseudonyms and timestamps are not profile columns",
        "give a positive grid, segments >= 1, or neither",
        "`country` is not a number",
        "`lat_grid` cannot be both coarsened and microaggregated",
    ] {
        assert!(
            found.contains(expected),
            "{expected} missing from:\n{found}"
        );
    }
    let on_history = SHIPPED.replace(
        "[history.fields]",
        "[history.anonymity]\nk = 10\nsteps = []\n\n[history.fields]",
    );
    assert!(
        problems(&on_history)
            .join("\n")
            .contains("k-anonymity applies to devices/")
    );
}
