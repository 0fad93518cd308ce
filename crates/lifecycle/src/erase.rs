//! `delink erase`: crypto-shredding of subjects, installations and devices.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use delink_config::Config;
use delink_datadir::{DataLayout, OutputStore, remove_quarantined_mentions};
use delink_decode::normalise_identifier;
use delink_keystore::{Entity, JournalEvent, JournalKind, KeyStore};
use delink_model::{Field, Scope};
use delink_policy::Plan;

use crate::pending::{PendingErasure, PendingList};
use crate::subject::{SubjectRef, subject_column};

/// One thing to erase, as named in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A subject: an account or an anonymous RFID tag.
    Subject(SubjectRef),
    /// An installation (`installation.id`).
    Installation(String),
    /// A charger or component, by serial: every epoch of its key.
    Device(String),
}

impl Target {
    /// Names the kind of target, as a request file spells it (never the identifier).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Subject(SubjectRef::Account(_)) => "subject",
            Target::Subject(SubjectRef::Rfid(_)) => "rfid",
            Target::Installation(_) => "installation",
            Target::Device(_) => "device",
        }
    }

    fn identifier(&self) -> &str {
        match self {
            Target::Subject(subject) => subject.id(),
            Target::Installation(id) | Target::Device(id) => id,
        }
    }

    fn scope(&self) -> Scope {
        match self {
            Target::Subject(_) => Scope::Subject,
            Target::Installation(_) => Scope::Installation,
            Target::Device(_) => Scope::Device,
        }
    }
}

/// Parses a request file: one `<kind> <identifier>` per line, kinds
/// `subject`, `rfid`, `installation`, `device`; `#` starts a comment.
pub fn parse_targets(text: &str) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (kind, id) = line
            .split_once(char::is_whitespace)
            .map(|(kind, id)| (kind, id.trim()))
            .ok_or_else(|| anyhow!("line {}: expected `<kind> <identifier>`", number + 1))?;
        targets.push(match kind {
            "subject" | "account" => Target::Subject(SubjectRef::Account(id.to_owned())),
            "rfid" => Target::Subject(SubjectRef::Rfid(id.to_owned())),
            "installation" => Target::Installation(id.to_owned()),
            "device" => Target::Device(id.to_owned()),
            _ => {
                return Err(anyhow!(
                    "line {}: unknown kind (expected subject, rfid, installation or device)",
                    number + 1
                ));
            }
        });
    }
    Ok(targets)
}

/// Says what an erasure did and when it is effective.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ErasureReport {
    /// The request id written to the journal.
    pub request_id: String,
    /// Keys deleted, by scope.
    pub keys_erased: BTreeMap<&'static str, u64>,
    /// Targets that had no key (never seen, mistyped, or already erased).
    pub not_found: u64,
    /// Which ones: their numbers (from 1) in the order the request gave them.
    pub not_found_targets: Vec<usize>,
    /// Subjects whose history rows await `delink retention`.
    pub pending_subjects: u64,
    /// Quarantined records that mentioned an erased identifier, removed.
    pub quarantined_removed: u64,
    /// When the keys were deleted (Unix seconds).
    pub stored_at: i64,
    /// From when no worker uses the erased keys (Unix seconds).
    pub effective_at: i64,
    /// The newest KEK version at the time: backups hold the keys under it or older ones.
    pub kek_version: u32,
}

/// Erases every target: records the subjects' history pseudonyms, deletes the keys, journals it.
pub fn erase(
    config: &Config,
    plan: &Plan,
    store: &dyn KeyStore,
    targets: &[Target],
    request_id: &str,
) -> Result<ErasureReport> {
    let keyring = crate::kek::load_keyring(config)?;
    let normalised: Vec<Target> = targets.iter().map(normalise).collect::<Result<_>>()?;
    record_pending(config, plan, store, &normalised, request_id)?;
    let mut report = ErasureReport {
        request_id: request_id.to_owned(),
        keys_erased: BTreeMap::new(),
        not_found: 0,
        not_found_targets: Vec::new(),
        pending_subjects: 0,
        quarantined_removed: 0,
        stored_at: 0,
        effective_at: 0,
        kek_version: keyring.current_version(),
    };
    for (number, target) in (1..).zip(&normalised) {
        let erased = erase_target(store, target)?;
        if erased == 0 {
            report.not_found += 1;
            report.not_found_targets.push(number);
            continue;
        }
        *report
            .keys_erased
            .entry(target.scope().as_str())
            .or_insert(0) += erased;
        if matches!(target, Target::Subject(_)) {
            report.pending_subjects += 1;
        }
    }
    let identifiers: Vec<String> = normalised
        .iter()
        .map(|target| target.identifier().to_owned())
        .collect();
    report.quarantined_removed =
        remove_quarantined_mentions(&OutputStore::for_config(config)?, store, &identifiers)?;
    for (scope, keys) in &report.keys_erased {
        store.append_journal(&JournalEvent::now(JournalKind::Erasure {
            request_id: request_id.to_owned(),
            scope: (*scope).to_owned(),
            keys: *keys,
            kek_version: report.kek_version,
        }))?;
    }
    report.stored_at = crate::unix_now();
    report.effective_at = report.stored_at
        + i64::try_from(config.keystore.erasure_propagation_secs).unwrap_or(i64::MAX);
    tracing::info!(
        request_id,
        keys = report.keys_erased.values().sum::<u64>(),
        "erasure stored"
    );
    Ok(report)
}

fn normalise(target: &Target) -> Result<Target> {
    let normal = |field, id: &str| {
        normalise_identifier(field, id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| anyhow!("an empty {} cannot be erased", field.path()))
    };
    Ok(match target {
        Target::Subject(subject) => {
            let subject = subject.normalised();
            if subject.id().is_empty() {
                return Err(anyhow!("an empty subject identifier cannot be erased"));
            }
            Target::Subject(subject)
        }
        Target::Installation(id) => Target::Installation(normal(Field::InstallationId, id)?),
        Target::Device(serial) => Target::Device(normal(Field::ChargerSerial, serial)?),
    })
}

/// Records, before any key goes, the pseudonyms that find erased subjects' history rows.
fn record_pending(
    config: &Config,
    plan: &Plan,
    store: &dyn KeyStore,
    targets: &[Target],
    request_id: &str,
) -> Result<()> {
    let mut entries = Vec::new();
    for target in targets {
        let Target::Subject(subject) = target else {
            continue;
        };
        let entity_id = subject.entity_id();
        if let Some(key) = store.existing_key(&SubjectRef::entity(&entity_id))? {
            entries.push(PendingErasure::new(
                request_id,
                subject_column(plan, subject, &key)?,
            ));
        }
    }
    if entries.is_empty() {
        return Ok(());
    }
    let list = PendingList::new(&DataLayout::new(&config.data_dir).retention());
    let lock = list.lock()?;
    list.append(&lock, &entries)
}

/// Deletes a target's keys; returns how many there were. A charger's key
/// group goes whole: every epoch (future ones included) and every component key.
fn erase_target(store: &dyn KeyStore, target: &Target) -> Result<u64> {
    Ok(match target {
        Target::Subject(subject) => store.erase(&SubjectRef::entity(&subject.entity_id()))?,
        Target::Installation(id) => store.erase(&Entity::new(Scope::Installation, id))?,
        Target::Device(serial) => store.erase(&Entity::device(serial, 0))?,
    })
}
