//! `delink retention`: physical deletion in `history/` and the quarantine.

use anyhow::Result;
use delink_lifecycle::retention;

use crate::ConfigArgs;

/// Rewrites history without the rows of erased subjects, deletes partitions past
/// `retention.history_days`, and purges the quarantine past its retention.
/// Idempotent; safe to interrupt and run again. Waits for no run: it refuses
/// while a `delink run` holds the data directory.
#[derive(clap::Args, Debug)]
pub(crate) struct RetentionArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: RetentionArgs) -> Result<()> {
    let (config, _) = crate::load_settings(&args.settings)?;
    let store = delink_pipeline::open_key_store(&config)?;
    let report = retention(&config, store.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "retention: {} erasures applied, {} rows removed ({} files rewritten, {} deleted), {} history partitions expired, {} quarantine partitions purged",
            report.erasures_applied,
            report.rows_removed,
            report.files_rewritten,
            report.files_deleted,
            report.partitions_expired,
            report.quarantine_purged
        );
    }
    Ok(())
}
