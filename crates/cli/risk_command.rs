//! `delink risk`: what an adversary holding the outputs could do.

use std::path::PathBuf;

use anyhow::Result;
use delink_risk::assess;

use crate::ConfigArgs;

/// Plays the attacks of an adversary holding history/ and devices/ on a data
/// directory — unique joins between the datasets, per-charger sequence
/// alignment, counter continuity across key changes, k-anonymity of device
/// profiles — and reports them against the limits in `[risk]`. Exits 5 when a
/// limit is exceeded, naming it. Reads the Parquet outputs only (no key).
#[derive(clap::Args, Debug)]
pub(crate) struct RiskArgs {
    /// The data directory to assess [default: the configured data_dir].
    data: Option<PathBuf>,
    #[command(flatten)]
    settings: ConfigArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// A report that exceeds a limit; the exit code tells it from a failure to assess.
#[derive(Debug, thiserror::Error)]
#[error("privacy risk limits exceeded: {0}")]
pub(crate) struct LimitsExceeded(pub(crate) String);

pub(crate) fn run(args: RiskArgs) -> Result<()> {
    let (config, _) = crate::load_settings(&args.settings)?;
    let data_dir = args.data.unwrap_or(config.data_dir.clone());
    if !data_dir.is_dir() {
        anyhow::bail!("no data directory at {}", data_dir.display());
    }
    let report = assess(&data_dir, &config.risk)?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["failures"] = serde_json::to_value(report.failures())?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{report}");
    }
    let failures = report.failures();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(LimitsExceeded(failures.join("; ")).into())
    }
}
