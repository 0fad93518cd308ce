//! `delink keys`: KEK rotation, retirement and the backup horizon.

use std::time::Duration;

use anyhow::Result;
use delink_lifecycle::{BACKUP_WINDOW, format_time, key_status, retire, rotate};

use crate::ConfigArgs;

/// Manages the key-encryption keys (KEKs) of the key store.
#[derive(clap::Args, Debug)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(clap::Subcommand, Debug)]
enum KeysAction {
    /// Creates the key store (and its KEK, when none is configured) without processing
    /// anything; every command but `run` refuses to work on a missing store.
    Init {
        #[command(flatten)]
        settings: ConfigArgs,
    },
    /// Adds a KEK version and re-wraps every live key under it (do this after erasures).
    Rotate {
        #[command(flatten)]
        settings: ConfigArgs,
    },
    /// Destroys KEK versions superseded long enough ago, and expired device-key epochs.
    Retire {
        #[command(flatten)]
        settings: ConfigArgs,
        /// How long ago a version must have been superseded: the backup window, e.g. `35d`, `12h`.
        #[arg(long, value_name = "AGE", default_value = "35d", value_parser = crate::parse_duration)]
        older_than: Duration,
    },
    /// Shows KEK versions, key counts, and when each erasure is complete in backups too.
    Status {
        #[command(flatten)]
        settings: ConfigArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: KeysArgs) -> Result<()> {
    match args.action {
        KeysAction::Init { settings } => {
            let (config, _) = crate::load_settings(&settings)?;
            delink_pipeline::open_key_store(
                &config,
                delink_pipeline::StoreAccess::CreateIfMissing,
            )?;
            match config.keystore.backend.as_str() {
                "postgres" => println!("key store ready in the configured PostgreSQL database"),
                _ => println!(
                    "key store ready in {}",
                    delink_datadir::DataLayout::new(&config.data_dir)
                        .keys()
                        .display()
                ),
            }
        }
        KeysAction::Rotate { settings } => {
            let (config, _) = crate::load_settings(&settings)?;
            let store =
                delink_pipeline::open_key_store(&config, delink_pipeline::StoreAccess::Existing)?;
            let report = rotate(&config, store.as_ref())?;
            println!(
                "KEK version {} in use: {} keys re-wrapped; retire older versions with `delink keys retire` after {}",
                report.kek_version,
                report.rewrapped,
                format_time(chrono::Utc::now().timestamp() + BACKUP_WINDOW.as_secs() as i64)
            );
        }
        KeysAction::Retire {
            settings,
            older_than,
        } => {
            let (config, _) = crate::load_settings(&settings)?;
            if older_than < BACKUP_WINDOW {
                tracing::warn!(
                    "retiring KEK versions younger than the 35-day backup window: backups taken before the rotation become unreadable"
                );
            }
            let store =
                delink_pipeline::open_key_store(&config, delink_pipeline::StoreAccess::Existing)?;
            let report = retire(&config, store.as_ref(), older_than)?;
            for version in &report.destroyed {
                println!("KEK version {version}: destroyed");
            }
            for (version, reason) in &report.kept {
                println!("KEK version {version}: kept ({reason})");
            }
            if report.device_keys > 0 {
                println!(
                    "{} device keys of expired epochs destroyed",
                    report.device_keys
                );
            }
        }
        KeysAction::Status { settings, json } => {
            let (config, _) = crate::load_settings(&settings)?;
            let store =
                delink_pipeline::open_key_store(&config, delink_pipeline::StoreAccess::Existing)?;
            let status = key_status(&config, store.as_ref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            println!("{} live keys", status.live_keys);
            println!("KEK versions:");
            for version in &status.kek_versions {
                let when = |label: &str, at: Option<i64>| {
                    at.map(|at| format!(", {label} {}", format_time(at)))
                        .unwrap_or_default()
                };
                println!(
                    "  v{}: {} keys, {}{}{}{}",
                    version.version,
                    version.keys,
                    if version.loaded {
                        "loaded"
                    } else {
                        "not in the keyring"
                    },
                    when("in use since", version.in_use_since),
                    when("superseded", version.superseded_at),
                    when("destroyed", version.destroyed_at),
                );
            }
            println!("erasures:");
            for erasure in &status.erasures {
                let state = match (erasure.complete_since, &erasure.next_step) {
                    (Some(at), _) => format!("complete since {}", format_time(at)),
                    (None, Some(step)) => format!("pending in backups: {step}"),
                    (None, None) => "pending".to_owned(),
                };
                println!(
                    "  {} {} ({} keys) at {}: {state}",
                    erasure.request_id,
                    erasure.scope,
                    erasure.keys,
                    format_time(erasure.at)
                );
            }
            println!("{}", status.completeness.assumes);
            if let Some(reason) = &status.completeness.broken_by {
                println!("WARNING: no erasure is complete: {reason}");
            }
        }
    }
    Ok(())
}
