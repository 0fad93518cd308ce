//! Defaults, then a file, then environment overrides.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::{Config, ConfigError};

/// Prefix of environment overrides: `DELINK__INPUT__SEGMENT_RECORDS=500000`.
pub const ENV_PREFIX: &str = "DELINK__";

/// Loads the configuration from an optional file and the given environment.
pub fn load(
    file: Option<&Path>,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
                problems: vec![format!("cannot read {}: {error}", path.display())],
            })?;
            text.parse::<Table>().map_err(|error| ConfigError {
                problems: vec![format!("{} is not valid TOML: {error}", path.display())],
            })?
        }
        None => Table::new(),
    };
    let mut keyring_dirs = [None, None, None];
    // (dotted key, variable) of each environment override, to name it in errors.
    let mut overridden = Vec::new();
    for (name, raw) in environment {
        if let Some(path) = name.strip_prefix(ENV_PREFIX) {
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            set(&mut table, &keys, scalar(&raw));
            overridden.push((keys.join("."), name.clone()));
        }
        let slot = match name.as_str() {
            crate::KEYRING_DIR_ENV => 0,
            "XDG_CONFIG_HOME" => 1,
            "HOME" => 2,
            _ => continue,
        };
        if !raw.trim().is_empty() {
            keyring_dirs[slot] = Some(raw);
        }
    }
    let [own, xdg, home] = keyring_dirs;
    let keyring_dir = own
        .map(PathBuf::from)
        .or_else(|| xdg.map(|dir| Path::new(&dir).join("delink").join("keyrings")))
        .or_else(|| home.map(|dir| Path::new(&dir).join(".config/delink/keyrings")));
    let mut config: Config =
        serde_path_to_error::deserialize(Value::Table(table)).map_err(|error| {
            let key = error.path().to_string();
            let origin = match overridden.iter().find(|(path, _)| *path == key) {
                Some((_, variable)) => format!(" (set by {variable})"),
                None => file.map_or_else(String::new, |path| format!(" (in {})", path.display())),
            };
            // serde's message quotes the value: never one that may be a secret.
            let message = if holds_secret(&key) {
                "the value does not fit (not shown: this key holds a secret)".to_owned()
            } else {
                error.inner().message().to_owned()
            };
            ConfigError {
                problems: vec![format!("{key}{origin}: {message}")],
            }
        })?;
    config.keyring_dir = keyring_dir;
    config.validate()?;
    Ok(config)
}

/// Tells whether the dotted configuration key may hold a secret: the key-store
/// URL, or a Kafka property whose name says password, secret, key or token.
fn holds_secret(key: &str) -> bool {
    match key.strip_prefix("kafka.properties.") {
        Some(property) => crate::kafka::is_sensitive(property),
        None => key == "keystore.postgres_url",
    }
}

/// Reads an override as a TOML scalar when it is one (`42`, `true`), else as a string.
fn scalar(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .filter(|value| !value.is_table())
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn set(table: &mut Table, keys: &[String], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else {
            unreachable!("made a table above")
        };
        current = next;
    }
    current.insert(last.clone(), value);
}
