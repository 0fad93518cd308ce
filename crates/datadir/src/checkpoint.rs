//! Published positions of resumable sources, under `_checkpoints/<source identity>.json`.
//!
//! Written by the publisher around each segment's publication: first the
//! segment it is about to publish (durably, before any rename), then the new
//! published end. A source reads them when it resumes.

use std::fs::{self, File};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use delink_model::{Checkpoint, SegmentRange};

use crate::DataLayout;

/// The checkpoint file of one source identity.
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// Names the checkpoint of `source` (an identity safe for a file name).
    pub fn new(layout: &DataLayout, source: &str) -> Result<Self> {
        let safe = !source.is_empty()
            && source
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
            && !source.starts_with('.');
        if !safe {
            return Err(anyhow!(
                "a source identity must be [A-Za-z0-9._-] and not start with a dot"
            ));
        }
        Ok(CheckpointFile {
            path: layout.checkpoints().join(format!("{source}.json")),
        })
    }

    /// Reads the checkpoint; the default (nothing published) when there is none.
    pub fn read(&self) -> Result<Checkpoint> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a checkpoint", self.path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(error) => {
                Err(error).with_context(|| format!("cannot read {}", self.path.display()))
            }
        }
    }

    /// Records, durably, that `segment` is about to be published.
    pub fn begin(&self, segment: SegmentRange) -> Result<()> {
        let mut checkpoint = self.read()?;
        checkpoint.publishing = Some(segment);
        self.write(&checkpoint)
    }

    /// Records, durably, that the segment begun last is published.
    pub fn finish(&self, segment: SegmentRange) -> Result<()> {
        let checkpoint = Checkpoint {
            published_end: Some(segment.end),
            publishing: None,
        };
        self.write(&checkpoint)
    }

    fn write(&self, checkpoint: &Checkpoint) -> Result<()> {
        let dir = self
            .path
            .parent()
            .ok_or_else(|| anyhow!("{} has no directory", self.path.display()))?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let staged = self.path.with_extension("json.new");
        let bytes = serde_json::to_vec(checkpoint)?;
        File::create(&staged)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&staged, &self.path))
            .and_then(|()| File::open(dir)?.sync_all())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_records_the_segment_being_published_then_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = DataLayout::new(dir.path());
        let file = CheckpointFile::new(&layout, "orders-3").expect("name");
        assert_eq!(file.read().expect("read"), Checkpoint::default());
        let segment = SegmentRange { first: 0, end: 100 };
        file.begin(segment).expect("begin");
        assert_eq!(file.read().expect("read").publishing, Some(segment));
        file.finish(segment).expect("finish");
        let next = SegmentRange {
            first: 100,
            end: 150,
        };
        file.begin(next).expect("begin");
        assert_eq!(
            file.read().expect("read"),
            Checkpoint {
                published_end: Some(100),
                publishing: Some(next)
            }
        );
    }

    #[test]
    fn identities_that_could_escape_the_directory_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = DataLayout::new(dir.path());
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(CheckpointFile::new(&layout, bad).is_err(), "{bad}");
        }
    }
}
