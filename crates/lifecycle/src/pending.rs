//! Erasures the retention job has not applied yet: the history pseudonyms of
//! erased subjects, recorded before their keys were deleted, and dropped
//! once their rows are gone.

use std::os::unix::fs::OpenOptionsExt;

use delink_datadir::{
    PRIVATE_FILE_MODE, append_private_file, create_private_dir_all, create_private_file,
};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::subject::SubjectColumn;

const PENDING_FILE: &str = "pending-erasures.jsonl";
const LOCK_FILE: &str = "LOCK";

/// One subject whose history rows must go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingErasure {
    /// The erasure request.
    pub(crate) request_id: String,
    /// The history column that identifies the rows.
    pub(crate) column: String,
    /// The subject's pseudonym in that column.
    pub(crate) pseudonym: String,
}

impl PendingErasure {
    pub(crate) fn new(request_id: &str, column: SubjectColumn) -> Self {
        PendingErasure {
            request_id: request_id.to_owned(),
            column: column.column,
            pseudonym: column.pseudonym,
        }
    }
}

/// The list of pending erasures under `<data_dir>/retention/`.
pub(crate) struct PendingList {
    dir: PathBuf,
}

/// Holds the list's lock until dropped.
pub(crate) struct ListLock(File);

impl Drop for ListLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl PendingList {
    pub(crate) fn new(dir: &Path) -> Self {
        PendingList {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(PENDING_FILE)
    }

    /// Locks the list against concurrent appends and rewrites.
    pub(crate) fn lock(&self) -> Result<ListLock> {
        create_private_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(ListLock(file))
    }

    /// Appends entries durably; the caller holds the lock.
    pub(crate) fn append(&self, _lock: &ListLock, entries: &[PendingErasure]) -> Result<()> {
        let mut text = String::new();
        for entry in entries {
            text.push_str(&serde_json::to_string(entry)?);
            text.push('\n');
        }
        let path = self.path();
        append_private_file(&path)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .with_context(|| format!("cannot record pending erasures in {}", path.display()))
    }

    /// Reads every entry; the caller holds the lock.
    pub(crate) fn read(&self, _lock: &ListLock) -> Result<Vec<PendingErasure>> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.with_context(|| format!("cannot read {}", path.display()))?,
        };
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .with_context(|| format!("{} holds a malformed line", path.display()))
            })
            .collect()
    }

    /// Drops applied entries, keeping any appended since they were read.
    pub(crate) fn drop_applied(&self, lock: &ListLock, applied: &[PendingErasure]) -> Result<()> {
        let remaining: Vec<PendingErasure> = self
            .read(lock)?
            .into_iter()
            .filter(|entry| !applied.contains(entry))
            .collect();
        let path = self.path();
        let staged = self.dir.join(format!("{PENDING_FILE}.new"));
        let mut text = String::new();
        for entry in &remaining {
            text.push_str(&serde_json::to_string(entry)?);
            text.push('\n');
        }
        create_private_file(&staged)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&staged, &path))
            .and_then(|()| File::open(&self.dir)?.sync_all())
            .with_context(|| format!("cannot rewrite {}", path.display()))
    }
}
