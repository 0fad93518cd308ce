//! `delink risk`: what an adversary holding the outputs could do.

use std::path::Path;

use anyhow::Result;
use delink_datadir::OutputStore;
use delink_risk::assess;

use crate::ConfigArgs;

/// Plays the attacks of an adversary holding history/ and devices/ on a data
/// directory — unique joins between the datasets, per-charger sequence
/// alignment, counter continuity across key changes, k-anonymity of device
/// profiles — and reports them against the limits in `[risk]`. Exits 5 when a
/// limit is exceeded, naming it. Reads the Parquet outputs only (no key).
#[derive(clap::Args, Debug)]
pub(crate) struct RiskArgs {
    /// The outputs to assess: a data directory, or an object-store URL such as
    /// `s3://bucket/prefix` [default: the configured output.location, else data_dir].
    #[arg(value_name = "DATA")]
    data: Option<String>,
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
    let outputs = match &args.data {
        Some(location) if location.contains("://") => {
            OutputStore::open(Some(location), Path::new(""))?
        }
        Some(dir) => local_outputs(Path::new(dir))?,
        None if config.output.location.is_some() => OutputStore::for_config(&config)?,
        None => local_outputs(&config.data_dir)?,
    };
    let report = assess(&outputs, &config.risk)?;
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

/// Opens a local data directory's outputs; one that does not exist is an error, not created.
fn local_outputs(dir: &Path) -> Result<OutputStore> {
    if !dir.is_dir() {
        anyhow::bail!("no data directory at {}", dir.display());
    }
    OutputStore::local(dir)
}
