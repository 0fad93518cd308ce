//! `delink retention`: physical deletion in `history/` and the quarantine.

use anyhow::Result;
use delink_lifecycle::retention;

use crate::ConfigArgs;

/// Rewrites history without the rows of erased subjects, deletes partitions past
/// `retention.history_days`, and purges the quarantine past its retention.
/// Idempotent; safe to interrupt and run again, and to run while workers run: an
/// erasure is applied once every running worker has published what it read before
/// the erasure took effect, and stays pending until then.
#[derive(clap::Args, Debug)]
pub(crate) struct RetentionArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// How long to wait for running workers to publish what they read before pending
    /// erasures took effect (erasures still waiting stay pending for the next pass).
    #[arg(long, default_value = "2m", value_parser = crate::parse_duration)]
    wait: std::time::Duration,
}

pub(crate) fn run(args: RetentionArgs) -> Result<()> {
    let (config, _) = crate::load_settings(&args.settings)?;
    let store = delink_pipeline::open_key_store(&config, delink_pipeline::StoreAccess::Existing)?;
    let report = retention(&config, store.as_ref(), args.wait)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "retention: {} erasures applied, {} waiting, {} rows removed ({} files rewritten, {} deleted), {} history partitions expired, {} quarantine partitions purged",
            report.erasures_applied,
            report.erasures_waiting,
            report.rows_removed,
            report.files_rewritten,
            report.files_deleted,
            report.partitions_expired,
            report.quarantine_purged
        );
    }
    Ok(())
}
