//! Where the outputs live: `history/`, `devices/` and `quarantine/` under the data
//! directory or in an object store (S3, GCS, Azure Blob), behind one interface that
//! workers publish through and every lifecycle job lists, reads and rewrites through.
//!
//! A file becomes visible whole or not at all. Publication has two steps:
//! [`OutputStore::stage`] before the segment's keys are durable, [`OutputStore::commit`]
//! after. On the local filesystem, staging fsyncs the file and committing renames it
//! into place. In an object store, staging uploads the whole file in one request to
//! the worker's [`UploadArea`] (`_staging/<worker id>/`, outside every dataset), and
//! committing copies it to its key inside the store, a copy that appears whole, then
//! deletes the staged object. A worker that dies leaves only whole staged objects in
//! its own area, which no dataset lists and which the next worker to start deletes.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::{create_private_dir_all, create_private_file};

/// The key prefix, below the output root, of every worker's upload area.
const STAGING_ROOT: &str = "_staging";

/// The store holding the outputs; cheap to clone.
#[derive(Clone)]
pub struct OutputStore {
    inner: Arc<Inner>,
}

struct Inner {
    objects: Arc<dyn ObjectStore>,
    backend: Backend,
    /// Path of the output root inside the store (for local outputs, the absolute
    /// directory without its leading `/`).
    prefix: String,
    /// The output root as the operator wrote it, without credentials.
    location: String,
}

enum Backend {
    /// Files under this directory, written durably and privately by delink itself.
    Local(PathBuf),
    /// An object store; files are staged in an upload area and copied into place.
    Remote,
}

/// Where one worker stages the files it uploads: `_staging/<worker id>/` below the
/// output root, beside the datasets and never inside one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadArea {
    prefix: String,
}

impl UploadArea {
    /// The area of the worker with this id.
    pub fn of_worker(id: &str) -> Self {
        UploadArea {
            prefix: format!("{STAGING_ROOT}/{id}"),
        }
    }

    /// The staged key of `key`; its suffix keeps a `**/*.parquet` glob from matching it.
    fn staged_key(&self, key: &str) -> String {
        format!("{}/{key}.staged", self.prefix)
    }
}

/// A listed object: its key below the output root, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Key below the output root, e.g. `history/date=2026-11-20/part-….parquet`.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A staged file: complete in the store but not visible until committed.
pub struct StagedUpload {
    key: String,
    state: StagedState,
}

enum StagedState {
    Local { staged: PathBuf, private: bool },
    Remote { staged_key: String },
}

impl std::fmt::Debug for OutputStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OutputStore")
            .field("location", &self.inner.location)
            .finish()
    }
}

impl OutputStore {
    /// Opens the outputs under a local directory; nothing is created until written.
    pub fn local(root: &Path) -> Result<Self> {
        let root = root
            .canonicalize()
            .or_else(|_| std::path::absolute(root))
            .with_context(|| format!("cannot resolve the output directory {}", root.display()))?;
        let prefix = root
            .to_str()
            .ok_or_else(|| anyhow!("the output directory {} is not UTF-8", root.display()))?
            .trim_matches('/')
            .to_owned();
        Ok(Self::new(
            Arc::new(LocalFileSystem::new()),
            Backend::Local(root.clone()),
            prefix,
            root.display().to_string(),
        ))
    }

    /// Opens the outputs at `location`: an `s3://`, `gs://` or `az://` URL (credentials,
    /// region and endpoint from the standard environment variables or the instance's
    /// metadata service), a `file://` URL, or, when `None`, the data directory.
    pub fn open(location: Option<&str>, data_dir: &Path) -> Result<Self> {
        let Some(location) = location else {
            return Self::local(data_dir);
        };
        let url = url::Url::parse(location).map_err(|error| {
            anyhow!("output.location is not a URL ({error}); use s3://bucket/prefix, gs://…, az://… or file:///path")
        })?;
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            bail!(
                "output.location must not carry credentials or options; set them in the environment (AWS_*, GOOGLE_*, AZURE_*)"
            );
        }
        let prefix = url.path().trim_matches('/').to_owned();
        let shown = location.trim_end_matches('/').to_owned();
        let objects: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| anyhow!("output.location {location} is not a local path"))?;
                return Self::local(&path);
            }
            "s3" | "s3a" => Arc::new(AmazonS3Builder::from_env().with_url(location).build()?),
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(location)
                    .build()?,
            ),
            "az" | "azure" | "abfs" | "abfss" | "adl" => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(location)
                    .build()?,
            ),
            other => bail!(
                "output.location has the scheme {other}:, which delink cannot write to; use s3://, gs://, az:// or file://"
            ),
        };
        Ok(Self::new(objects, Backend::Remote, prefix, shown))
    }

    /// Opens the outputs `config` names (`output.location`, else its data directory).
    pub fn for_config(config: &delink_config::Config) -> Result<Self> {
        Self::open(config.output.location.as_deref(), &config.data_dir)
    }

    fn new(
        objects: Arc<dyn ObjectStore>,
        backend: Backend,
        prefix: String,
        location: String,
    ) -> Self {
        OutputStore {
            inner: Arc::new(Inner {
                objects,
                backend,
                prefix,
                location,
            }),
        }
    }

    /// Returns the local directory of the outputs, when they are local.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.inner.backend {
            Backend::Local(root) => Some(root),
            Backend::Remote => None,
        }
    }

    /// Names where `key` lives, for messages: a path or a URL, never a credential.
    pub fn describe(&self, key: &str) -> String {
        match &self.inner.backend {
            Backend::Local(root) => root.join(key).display().to_string(),
            Backend::Remote => format!("{}/{key}", self.inner.location),
        }
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        let full = if self.inner.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.inner.prefix)
        };
        ObjectPath::parse(&full).with_context(|| format!("{key} is not a valid object key"))
    }

    /// Strips the root prefix from a listed path.
    fn key_of(&self, path: &ObjectPath) -> String {
        let path = path.as_ref();
        match self.inner.prefix.as_str() {
            "" => path.to_owned(),
            prefix => path
                .strip_prefix(prefix)
                .map_or(path, |rest| rest.trim_start_matches('/'))
                .to_owned(),
        }
    }

    /// Lists every visible object below `prefix` (a key prefix ending at a `/`
    /// boundary, e.g. `history`), in key order. Hidden names (starting with `.`) are
    /// a rewrite in progress and never listed.
    pub fn list(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        let path = self.path(prefix)?;
        if self.missing_local_dir(prefix) {
            return Ok(Vec::new());
        }
        let listed: Vec<object_store::ObjectMeta> =
            block_on(self.inner.objects.list(Some(&path)).try_collect())
                .with_context(|| format!("cannot list {}", self.describe(prefix)))?;
        let mut objects: Vec<StoredObject> = listed
            .into_iter()
            .filter(|meta| {
                meta.location
                    .filename()
                    .is_some_and(|name| !name.starts_with('.'))
            })
            .map(|meta| StoredObject {
                key: self.key_of(&meta.location),
                size: meta.size,
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Lists the `date=YYYY-MM-DD` partitions below `prefix` as (date, key prefix), oldest first.
    pub fn partitions(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let path = self.path(prefix)?;
        if self.missing_local_dir(prefix) {
            return Ok(Vec::new());
        }
        let listed = block_on(self.inner.objects.list_with_delimiter(Some(&path)))
            .with_context(|| format!("cannot list {}", self.describe(prefix)))?;
        let mut found: Vec<(String, String)> = listed
            .common_prefixes
            .iter()
            .filter_map(|partition| {
                let date = partition.filename()?.strip_prefix("date=")?;
                crate::parse_day(date)?;
                Some((date.to_owned(), self.key_of(partition)))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// A local prefix whose directory does not exist lists nothing (an object store
    /// has no directories, so there it is always listed).
    fn missing_local_dir(&self, prefix: &str) -> bool {
        self.local_root()
            .is_some_and(|root| !root.join(prefix).is_dir())
    }

    /// Reads a whole object.
    pub fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        block_on(async { self.inner.objects.get(&path).await?.bytes().await })
            .with_context(|| format!("cannot read {}", self.describe(key)))
    }

    /// Reads bytes `range` of an object.
    pub fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        block_on(self.inner.objects.get_range(&path, range))
            .with_context(|| format!("cannot read {}", self.describe(key)))
    }

    /// Says whether an object exists.
    pub fn exists(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        match block_on(self.inner.objects.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => {
                Err(error).with_context(|| format!("cannot look up {}", self.describe(key)))
            }
        }
    }

    /// Writes `bytes` to `key`, replacing any object there, atomically: readers see
    /// the old object or the new one, never part of one. `private` objects may hold
    /// personal data; locally they and their directories are owner-only.
    pub fn put(&self, key: &str, bytes: Bytes, private: bool) -> Result<()> {
        match &self.inner.backend {
            Backend::Local(root) => {
                let target = root.join(key);
                let staged = hidden_sibling(&target, "put")?;
                create_parent(&target, private)?;
                let mut file = if private {
                    create_private_file(&staged)
                } else {
                    File::create(&staged)
                }
                .with_context(|| format!("cannot create {}", staged.display()))?;
                std::io::Write::write_all(&mut file, &bytes)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write {}", staged.display()))?;
                rename_durably(&staged, &target)
            }
            Backend::Remote => {
                let path = self.path(key)?;
                block_on(self.inner.objects.put(&path, PutPayload::from(bytes)))
                    .with_context(|| format!("cannot write {}", self.describe(key)))?;
                Ok(())
            }
        }
    }

    /// Deletes an object; one that is already gone is not an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match block_on(self.inner.objects.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot delete {}", self.describe(key)));
            }
        }
        if let Backend::Local(root) = &self.inner.backend {
            sync_parent(&root.join(key))?;
        }
        Ok(())
    }

    /// Deletes every object below `prefix`; returns how many went.
    pub fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let objects = self.list(prefix)?;
        for object in &objects {
            self.delete(&object.key)?;
        }
        if let Some(root) = self.local_root() {
            // Hidden leftovers and empty directories go with the partition.
            let dir = root.join(prefix);
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot delete {}", dir.display()))?;
            }
        }
        Ok(objects.len() as u64)
    }

    /// Removes what an interrupted local [`put`](Self::put) left in the directory
    /// `prefix` (hidden files nobody lists); an object store leaves nothing.
    pub fn clear_leftovers(&self, prefix: &str) -> Result<()> {
        let Some(root) = self.local_root() else {
            return Ok(());
        };
        let dir = root.join(prefix);
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for entry in listing {
            let path = entry?.path();
            let leftover = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with('.') && name.ends_with(".put"));
            if leftover {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Makes the sealed file at `staged` (opened as `file`) ready to become `key`,
    /// without making it visible: fsynced locally, or uploaded whole to `area`.
    pub fn stage(
        &self,
        file: &File,
        staged: &Path,
        key: &str,
        private: bool,
        area: &UploadArea,
    ) -> Result<StagedUpload> {
        let state = match &self.inner.backend {
            Backend::Local(_) => {
                file.sync_all()
                    .with_context(|| format!("cannot sync {}", staged.display()))?;
                StagedState::Local {
                    staged: staged.to_path_buf(),
                    private,
                }
            }
            Backend::Remote => {
                let bytes = std::fs::read(staged)
                    .with_context(|| format!("cannot read {}", staged.display()))?;
                let staged_key = area.staged_key(key);
                let path = self.path(&staged_key)?;
                block_on(self.inner.objects.put(&path, PutPayload::from(bytes)))
                    .with_context(|| format!("cannot upload {}", self.describe(&staged_key)))?;
                StagedState::Remote { staged_key }
            }
        };
        Ok(StagedUpload {
            key: key.to_owned(),
            state,
        })
    }

    /// Makes staged files visible, each under its key (replacing an object of the
    /// same name from an earlier run).
    pub fn commit(&self, uploads: Vec<StagedUpload>) -> Result<()> {
        let mut directories = std::collections::BTreeSet::new();
        for upload in uploads {
            match (upload.state, &self.inner.backend) {
                (StagedState::Local { staged, private }, Backend::Local(root)) => {
                    let target = root.join(&upload.key);
                    create_parent(&target, private)?;
                    std::fs::rename(&staged, &target)
                        .with_context(|| format!("cannot publish {}", target.display()))?;
                    if let Some(parent) = target.parent() {
                        directories.insert(parent.to_path_buf());
                    }
                }
                (StagedState::Remote { staged_key }, Backend::Remote) => {
                    let staged = self.path(&staged_key)?;
                    block_on(self.inner.objects.copy(&staged, &self.path(&upload.key)?))
                        .with_context(|| {
                            format!("cannot publish {}", self.describe(&upload.key))
                        })?;
                    if let Err(error) = block_on(self.inner.objects.delete(&staged)) {
                        // Published all the same; the area is cleared when the worker exits.
                        tracing::warn!(%error, staged = %staged_key, "cannot delete a published file's staged copy");
                    }
                }
                _ => bail!("a file staged for one store was committed to another"),
            }
        }
        for directory in directories {
            File::open(&directory)
                .and_then(|dir| dir.sync_all())
                .with_context(|| format!("cannot sync {}", directory.display()))?;
        }
        Ok(())
    }

    /// Deletes staged files that will not be committed (a publication that failed or
    /// was dropped); what cannot be deleted now goes when the area is cleared.
    pub fn abandon(&self, uploads: Vec<StagedUpload>) {
        for upload in uploads {
            if let StagedState::Remote { staged_key } = upload.state {
                let _ = self.delete(&staged_key);
            }
        }
    }

    /// Deletes everything staged in `area` (a worker that is gone, or this one at
    /// exit); returns how many objects went. Locally, staging lives in the worker's
    /// space instead, and there is nothing to do.
    pub fn clear_area(&self, area: &UploadArea) -> Result<u64> {
        if self.local_root().is_some() {
            return Ok(0);
        }
        let cleared = self
            .delete_prefix(&area.prefix)
            .context("cannot clear the uploads a stopped worker staged")?;
        if cleared > 0 {
            tracing::info!(
                cleared,
                "deleted the staged uploads of a worker that stopped"
            );
        }
        Ok(cleared)
    }

    /// Checks that the store answers within `timeout`, listing the top of the
    /// outputs; changes nothing. Returns what it found there (e.g. `history`, `devices`).
    pub fn probe(&self, timeout: std::time::Duration) -> Result<Vec<String>> {
        if self.local_root().is_some_and(|root| !root.is_dir()) {
            return Ok(Vec::new());
        }
        let path = self.path("")?;
        let listing = block_on(async {
            tokio::time::timeout(timeout, self.inner.objects.list_with_delimiter(Some(&path))).await
        })
        .map_err(|_| anyhow!("no answer within {timeout:?}"))?
        .with_context(|| format!("cannot list {}", self.describe("")))?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().map(str::to_owned))
            .filter(|name| ["history", "devices", "quarantine"].contains(&name.as_str()))
            .collect())
    }
}

/// Creates the directory `target` goes in, owner-only when `private`.
fn create_parent(target: &Path, private: bool) -> Result<()> {
    let Some(parent) = target.parent() else {
        return Ok(());
    };
    if private {
        create_private_dir_all(parent)
    } else {
        std::fs::create_dir_all(parent)
    }
    .with_context(|| format!("cannot create {}", parent.display()))
}

/// Names a hidden file beside `target`, which listings skip.
fn hidden_sibling(target: &Path, purpose: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| anyhow!("{} has no file name", target.display()))?;
    Ok(target.with_file_name(format!(".{name}.{purpose}")))
}

fn rename_durably(staged: &Path, target: &Path) -> Result<()> {
    std::fs::rename(staged, target)
        .with_context(|| format!("cannot replace {}", target.display()))?;
    sync_parent(target)
}

fn sync_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|parent| parent.is_dir()) {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", parent.display()))?;
    }
    Ok(())
}

/// Runs a store operation to completion from synchronous code, on a runtime of its
/// own (also when called from inside another runtime).
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("delink-store")
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("cannot start the object-store runtime: {error}"))
    });
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    } else {
        runtime.block_on(future)
    }
}

#[cfg(test)]
mod tests;
