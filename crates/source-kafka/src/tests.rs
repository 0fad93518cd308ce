//! The whole source against librdkafka's in-process mock cluster, with a fake
//! pipeline that publishes every closed segment at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use delink_model::{
    Checkpoint, LaneId, PipelineStopped, Published, RawBatch, Source, SourceContext,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::*;

const TOPIC: &str = "observations";
const PARTITIONS: i32 = 2;
const GROUP: &str = "delink-test";

/// What the fake pipeline saw and holds, shared with the test.
#[derive(Default)]
struct Output {
    batches: Vec<RawBatch>,
    checkpoints: HashMap<String, Checkpoint>,
    /// The lanes fenced, in order.
    fenced: Vec<LaneId>,
}

/// Publishes each segment as soon as its closing batch arrives, or never (a stuck publisher).
struct FakePipeline {
    output: Arc<Mutex<Output>>,
    reports: VecDeque<Published>,
    stop: Arc<AtomicBool>,
    publishes: bool,
}

impl SourceContext for FakePipeline {
    fn emit(&mut self, batch: RawBatch) -> std::result::Result<(), PipelineStopped> {
        let mut output = self.output.lock().expect("output");
        if self.publishes
            && batch.closes_segment
            && !batch.already_published
            && !batch.discards_segment
        {
            let checkpoint = output
                .checkpoints
                .entry(batch.segment.source.to_string())
                .or_default();
            checkpoint.published_end = Some(batch.end_position);
            self.reports.push_back(Published {
                lane: batch.lane,
                segment_first: batch.segment.first_position,
                end_position: batch.end_position,
            });
        }
        output.batches.push(batch);
        Ok(())
    }

    fn buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }

    fn next_published(&mut self, _timeout: Duration) -> Option<Published> {
        self.reports.pop_front()
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn checkpoint(&mut self, source: &str) -> std::result::Result<Checkpoint, SourceError> {
        let output = self.output.lock().expect("output");
        Ok(output.checkpoints.get(source).copied().unwrap_or_default())
    }

    fn fence(&mut self, lane: LaneId) {
        self.output.lock().expect("output").fenced.push(lane);
    }
}

fn options(brokers: &str, strategy: &str) -> KafkaOptions {
    KafkaOptions {
        brokers: brokers.to_owned(),
        group_id: GROUP.to_owned(),
        topics: vec![TOPIC.to_owned()],
        properties: BTreeMap::new(),
        session_timeout: Duration::from_secs(6),
        heartbeat_interval: Duration::from_millis(500),
        assignment_strategy: strategy.to_owned(),
        drain_timeout: Duration::from_secs(5),
        limits: LaneLimits {
            batch_records: 50,
            batch_bytes: 1 << 20,
            keep_bytes: 1 << 20,
            linger: Duration::from_millis(20),
            segment_max_records: 120,
            segment_max_bytes: 1 << 30,
            segment_max_age: Duration::from_millis(500),
        },
        replay_lookback_records: 30,
        commit_interval: Duration::from_millis(200),
    }
}

/// A mock cluster holding the topic with records `0..count`, and its bootstrap servers.
fn cluster_with_records(
    count: u32,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 0..count);
    (cluster, brokers)
}

fn produce(brokers: &str, range: std::ops::Range<u32>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for index in range {
        let key = format!("charger-{}", index % 7);
        let value = format!("{{\"n\":{index}}}");
        loop {
            match producer.send(BaseRecord::to(TOPIC).key(&key).payload(&value)) {
                Ok(()) => break,
                Err((_, _)) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

/// Runs the source on its own thread until the test sets the stop flag.
fn start(
    brokers: &str,
    output: &Arc<Mutex<Output>>,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<std::result::Result<(), String>> {
    start_with(options(brokers, "range"), output, stop)
}

fn start_with(
    options: KafkaOptions,
    output: &Arc<Mutex<Output>>,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<std::result::Result<(), String>> {
    start_publishing(options, output, stop, true)
}

fn start_publishing(
    options: KafkaOptions,
    output: &Arc<Mutex<Output>>,
    stop: &Arc<AtomicBool>,
    publishes: bool,
) -> JoinHandle<std::result::Result<(), String>> {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let mut source = KafkaSource::new(options, metrics);
    let context = FakePipeline {
        output: Arc::clone(output),
        reports: VecDeque::new(),
        stop: Arc::clone(stop),
        publishes,
    };
    std::thread::spawn(move || {
        source
            .run(Box::new(context))
            .map_err(|error| error.to_string())
    })
}

/// The offsets written (not `already_published`) per partition source identity.
fn written(output: &Mutex<Output>) -> BTreeMap<String, Vec<u64>> {
    let output = output.lock().expect("output");
    let mut written: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for batch in output
        .batches
        .iter()
        .filter(|batch| !batch.already_published)
    {
        written
            .entry(batch.segment.source.to_string())
            .or_default()
            .extend(batch.records.iter().map(|record| record.position));
    }
    written
}

fn wait_for_records(output: &Mutex<Output>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while written(output).values().map(Vec::len).sum::<usize>() < count {
        assert!(Instant::now() < deadline, "the records never all arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn committed(brokers: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", GROUP)
        .create()
        .expect("consumer");
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(TOPIC, partition);
    }
    let list = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed");
    let offsets = list
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(offset) => Some((element.partition(), offset)),
            _ => None,
        })
        .collect();
    drop(list);
    offsets
}

#[test]
fn every_record_is_written_once_committed_after_publication_and_a_restart_reads_nothing_again() {
    let (_cluster, brokers) = cluster_with_records(1000);

    let output = Arc::new(Mutex::new(Output::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let first = start(&brokers, &output, &stop);
    wait_for_records(&output, 1000);
    stop.store(true, Ordering::Relaxed);
    first.join().expect("joined").expect("clean stop");

    let written_first = written(&output);
    let mut ends = BTreeMap::new();
    for (source, mut offsets) in written_first.clone() {
        let count = offsets.len();
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), count, "{source}: a record written twice");
        assert_eq!(
            offsets,
            (0..count as u64).collect::<Vec<_>>(),
            "{source}: offsets are contiguous from 0"
        );
        ends.insert(source, count as i64);
    }
    assert_eq!(ends.values().sum::<i64>(), 1000);
    let committed_first = committed(&brokers);
    for partition in 0..PARTITIONS {
        assert_eq!(
            committed_first.get(&partition).copied(),
            ends.get(&format!("{TOPIC}-{partition}")).copied(),
            "partition {partition} is committed at its end"
        );
    }
    {
        let output = output.lock().expect("output");
        let open_lanes: Vec<_> = output
            .batches
            .iter()
            .filter(|batch| batch.closes_lane)
            .map(|batch| batch.lane)
            .collect();
        assert_eq!(open_lanes.len(), PARTITIONS as usize, "every lane closed");
    }

    // A restart re-reads only the look-back, as already published, then new records.
    output.lock().expect("output").batches.clear();
    produce(&brokers, 1000..1100);
    let stop = Arc::new(AtomicBool::new(false));
    let second = start(&brokers, &output, &stop);
    wait_for_records(&output, 100);
    stop.store(true, Ordering::Relaxed);
    second.join().expect("joined").expect("clean stop");
    let written_second = written(&output);
    for (source, offsets) in &written_second {
        let end = ends[source] as u64;
        assert!(
            offsets.iter().all(|offset| *offset >= end),
            "{source}: nothing published is written again"
        );
    }
    assert_eq!(written_second.values().map(Vec::len).sum::<usize>(), 100);
    let output = output.lock().expect("output");
    let replay_window: usize = output
        .batches
        .iter()
        .filter(|batch| batch.already_published)
        .map(|batch| batch.records.len())
        .sum();
    assert_eq!(
        replay_window,
        30 * PARTITIONS as usize,
        "the look-back refills the replay window"
    );
}

#[test]
fn a_member_joining_takes_partitions_only_after_they_are_drained_and_committed() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("debug")
        .try_init();
    let (_cluster, brokers) = cluster_with_records(600);
    // One output, as two workers sharing a data directory have.
    let output = Arc::new(Mutex::new(Output::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let first = start_with(options(&brokers, "cooperative-sticky"), &output, &stop);
    wait_for_records(&output, 600);
    let stop_second = Arc::new(AtomicBool::new(false));
    let second = start_with(
        options(&brokers, "cooperative-sticky"),
        &output,
        &stop_second,
    );
    // Wait for the second member to be handed a partition (a lane of its own closes on revoke).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !output
        .lock()
        .expect("output")
        .batches
        .iter()
        .any(|batch| batch.closes_lane)
    {
        assert!(Instant::now() < deadline, "no rebalance happened");
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&brokers, 600..1200);
    wait_for_records(&output, 1200);
    // One at a time, as a rolling restart does: a member leaving starts a rebalance
    // during which the group refuses the other's commits.
    stop_second.store(true, Ordering::Relaxed);
    second.join().expect("joined").expect("clean stop");
    stop.store(true, Ordering::Relaxed);
    first.join().expect("joined").expect("clean stop");
    let mut total = 0;
    for (source, mut offsets) in written(&output) {
        let count = offsets.len();
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), count, "{source}: a record written twice");
        assert_eq!(offsets, (0..count as u64).collect::<Vec<_>>(), "{source}");
        total += count;
        let partition: i32 = source
            .rsplit('-')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("partition");
        assert_eq!(
            committed(&brokers).get(&partition).copied(),
            Some(count as i64)
        );
    }
    assert_eq!(total, 1200);
}

#[test]
fn a_partition_whose_segments_miss_the_drain_timeout_is_fenced_before_it_is_given_away() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("info")
        .try_init();
    let (_cluster, brokers) = cluster_with_records(600);
    // Outputs of their own: lane ids are per consumer.
    let output = Arc::new(Mutex::new(Output::default()));
    let healthy_output = Arc::new(Mutex::new(Output::default()));
    let stop_stuck = Arc::new(AtomicBool::new(false));
    let mut stuck_options = options(&brokers, "cooperative-sticky");
    stuck_options.drain_timeout = Duration::from_millis(300);
    let stuck = start_publishing(stuck_options, &output, &stop_stuck, false);
    wait_for_records(&output, 600);
    let stuck_lanes: Vec<(LaneId, String)> = {
        let output = output.lock().expect("output");
        let mut lanes: Vec<_> = output
            .batches
            .iter()
            .map(|batch| (batch.lane, batch.segment.source.to_string()))
            .collect();
        lanes.sort();
        lanes.dedup();
        lanes
    };
    assert_eq!(
        stuck_lanes.len(),
        PARTITIONS as usize,
        "one lane per partition"
    );
    assert!(output.lock().expect("output").fenced.is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let healthy = start_with(
        options(&brokers, "cooperative-sticky"),
        &healthy_output,
        &stop,
    );
    // The healthy member reads a partition only once the stuck one gave it away.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (fenced, source) = loop {
        let taken_over = healthy_output
            .lock()
            .expect("output")
            .batches
            .iter()
            .find(|batch| !batch.records.is_empty())
            .map(|batch| batch.segment.source.to_string());
        if let Some(source) = taken_over {
            break (output.lock().expect("output").fenced.clone(), source);
        }
        assert!(Instant::now() < deadline, "no partition was taken over");
        std::thread::sleep(Duration::from_millis(50));
    };
    let lane = stuck_lanes
        .iter()
        .find(|(_, identity)| *identity == source)
        .map(|(lane, _)| *lane)
        .expect("the partition was the stuck member's");
    assert!(
        fenced.contains(&lane),
        "the partition was given away without fencing its lane: fenced {fenced:?}, lane {lane}"
    );
    stop_stuck.store(true, Ordering::Relaxed);
    stuck.join().expect("joined").expect("clean stop");
    stop.store(true, Ordering::Relaxed);
    healthy.join().expect("joined").expect("clean stop");
}
