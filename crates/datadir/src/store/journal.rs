//! The uploads a worker has started and not completed, one small file each in its
//! space, so that whoever clears the space after a crash can abort them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use object_store::MultipartId;
use serde::{Deserialize, Serialize};

/// A directory of journalled uploads.
#[derive(Debug, Clone)]
pub struct UploadJournal {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    path: String,
    upload_id: String,
}

impl UploadJournal {
    /// Keeps the journal in `dir` (created on the first record).
    pub fn new(dir: &Path) -> Self {
        UploadJournal {
            dir: dir.to_path_buf(),
        }
    }

    /// Records, durably, that upload `id` of the object at `path` has started;
    /// returns the entry to remove once it completes or is aborted.
    pub(crate) fn record(&self, path: &str, id: &MultipartId) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let entry = self
            .dir
            .join(format!("{}.json", blake3::hash(id.as_bytes()).to_hex()));
        let bytes = serde_json::to_vec(&Entry {
            path: path.to_owned(),
            upload_id: id.clone(),
        })?;
        // One small write straight to the entry's name, so the upload is journalled
        // microseconds after it exists (a staged file and a rename would leave a
        // worker killed during the fsync with an upload nobody can name).
        fs::File::create(&entry)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()
            })
            .and_then(|()| fs::File::open(&self.dir)?.sync_all())
            .with_context(|| format!("cannot journal an upload in {}", self.dir.display()))?;
        Ok(entry)
    }

    /// Lists the journalled uploads as (entry, object path, upload id).
    pub(crate) fn entries(&self) -> Result<Vec<(PathBuf, String, MultipartId)>> {
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot list {}", self.dir.display()));
            }
        };
        let mut found = Vec::new();
        for item in listing {
            let path = item?.path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Ok(serde_json::from_slice::<Entry>(&bytes)?));
            match parsed {
                Ok(entry) => found.push((path, entry.path, entry.upload_id)),
                Err(error) => {
                    // Torn by a power loss: its upload cannot be named, and is left to the
                    // bucket's lifecycle rule; it must not keep workers from starting.
                    tracing::warn!(entry = %path.display(), error = %format!("{error:#}"), "dropping an unreadable upload journal entry");
                    fs::remove_file(&path)
                        .with_context(|| format!("cannot remove {}", path.display()))?;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_listed_until_removed_and_a_torn_one_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = UploadJournal::new(&dir.path().join("uploads"));
        assert!(journal.entries().expect("entries").is_empty());
        let entry = journal
            .record(
                "delink/history/date=2026-11-20/part-a.parquet",
                &"id-1".to_owned(),
            )
            .expect("record");
        let torn = dir.path().join("uploads/torn.json");
        fs::write(&torn, b"{\"path\": \"delink/hist").expect("torn");
        let listed = journal.entries().expect("entries");
        assert_eq!(
            listed,
            vec![(
                entry.clone(),
                "delink/history/date=2026-11-20/part-a.parquet".to_owned(),
                "id-1".to_owned()
            )]
        );
        assert!(!torn.exists());
        fs::remove_file(&entry).expect("remove");
        assert!(journal.entries().expect("entries").is_empty());
    }
}
