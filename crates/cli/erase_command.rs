//! `delink erase`: crypto-shredding on request.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use delink_lifecycle::{SubjectRef, Target, erase, format_time, parse_targets};

use crate::ConfigArgs;

/// Deletes the keys of subjects, installations and devices, so nothing written
/// with them can be linked to the identifier again, and records the erased
/// subjects' rows for `delink retention`.
///
/// Identifiers given as arguments are visible in the process list; prefer `--file`.
#[derive(clap::Args, Debug)]
pub(crate) struct EraseArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// An account (`user.account_id`) to erase.
    #[arg(long = "subject", value_name = "ACCOUNT_ID")]
    subjects: Vec<String>,
    /// An anonymous RFID tag (a subject of its own) to erase.
    #[arg(long = "rfid", value_name = "TAG")]
    rfids: Vec<String>,
    /// An installation (`installation.id`) to erase.
    #[arg(long = "installation", value_name = "ID")]
    installations: Vec<String>,
    /// A charger or component serial to erase (every key epoch).
    #[arg(long = "device", value_name = "SERIAL")]
    devices: Vec<String>,
    /// A file of requests, one `<subject|rfid|installation|device> <identifier>` per line.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The request id to journal; a random one when omitted.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Return once the keys are deleted, without waiting for the propagation delay.
    #[arg(long)]
    no_wait: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: EraseArgs) -> Result<()> {
    let (config, plan) = crate::load_settings(&args.settings)?;
    let mut targets: Vec<Target> = Vec::new();
    targets.extend(
        args.subjects
            .iter()
            .map(|id| Target::Subject(SubjectRef::Account(id.clone()))),
    );
    targets.extend(
        args.rfids
            .iter()
            .map(|tag| Target::Subject(SubjectRef::Rfid(tag.clone()))),
    );
    targets.extend(args.installations.iter().cloned().map(Target::Installation));
    targets.extend(args.devices.iter().cloned().map(Target::Device));
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .map_err(|error| anyhow!("cannot read {}: {error}", file.display()))?;
        targets.extend(parse_targets(&text)?);
    }
    if targets.is_empty() {
        return Err(anyhow!(
            "nothing to erase; name --subject, --rfid, --installation, --device or --file"
        ));
    }
    let request_id = match args.request_id {
        Some(id) => id,
        None => random_request_id()?,
    };
    let store = delink_pipeline::open_key_store(&config, delink_pipeline::StoreAccess::Existing)?;
    let report = erase(&config, &plan, store.as_ref(), &targets, &request_id)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let keys: u64 = report.keys_erased.values().sum();
        println!(
            "erasure {}: {keys} keys deleted ({} of {} targets had none), stored {}",
            report.request_id,
            report.not_found,
            targets.len(),
            format_time(report.stored_at)
        );
        // By kind and rank among that kind (flags first, then file lines): never the identifier.
        for number in &report.not_found_targets {
            let kind = targets[number - 1].kind();
            let rank = targets[..*number]
                .iter()
                .filter(|target| target.kind() == kind)
                .count();
            println!(
                "{kind} #{rank} of the request: no key found; never seen, mistyped, or already erased"
            );
        }
        println!(
            "effective {}: no worker uses the erased keys after it",
            format_time(report.effective_at)
        );
        println!(
            "{} quarantined records mentioning the erased identifiers removed",
            report.quarantined_removed
        );
        if report.pending_subjects > 0 {
            println!(
                "{} subjects' history rows await `delink retention`",
                report.pending_subjects
            );
        }
        println!(
            "backups still hold the keys under KEK version {} or older: run `delink keys rotate` now and `delink keys retire --older-than 35d` after the backup window",
            report.kek_version
        );
    }
    if !args.no_wait {
        let wait = report.effective_at - chrono::Utc::now().timestamp();
        if wait > 0 {
            crate::logging::status(format_args!(
                "waiting {wait} s until the erasure is effective everywhere…"
            ));
            std::thread::sleep(Duration::from_secs(wait.unsigned_abs()));
        }
        crate::logging::status(format_args!("erasure {} is effective", report.request_id));
    }
    Ok(())
}

fn random_request_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|_| anyhow!("the random number generator failed"))?;
    Ok(format!(
        "erase-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}
