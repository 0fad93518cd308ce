use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use delink_datadir::{OutputStore, QUARANTINE, quarantine_counts, quarantined_records};
use delink_pipeline::{StoreAccess, open_key_store};

use crate::{ConfigArgs, load_settings};

/// Arguments of `delink quarantine`.
#[derive(clap::Args, Debug)]
pub(crate) struct QuarantineArgs {
    #[command(subcommand)]
    action: QuarantineAction,
}

#[derive(clap::Subcommand, Debug)]
enum QuarantineAction {
    /// Counts quarantined records by day and reason (nothing is decrypted).
    List {
        #[command(flatten)]
        settings: ConfigArgs,
    },
    /// Decrypts one day's quarantined records and writes them as NDJSON, in input order,
    /// ready to be fixed and replayed with `delink run`. The output holds personal data
    /// in clear: keep it private and delete it after use.
    Export {
        /// The quarantine partition to export (`YYYY-MM-DD`).
        #[arg(long, value_name = "DATE")]
        date: String,
        /// Output file; standard output when omitted.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        settings: ConfigArgs,
    },
}

pub(crate) fn run(args: QuarantineArgs) -> anyhow::Result<()> {
    match args.action {
        QuarantineAction::List { settings } => {
            let (config, _plan) = load_settings(&settings)?;
            let outputs = OutputStore::for_config(&config)?;
            let counts = quarantine_counts(&outputs)?;
            if counts.is_empty() {
                println!(
                    "no quarantined records under {}",
                    outputs.describe(QUARANTINE)
                );
            }
            for (date, reasons) in counts {
                let total: u64 = reasons.values().sum();
                println!("{date}  {total} records");
                for (reason, count) in reasons {
                    println!("  {reason:<16} {count}");
                }
            }
            Ok(())
        }
        QuarantineAction::Export {
            date,
            output,
            settings,
        } => {
            let (config, _plan) = load_settings(&settings)?;
            let outputs = OutputStore::for_config(&config)?;
            let store = open_key_store(&config, StoreAccess::Existing)?;
            let records = quarantined_records(&outputs, store.as_ref(), &date)?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    delink_datadir::create_private_file(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            for record in &records {
                out.write_all(&record.bytes)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            let cut = records
                .iter()
                .filter(|r| r.record_bytes > r.bytes.len() as u64)
                .count();
            crate::logging::status(format_args!(
                "exported {} quarantined records of {date} in clear ({cut} cut at quarantine.keep_bytes); they hold personal data: delete them after use",
                records.len()
            ));
            Ok(())
        }
    }
}
