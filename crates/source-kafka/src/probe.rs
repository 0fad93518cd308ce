//! A side-effect-free look at the brokers: metadata only, no group join, no commit.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::KafkaOptions;
use crate::consumer::client_config;

/// What the brokers said about one configured topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProbe {
    /// The topic's name, as configured.
    pub topic: String,
    /// Its partitions; `None` when the brokers do not know it.
    pub partitions: Option<usize>,
}

/// Connects with the source's own client settings and fetches the metadata of
/// `topics`, within `timeout`. Joins no group and commits nothing.
pub fn probe_topics(
    options: &KafkaOptions,
    topics: &[String],
    timeout: Duration,
) -> crate::Result<Vec<TopicProbe>> {
    let consumer: BaseConsumer = client_config(options)
        .set("statistics.interval.ms", "0")
        .create()?;
    let metadata = consumer.fetch_metadata(None, timeout)?;
    Ok(topics
        .iter()
        .map(|topic| {
            let known = metadata
                .topics()
                .iter()
                .find(|found| found.name() == topic && found.error().is_none());
            TopicProbe {
                topic: topic.clone(),
                partitions: known.map(|found| found.partitions().len()),
            }
        })
        .collect())
}
