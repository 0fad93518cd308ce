//! `delink export`: subject access and portability.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use delink_lifecycle::{SubjectRef, export_subject};

use crate::ConfigArgs;

/// Writes every history row of one subject as JSON lines and CSV, with what
/// each column means (`rows.jsonl`, `rows.csv`, `columns.json`).
#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// The subject's account id (`user.account_id`).
    #[arg(long, value_name = "ACCOUNT_ID", conflicts_with = "rfid")]
    subject: Option<String>,
    /// An anonymous RFID tag, for a subject without an account.
    #[arg(long, value_name = "TAG")]
    rfid: Option<String>,
    /// Directory to write the export into.
    #[arg(long, short = 'o', value_name = "DIR", default_value = "export")]
    output: PathBuf,
}

pub(crate) fn run(args: ExportArgs) -> Result<()> {
    let subject = match (args.subject, args.rfid) {
        (Some(account), None) => SubjectRef::Account(account),
        (None, Some(tag)) => SubjectRef::Rfid(tag),
        _ => return Err(anyhow!("name the subject with --subject or --rfid")),
    };
    let (config, plan) = crate::load_settings(&args.settings)?;
    let store = delink_pipeline::open_key_store(&config, delink_pipeline::StoreAccess::Existing)?;
    let report = export_subject(&config, &plan, store.as_ref(), &subject, &args.output)?;
    println!("exported {} rows to {}", report.rows, args.output.display());
    Ok(())
}
