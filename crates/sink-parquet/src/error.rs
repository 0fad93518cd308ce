use std::path::PathBuf;

/// Explains a sink failure; fatal for the pipeline, which then publishes nothing more.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A file operation failed.
    #[error("{action} failed at {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The Parquet encoder failed.
    #[error("writing parquet file {path} failed")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        source: Box<parquet::errors::ParquetError>,
    },
    /// The output store did not take a file.
    #[error("publishing {key} failed: {source:#}")]
    Publish {
        /// The file's key in the output store.
        key: String,
        /// The store's error.
        source: anyhow::Error,
    },
    /// The same partition was asked for twice to be written apart.
    #[error("partition {0} was asked for twice in one parallel write")]
    DuplicatePartition(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, SinkError>;

pub(crate) fn io(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> SinkError {
    let path = path.to_path_buf();
    move |source| SinkError::Io {
        action,
        path,
        source,
    }
}
