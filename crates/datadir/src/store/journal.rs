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
        let staged = entry.with_extension("new");
        fs::File::create(&staged)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&staged, &entry))
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
            let entry: Entry = fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))
                .with_context(|| format!("{} is not an upload journal entry", path.display()))?;
            found.push((path, entry.path, entry.upload_id));
        }
        Ok(found)
    }
}
