//! The `delink` command: thin glue over `delink-pipeline` and `delink-synth`.

mod config_command;
mod erase_command;
mod export_command;
mod gen_command;
mod kafka_load;
mod kafka_source;
mod keys_command;
mod logging;
mod quarantine_command;
mod retention_command;
mod risk_command;
mod run_command;
mod shutdown;
mod validate_command;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;

use clap::{Parser, Subcommand};

/// Makes EV-charger telemetry safe to keep and to analyse: personal identifiers become
/// keyed pseudonyms, identifiable charging history is split from de-linked device
/// records, and both are written as partitioned Parquet.
#[derive(Parser)]
#[command(name = "delink", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format on stderr (level from `RUST_LOG`, default `info`).
    #[arg(
        long,
        global = true,
        env = "DELINK_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Pseudonymises NDJSON observations (files, stdin or Kafka topics) into history/, devices/ and quarantine/.
    Run(run_command::RunArgs),
    /// Writes synthetic observations (with broken lines on request) as NDJSON, or produces them into Kafka.
    Gen(gen_command::GenArgs),
    /// Checks the configuration and policy without touching data, and prints the output columns.
    Validate(validate_command::ValidateArgs),
    /// Checks a deployment: configuration, policy, and a side-effect-free connection to what they name.
    Config(config_command::ConfigCommandArgs),
    /// Inspects the quarantine: counts by reason, or decrypts a day's records for replay.
    Quarantine(quarantine_command::QuarantineArgs),
    /// Erases subjects, installations or devices by deleting their keys (crypto-shredding).
    Erase(erase_command::EraseArgs),
    /// Rotates and retires key-encryption keys; shows when erasures are complete.
    Keys(keys_command::KeysArgs),
    /// Deletes erased subjects' history rows and data past its retention.
    Retention(retention_command::RetentionArgs),
    /// Exports one subject's history rows (access and portability requests).
    Export(export_command::ExportArgs),
    /// Reports what an adversary holding the outputs could link (joins, sequences, counters, k-anonymity).
    Risk(risk_command::RiskArgs),
}

/// Options shared by commands that read the configuration.
#[derive(clap::Args, Debug, Clone)]
struct ConfigArgs {
    /// Runtime configuration file (TOML); built-in defaults when omitted.
    #[arg(long, short = 'c', env = "DELINK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Field policy file; overrides `policy_file` (built-in policy when neither is set).
    #[arg(long, env = "DELINK_POLICY", value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Data directory; overrides `data_dir` [default: delink-data].
    #[arg(long, short = 'd', value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let outcome = match cli.command {
        Command::Run(args) => run_command::run(args),
        Command::Gen(args) => gen_command::run(args),
        Command::Validate(args) => validate_command::run(args),
        Command::Config(args) => config_command::run(args),
        Command::Quarantine(args) => quarantine_command::run(args),
        Command::Erase(args) => erase_command::run(args),
        Command::Keys(args) => keys_command::run(args),
        Command::Retention(args) => retention_command::run(args),
        Command::Export(args) => export_command::run(args),
        Command::Risk(args) => risk_command::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            crate::logging::fatal(&error);
            if error.is::<risk_command::LimitsExceeded>() {
                ExitCode::from(5)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Loads configuration and policy with every override applied.
fn load_settings(
    args: &ConfigArgs,
) -> anyhow::Result<(delink_config::Config, delink_policy::Plan)> {
    let mut config = delink_config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(policy) = &args.policy {
        config.policy_file = Some(policy.clone());
    }
    let policy_text = match &config.policy_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read policy {}: {error}", path.display()))?,
        None => BUILT_IN_POLICY.to_owned(),
    };
    let plan = delink_policy::compile(&policy_text)?;
    Ok((config, plan))
}

/// The shipped policy, used when no policy file is configured.
const BUILT_IN_POLICY: &str = include_str!("../../config/policy.toml");

/// Parses `35d`, `12h`, `30m` or `45s`.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow!("expected a number and a unit (d, h, m, s), e.g. 35d"))?;
    let seconds = match unit {
        "d" => number * 86_400,
        "h" => number * 3_600,
        "m" => number * 60,
        "s" => number,
        _ => return Err(anyhow!("unknown unit {unit:?}; use d, h, m or s")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(
            parse_duration("35d").expect("days"),
            delink_lifecycle::BACKUP_WINDOW
        );
        assert_eq!(parse_duration("2h").expect("hours").as_secs(), 7200);
        assert_eq!(parse_duration("0s").expect("zero").as_secs(), 0);
        assert!(parse_duration("35").is_err());
        assert!(parse_duration("d").is_err());
    }
}
