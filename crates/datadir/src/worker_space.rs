//! Each worker's own space: a staging directory no other worker touches, an
//! upload area of the same id in the output store, and a published watermark
//! that lifecycle jobs read while workers run.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::{DataLayout, OutputStore, UploadArea};

const LOCK_FILE: &str = "lock";
const STAGING_DIR: &str = "staging";
const WATERMARK_FILE: &str = "watermark.json";

/// A worker's space under `_workers/<id>/`, held for as long as this value lives.
///
/// The space's lock file is locked by its worker alone, so any space whose lock
/// can be taken belongs to a worker that is gone, and is cleared, the uploads it
/// staged in the output store deleted first.
#[derive(Debug)]
pub struct WorkerSpace {
    dir: PathBuf,
    id: String,
    outputs: OutputStore,
    _lock: File,
}

/// What one live worker has published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Everything the worker read before this instant (Unix µs) is published.
    pub published_before_us: i64,
    /// When the worker last said so (Unix µs).
    pub updated_us: i64,
}

impl WorkerSpace {
    /// Clears the spaces of workers that are gone (deleting the uploads they staged
    /// in `outputs`), then claims a fresh space.
    pub fn claim(layout: &DataLayout, outputs: &OutputStore) -> Result<Self> {
        let workers = layout.workers();
        fs::create_dir_all(&workers)
            .with_context(|| format!("cannot create {}", workers.display()))?;
        clear_abandoned(&workers, outputs)?;
        let id = random_id()?;
        // Built under a hidden name and renamed once locked, so no sweeper ever sees it unlocked.
        let building = workers.join(format!(".new-{id}"));
        // Staged history and quarantine files hold personal data.
        crate::create_private_dir_all(&building.join(STAGING_DIR))
            .with_context(|| format!("cannot create {}", building.display()))?;
        let lock = open_lock(&building)?;
        lock.try_lock()
            .with_context(|| format!("cannot lock {}", building.display()))?;
        let dir = workers.join(&id);
        fs::rename(&building, &dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(WorkerSpace {
            dir,
            id,
            outputs: outputs.clone(),
            _lock: lock,
        })
    }

    /// Returns the worker's id (random per process).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the worker's staging directory (same filesystem as the datasets).
    pub fn staging(&self) -> PathBuf {
        self.dir.join(STAGING_DIR)
    }

    /// Returns where the worker stages its uploads in the output store.
    pub fn uploads(&self) -> UploadArea {
        UploadArea::of_worker(&self.id)
    }

    /// Records that everything this worker read before `published_before_us` is published.
    pub fn publish_watermark(&self, published_before_us: i64) -> Result<()> {
        let watermark = Watermark {
            published_before_us,
            updated_us: chrono::Utc::now().timestamp_micros(),
        };
        let staged = self.dir.join(format!("{WATERMARK_FILE}.new"));
        fs::write(&staged, serde_json::to_vec(&watermark)?)
            .and_then(|()| fs::rename(&staged, self.dir.join(WATERMARK_FILE)))
            .with_context(|| format!("cannot write the watermark in {}", self.dir.display()))
    }
}

impl Drop for WorkerSpace {
    fn drop(&mut self) {
        // Nothing staged is worth keeping once the worker is gone. Uploads that cannot be
        // deleted now keep the space, so that the next claim deletes them.
        if self.outputs.clear_area(&self.uploads()).is_ok() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reads the watermark of every live worker; a live worker that has not written
/// one yet counts as having published nothing (`published_before_us` 0).
pub fn live_watermarks(layout: &DataLayout) -> Result<Vec<Watermark>> {
    let mut found = Vec::new();
    for dir in spaces(&layout.workers())? {
        let Ok(lock) = open_lock(&dir) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            continue; // its worker is gone
        }
        let watermark = fs::read(dir.join(WATERMARK_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Watermark {
                published_before_us: 0,
                updated_us: 0,
            });
        found.push(watermark);
    }
    Ok(found)
}

/// Removes every space whose lock is free: its worker crashed or exited.
fn clear_abandoned(workers: &Path, outputs: &OutputStore) -> Result<()> {
    for dir in spaces(workers)? {
        let Ok(lock) = open_lock(&dir) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            tracing::info!(space = %dir.display(), "clearing the space of a worker that is gone");
            if let Some(id) = dir.file_name().and_then(|name| name.to_str()) {
                outputs.clear_area(&UploadArea::of_worker(id))?;
            }
            fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Lists the claimed spaces (hidden ones are still being built).
fn spaces(workers: &Path) -> Result<Vec<PathBuf>> {
    if !workers.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in
        fs::read_dir(workers).with_context(|| format!("cannot list {}", workers.display()))?
    {
        let path = entry?.path();
        let visible = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| !name.starts_with('.'));
        if visible && path.is_dir() {
            found.push(path);
        }
    }
    Ok(found)
}

fn open_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(dir: &tempfile::TempDir) -> OutputStore {
        OutputStore::local(dir.path()).expect("outputs")
    }

    #[test]
    fn a_live_space_is_kept_and_an_abandoned_one_cleared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = DataLayout::new(dir.path());
        let live = WorkerSpace::claim(&layout, &outputs(&dir)).expect("claim");
        fs::write(live.staging().join("file.tmp"), b"x").expect("stage");
        // An abandoned space: a directory whose lock nobody holds.
        let abandoned = layout.workers().join("0123456789abcdef");
        fs::create_dir_all(abandoned.join(STAGING_DIR)).expect("mkdir");
        let other = WorkerSpace::claim(&layout, &outputs(&dir)).expect("claim");
        assert!(!abandoned.exists());
        assert!(live.staging().join("file.tmp").exists());
        assert_ne!(live.id(), other.id());
        let staging = live.staging();
        drop(live);
        assert!(!staging.exists());
    }

    #[test]
    fn only_live_workers_report_watermarks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = DataLayout::new(dir.path());
        let first = WorkerSpace::claim(&layout, &outputs(&dir)).expect("claim");
        let second = WorkerSpace::claim(&layout, &outputs(&dir)).expect("claim");
        first.publish_watermark(42).expect("watermark");
        let mut seen: Vec<i64> = live_watermarks(&layout)
            .expect("read")
            .iter()
            .map(|w| w.published_before_us)
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 42]);
        drop(second);
        let seen = live_watermarks(&layout).expect("read");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].published_before_us, 42);
    }
}
