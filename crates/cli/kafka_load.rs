//! `delink gen --kafka-brokers …`: produces generated observations into a Kafka topic,
//! to load-test the pipeline or fill a test broker.
//!
//! One [`BaseProducer`], polled on the generating thread. Every record is keyed by the
//! serial of the charger that sent it, as the spec's producers do, so librdkafka's
//! partitioner keeps each charger's records in one partition; garbage lines, which no
//! charger's observation underlies, go with a null key to a random partition.
//!
//! Memory stays bounded: librdkafka's queue holds at most [`QUEUE_MAX_KBYTES`] (unless
//! `-X queue.buffering.max.kbytes=…` says otherwise), and a full queue makes the loop serve
//! delivery reports until there is room, so generation runs at the broker's pace. The run
//! fails unless the broker acknowledged every record. Nothing of a record (key or value)
//! is ever printed: progress and errors carry counts, the topic and librdkafka's error codes.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use delink_synth::{Generator, SynthConfig, SynthSummary};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;

/// Where `delink gen` produces, and how fast.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Kafka")]
pub(crate) struct KafkaArgs {
    /// Kafka bootstrap servers: produces into --topic instead of writing NDJSON.
    #[arg(
        long,
        value_name = "HOST:PORT,…",
        requires = "topic",
        conflicts_with = "output"
    )]
    kafka_brokers: Option<String>,
    /// Topic to produce into.
    #[arg(long, requires = "kafka_brokers")]
    topic: Option<String>,
    /// Records per second at most; 0 (the default) produces as fast as the broker takes them.
    #[arg(long, value_name = "N", requires = "kafka_brokers")]
    rate: Option<u64>,
    /// Creates the topic with this many partitions first, unless it exists.
    #[arg(
        long,
        value_name = "P",
        requires = "kafka_brokers",
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    partitions: Option<i32>,
    /// A librdkafka client property (security.protocol=ssl, sasl.username=…, linger.ms=…);
    /// repeatable, applied after delink's own settings.
    #[arg(
        short = 'X',
        value_name = "KEY=VALUE",
        requires = "kafka_brokers",
        value_parser = parse_property
    )]
    properties: Vec<ClientProperty>,
}

/// A librdkafka property from `-X`; its value can be a secret, so Debug shows the key only.
#[derive(Clone)]
struct ClientProperty {
    key: String,
    value: String,
}

impl std::fmt::Debug for ClientProperty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=…", self.key)
    }
}

fn parse_property(text: &str) -> Result<ClientProperty, String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok(ClientProperty {
            key: key.trim().to_owned(),
            value: value.to_owned(),
        }),
        _ => Err("expected KEY=VALUE, e.g. -X security.protocol=ssl".to_owned()),
    }
}

/// librdkafka's queue bound, in KiB: at most 64 MiB of records wait for the broker.
const QUEUE_MAX_KBYTES: &str = "65536";
/// Room for the generator's largest line (a `too_large` one of about 2 MB); librdkafka's
/// default of 1,000,000 bytes would refuse it before the pipeline could quarantine it.
const MESSAGE_MAX_BYTES: &str = "4194304";
/// How long to wait for the brokers' metadata and for a topic to be created.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a full queue waits for delivery reports before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(50);
/// Delivery reports are served once per this many records (and whenever the queue is full).
const POLL_EVERY_RECORDS: u64 = 1024;

impl KafkaArgs {
    /// Whether `delink gen` produces into Kafka rather than writing NDJSON.
    pub(crate) fn is_set(&self) -> bool {
        self.kafka_brokers.is_some()
    }

    fn client_config(&self, brokers: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("client.id", "delink-gen")
            .set("queue.buffering.max.kbytes", QUEUE_MAX_KBYTES)
            .set("message.max.bytes", MESSAGE_MAX_BYTES);
        for property in &self.properties {
            config.set(&property.key, &property.value);
        }
        config
    }
}

/// Generates `synth`'s observations into the topic; fails unless every one was delivered.
pub(crate) fn produce(synth: SynthConfig, args: &KafkaArgs) -> anyhow::Result<()> {
    let (Some(brokers), Some(topic)) = (&args.kafka_brokers, &args.topic) else {
        anyhow::bail!("--kafka-brokers and --topic are both needed to produce into kafka");
    };
    let config = args.client_config(brokers);
    let producer: BaseProducer<DeliveryReports> = config
        .create_with_context(DeliveryReports::default())
        .map_err(hide_property_value)
        .context("cannot create the kafka producer")?;
    let partitions = prepare_topic(&config, &producer, brokers, topic, args.partitions)?;

    let started = Instant::now();
    let mut pace = args
        .rate
        .filter(|&per_second| per_second > 0)
        .map(|per_second| TokenBucket::new(per_second, started));
    let mut progress = ProgressLine::new(started);
    let mut summary = SynthSummary::default();
    for generated in Generator::new(synth) {
        if let Some(pace) = &mut pace {
            while let Some(wait) = pace.take(Instant::now()) {
                producer.poll(wait);
            }
        }
        summary.add(&generated);
        let mut record = BaseRecord::<str, [u8]>::to(topic).payload(generated.line.as_slice());
        record.key = generated.serial.as_deref();
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    producer.poll(QUEUE_FULL_WAIT);
                }
                Err((error, _)) => {
                    // Refused before queueing (too large for message.max.bytes, say).
                    producer.context().failed(error);
                    break;
                }
            }
        }
        if summary.lines.is_multiple_of(POLL_EVERY_RECORDS) {
            producer.poll(Duration::ZERO);
        }
        progress.maybe_print(summary.lines, producer.context());
    }
    producer
        .flush(Timeout::Never)
        .context("cannot flush the records still queued for kafka")?;

    let reports = producer.context();
    let delivered = reports.delivered.load(Ordering::Relaxed);
    let failed = reports.failed.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let partitions = partitions.map_or_else(String::new, |count| format!(" ({count} partitions)"));
    crate::logging::status(format_args!(
        "generated {} observations ({} valid, {} broken, {:.1} MB) for topic {topic}{partitions} in {seconds:.1} s ({:.0}/s): {delivered} delivered, {failed} failed",
        summary.lines,
        summary.valid,
        summary.broken,
        (summary.bytes - summary.lines) as f64 / 1e6,
        summary.lines as f64 / seconds,
    ));
    if failed > 0 || delivered != summary.lines {
        let cause = reports.first_error().map_or_else(
            || "no delivery report".to_owned(),
            |error| error.to_string(),
        );
        anyhow::bail!(
            "{} of {} records were not delivered to topic {topic} (first error: {cause})",
            summary.lines - delivered,
            summary.lines
        );
    }
    Ok(())
}

/// Checks the brokers answer, and creates the topic when `partitions` asks for it and it
/// does not exist. Returns the topic's partition count once known.
fn prepare_topic(
    config: &ClientConfig,
    producer: &BaseProducer<DeliveryReports>,
    brokers: &str,
    topic: &str,
    partitions: Option<i32>,
) -> anyhow::Result<Option<usize>> {
    // Metadata of every topic: asking for this one alone could auto-create it.
    let metadata = producer
        .client()
        .fetch_metadata(None, ADMIN_TIMEOUT)
        .with_context(|| format!("cannot fetch metadata from the kafka brokers {brokers}"))?;
    let existing = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic)
        .map(|found| found.partitions().len());
    match (existing, partitions) {
        (Some(count), Some(wanted)) if usize::try_from(wanted) != Ok(count) => {
            crate::logging::status(format_args!(
                "note: topic {topic} exists with {count} partitions; --partitions {wanted} is not applied"
            ));
            Ok(Some(count))
        }
        (Some(count), _) => Ok(Some(count)),
        (None, Some(wanted)) => {
            create_topic(config, topic, wanted)?;
            Ok(usize::try_from(wanted).ok())
        }
        (None, None) => {
            crate::logging::status(format_args!(
                "note: topic {topic} does not exist; brokers that auto-create topics create it on the first record (--partitions creates it first)"
            ));
            Ok(None)
        }
    }
}

fn create_topic(config: &ClientConfig, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(hide_property_value)
        .context("cannot create the kafka admin client")?;
    // -1: the brokers' default replication factor.
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new_topic], &options))
        .with_context(|| format!("cannot create topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// Drops the value from librdkafka's complaint about a property: it may be a secret.
fn hide_property_value(error: KafkaError) -> anyhow::Error {
    match error {
        KafkaError::ClientConfig(_, description, key, _value) => {
            anyhow::anyhow!("kafka client property {key}: {description}")
        }
        other => other.into(),
    }
}

/// Counts delivery reports; librdkafka calls it from `poll`, on the producing thread.
#[derive(Default)]
struct DeliveryReports {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<KafkaError>>,
}

impl DeliveryReports {
    fn failed(&self, error: KafkaError) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    fn first_error(&self) -> Option<KafkaError> {
        self.first_error.lock().ok().and_then(|first| first.clone())
    }
}

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            // The message is not looked at: its key and value are generated personal data.
            Err((error, _message)) => self.failed(error.clone()),
        }
    }
}

/// A progress line on stderr every second on a terminal, every ten seconds in a log.
struct ProgressLine {
    started: Instant,
    every: Duration,
    next: Instant,
}

impl ProgressLine {
    fn new(started: Instant) -> ProgressLine {
        let every = if std::io::stderr().is_terminal() {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        ProgressLine {
            started,
            every,
            next: started + every,
        }
    }

    fn maybe_print(&mut self, produced: u64, reports: &DeliveryReports) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + self.every;
        let seconds = now.duration_since(self.started).as_secs_f64().max(1e-9);
        crate::logging::status(format_args!(
            "progress: {produced} records produced ({:.0}/s), {} delivered, {} failed",
            produced as f64 / seconds,
            reports.delivered.load(Ordering::Relaxed),
            reports.failed.load(Ordering::Relaxed),
        ));
    }
}

/// Paces records to a rate: a token bucket refilled continuously, holding at most a
/// twentieth of a second's worth (at least one), so bursts stay short.
#[derive(Debug)]
struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    fn new(per_second: u64, now: Instant) -> TokenBucket {
        let per_second = per_second as f64;
        TokenBucket {
            per_second,
            capacity: (per_second / 20.0).max(1.0),
            tokens: 1.0,
            refilled_at: now,
        }
    }

    /// Takes a token, or says how long to wait before one is there.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        // Rounded up, and never zero, so the token is there after the wait.
        let nanos = ((1.0 - self.tokens) / self.per_second * 1e9).ceil();
        Some(Duration::from_nanos((nanos as u64).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records a bucket lets through in `span`, taking tokens as soon as they are there.
    fn passed_in(per_second: u64, span: Duration) -> u64 {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(per_second, start);
        let mut now = start;
        let mut passed = 0;
        while now < start + span {
            match bucket.take(now) {
                None => passed += 1,
                Some(wait) => now += wait,
            }
        }
        passed
    }

    #[test]
    fn token_bucket_holds_the_rate() {
        for per_second in [1, 7, 1_000, 250_000] {
            let passed = passed_in(per_second, Duration::from_secs(2));
            let expected = 2 * per_second;
            assert!(
                passed.abs_diff(expected) <= 1,
                "{per_second}/s let {passed} through in 2 s"
            );
        }
    }

    #[test]
    fn token_bucket_bursts_at_most_a_twentieth_of_a_second_after_idling() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        let later = start + Duration::from_secs(60);
        let burst = std::iter::from_fn(|| bucket.take(later).is_none().then_some(()))
            .take(10_000)
            .count();
        assert_eq!(burst, 50);
    }

    #[test]
    fn client_properties_split_at_the_first_equals_sign_and_hide_their_values() {
        let property = parse_property("sasl.password=a=b").expect("parses");
        assert_eq!(
            (property.key.as_str(), property.value.as_str()),
            ("sasl.password", "a=b")
        );
        assert_eq!(format!("{property:?}"), "sasl.password=…");
        assert!(parse_property("no-equals-sign").is_err());
        assert!(parse_property("=value").is_err());
    }
}
