//! `delink keys rotate | retire | status`: KEK versions and the backup horizon.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use delink_config::Config;
use delink_keystore::{JournalEvent, JournalKind, KekSource, KeyStore, Keyring};
use delink_model::Scope;
use serde::Serialize;

/// The backup window of the privacy policy: deleted data survives in backups at most 5 weeks.
pub const BACKUP_WINDOW: Duration = Duration::from_secs(35 * 86_400);

/// Loads the keyring the configuration names; it must exist.
pub(crate) fn load_keyring(config: &Config) -> Result<Keyring> {
    Keyring::load(&KekSource::from_env_or_file(config.kek_file()), false)?
        .context("no KEK found; set DELINK_KEK or keystore.kek_file")
}

/// Says what a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    /// The new KEK version.
    pub kek_version: u32,
    /// Keys re-wrapped under it.
    pub rewrapped: u64,
}

/// Adds a KEK version (to the keyring file) and re-wraps every live key under it.
///
/// With a keyring from `DELINK_KEK`, the operator adds the version to the
/// secret first; rotation then re-wraps under the newest version loaded.
pub fn rotate(config: &Config, store: &dyn KeyStore) -> Result<RotationReport> {
    let mut keyring = load_keyring(config)?;
    let in_use = store.keys_per_kek_version()?;
    let newest_in_use = in_use.keys().next_back().copied().unwrap_or(0);
    match KekSource::from_env_or_file(config.kek_file()) {
        KekSource::File(_) => {
            keyring.add_version()?;
        }
        KekSource::Env(_) if keyring.current_version() > newest_in_use => {}
        KekSource::Env(_) => {
            return Err(anyhow!(
                "DELINK_KEK holds no version newer than {newest_in_use}, the newest in use; add `<{}>:<64 hex>` to the secret, restart the workers, then rotate",
                newest_in_use + 1
            ));
        }
    }
    let rewrapped = store.rewrap()?;
    let kek_version = keyring.current_version();
    store.append_journal(&JournalEvent::now(JournalKind::Rotation {
        kek_version,
        rewrapped,
    }))?;
    Ok(RotationReport {
        kek_version,
        rewrapped,
    })
}

/// Says what a retirement destroyed and what it kept, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RetireReport {
    /// KEK versions destroyed.
    pub destroyed: Vec<u32>,
    /// KEK versions kept, with the reason.
    pub kept: Vec<(u32, String)>,
    /// Device keys of expired epochs destroyed.
    pub device_keys: u64,
}

/// Destroys KEK versions superseded at least `older_than` ago that no live key uses,
/// and device keys of epochs past their retention.
pub fn retire(config: &Config, store: &dyn KeyStore, older_than: Duration) -> Result<RetireReport> {
    let mut keyring = load_keyring(config)?;
    let journal = store.journal()?;
    let in_use = store.keys_per_kek_version()?;
    let now = crate::unix_now();
    let current = keyring.current_version();
    let mut report = RetireReport {
        destroyed: Vec::new(),
        kept: Vec::new(),
        device_keys: 0,
    };
    for version in keyring.versions() {
        let keys = in_use.get(&version).copied().unwrap_or(0);
        let superseded = superseded_at(&journal, version);
        let reason = if version == current {
            Some("the current version".to_owned())
        } else if keys > 0 {
            Some(format!(
                "{keys} keys are still wrapped under it; run `delink keys rotate`"
            ))
        } else {
            match superseded {
                None => Some("no rotation has superseded it; run `delink keys rotate`".to_owned()),
                Some(at) if now - at < older_than.as_secs() as i64 => Some(format!(
                    "superseded {}; may be destroyed from {}",
                    crate::format_time(at),
                    crate::format_time(at + older_than.as_secs() as i64)
                )),
                Some(_) => None,
            }
        };
        match reason {
            Some(reason) => report.kept.push((version, reason)),
            None => report.destroyed.push(version),
        }
    }
    if !report.destroyed.is_empty() {
        keyring.destroy(&report.destroyed)?;
        store.append_journal(&JournalEvent::now(JournalKind::Retirement {
            kek_versions: report.destroyed.clone(),
        }))?;
    }
    report.device_keys = purge_device_epochs(config, store)?;
    Ok(report)
}

/// Destroys the device keys of epochs past `keystore.device_epoch_retention_days`;
/// returns how many went.
pub fn purge_device_epochs(config: &Config, store: &dyn KeyStore) -> Result<u64> {
    let epoch_days = i64::from(config.keystore.device_epoch_days);
    if epoch_days == 0 {
        return Ok(0);
    }
    let today = chrono::Utc::now().timestamp().div_euclid(86_400);
    let expired_until = today - i64::from(config.keystore.device_epoch_retention_days);
    if expired_until < epoch_days {
        return Ok(0);
    }
    // Epoch n covers days [(n-1)·d, n·d): it has expired once n·d <= expired_until.
    let before_epoch = u32::try_from(expired_until / epoch_days + 1).unwrap_or(u32::MAX);
    let keys = store.erase_epochs_before(Scope::Device, before_epoch)?;
    if keys > 0 {
        store.append_journal(&JournalEvent::now(JournalKind::EpochPurge {
            before_epoch,
            keys,
        }))?;
    }
    Ok(keys)
}

/// When a rotation to a newer version superseded `version`.
fn superseded_at(journal: &[JournalEvent], version: u32) -> Option<i64> {
    journal.iter().find_map(|event| match event.kind {
        JournalKind::Rotation { kek_version, .. } if kek_version > version => Some(event.at),
        _ => None,
    })
}

/// One KEK version as `delink keys status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KekVersionStatus {
    /// The version.
    pub version: u32,
    /// Whether the keyring holds it.
    pub loaded: bool,
    /// Live keys wrapped under it.
    pub keys: u64,
    /// When it started wrapping keys.
    pub in_use_since: Option<i64>,
    /// When a rotation superseded it.
    pub superseded_at: Option<i64>,
    /// When it was destroyed.
    pub destroyed_at: Option<i64>,
}

/// One erasure as `delink keys status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureStatus {
    /// The request id.
    pub request_id: String,
    /// The erased scope.
    pub scope: String,
    /// Keys deleted.
    pub keys: u64,
    /// When.
    pub at: i64,
    /// Since when no copy of the keys can be unwrapped (every KEK version that
    /// could wrap one is destroyed); `None` while pending.
    pub complete_since: Option<i64>,
    /// What remains to be done.
    pub next_step: Option<String>,
}

/// What `delink keys status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// Live entity keys.
    pub live_keys: u64,
    /// Every KEK version the store or keyring knows.
    pub kek_versions: Vec<KekVersionStatus>,
    /// Every erasure in the journal, oldest first.
    pub erasures: Vec<ErasureStatus>,
    /// What "complete" assumes, and whether this installation breaks it.
    pub completeness: Completeness,
}

/// What an erasure's "complete" rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Completeness {
    /// The assumption, in words.
    pub assumes: &'static str,
    /// Set when the keyring lives inside the data directory: nothing is complete then.
    pub broken_by: Option<String>,
}

/// What "complete" means, shown by `delink keys status`.
const COMPLETE_ASSUMES: &str = "complete = every KEK version that could unwrap a copy of the erased keys \
(in the store, its backups, or backups of the data directory) has been destroyed; this assumes the keyring \
is kept apart from the data and its backups, and that no copy of a destroyed keyring survives elsewhere";

/// Reads versions, counts and the backup horizon of each erasure.
pub fn key_status(config: &Config, store: &dyn KeyStore) -> Result<KeyStatus> {
    let keyring = load_keyring(config)?;
    let journal = store.journal()?;
    let in_use = store.keys_per_kek_version()?;
    let mut in_use_since: BTreeMap<u32, i64> = BTreeMap::new();
    let mut destroyed_at: BTreeMap<u32, i64> = BTreeMap::new();
    for event in &journal {
        match &event.kind {
            JournalKind::KekInUse { kek_version } | JournalKind::Rotation { kek_version, .. } => {
                in_use_since.entry(*kek_version).or_insert(event.at);
            }
            JournalKind::Retirement { kek_versions } => {
                for version in kek_versions {
                    destroyed_at.entry(*version).or_insert(event.at);
                }
            }
            _ => {}
        }
    }
    let versions: BTreeSet<u32> = in_use_since
        .keys()
        .chain(destroyed_at.keys())
        .chain(in_use.keys())
        .copied()
        .chain(keyring.versions())
        .collect();
    let kek_versions = versions
        .iter()
        .map(|&version| KekVersionStatus {
            version,
            loaded: keyring.versions().contains(&version),
            keys: in_use.get(&version).copied().unwrap_or(0),
            in_use_since: in_use_since.get(&version).copied(),
            superseded_at: superseded_at(&journal, version),
            destroyed_at: destroyed_at.get(&version).copied(),
        })
        .collect();
    let erasures = journal
        .iter()
        .filter_map(|event| match &event.kind {
            JournalKind::Erasure {
                request_id,
                scope,
                keys,
                kek_version,
            } => Some(erasure_status(
                &journal,
                &versions,
                &destroyed_at,
                event.at,
                (request_id, scope, *keys, *kek_version),
            )),
            _ => None,
        })
        .collect();
    let broken_by = config.kek_inside_data_dir().then(|| {
        format!(
            "the keyring {} lives inside the data directory, so every backup of the data holds every KEK \
             version; move it out (keystore.kek_file or DELINK_KEK), then rotate and retire",
            config.kek_file().display()
        )
    });
    let mut erasures: Vec<ErasureStatus> = erasures;
    if let Some(reason) = &broken_by {
        for erasure in &mut erasures {
            erasure.complete_since = None;
            erasure.next_step = Some(reason.clone());
        }
    }
    Ok(KeyStatus {
        live_keys: store.len()?,
        kek_versions,
        erasures,
        completeness: Completeness {
            assumes: COMPLETE_ASSUMES,
            broken_by,
        },
    })
}

fn erasure_status(
    journal: &[JournalEvent],
    versions: &BTreeSet<u32>,
    destroyed_at: &BTreeMap<u32, i64>,
    at: i64,
    (request_id, scope, keys, kek_version): (&str, &str, u64, u32),
) -> ErasureStatus {
    // Copies of the erased keys can only be wrapped under versions up to the one current then.
    let exposed: Vec<u32> = versions
        .iter()
        .copied()
        .filter(|version| *version <= kek_version)
        .collect();
    let complete_since = exposed
        .iter()
        .map(|version| destroyed_at.get(version).copied())
        .collect::<Option<Vec<i64>>>()
        .and_then(|times| times.into_iter().max());
    let next_step = match (complete_since, superseded_at(journal, kek_version)) {
        (Some(_), _) => None,
        (None, None) => Some("run `delink keys rotate`".to_owned()),
        (None, Some(superseded)) => Some(format!(
            "run `delink keys retire --older-than 35d` from {} (end of the backup window)",
            crate::format_time(superseded + BACKUP_WINDOW.as_secs() as i64)
        )),
    };
    ErasureStatus {
        request_id: request_id.to_owned(),
        scope: scope.to_owned(),
        keys,
        at,
        complete_since,
        next_step,
    }
}
