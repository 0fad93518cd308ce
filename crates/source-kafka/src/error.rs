//! The one error type of the Kafka source.

use delink_model::{PipelineStopped, SourceError};

/// Explains why the Kafka source stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka client refused its configuration, or failed for good.
    #[error("kafka client failed")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The output's checkpoint of a partition could not be read; nothing of it is consumed.
    #[error("cannot read the checkpoint of {identity}")]
    Checkpoint {
        /// The partition's source identity, `<topic>-<partition>`.
        identity: String,
        /// What the pipeline said.
        source: SourceError,
    },
    /// The pipeline stopped taking batches.
    #[error(transparent)]
    PipelineStopped(#[from] PipelineStopped),
}

/// The result of the Kafka source's operations.
pub type Result<T> = std::result::Result<T, Error>;
