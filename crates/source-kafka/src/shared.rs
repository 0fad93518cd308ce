//! The state the poll loop and the rebalance callback share: the pipeline's
//! context and the assigned lanes.
//!
//! The callback runs inside `poll`, on the poll loop's thread, so the lock is
//! never contended; the poll loop must only never hold it across `poll`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use delink_model::{LaneId, PipelineStopped, Published, SourceContext};
use delink_telemetry::{Health, Metrics, RebalanceEvent};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::consumer::KafkaContext;
use crate::lane::{Lane, Resume, identity};
use crate::{Error, KafkaOptions};

/// How long fetching the group's committed offsets may take on an assignment.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest single wait for a publication report while draining.
const REPORT_WAIT: Duration = Duration::from_millis(100);
/// Tries of the synchronous commit of a revoke or a shutdown.
const SYNC_COMMIT_ATTEMPTS: u32 = 3;
/// The pause between two tries.
const SYNC_COMMIT_RETRY: Duration = Duration::from_millis(200);

/// What the progress line shows of the Kafka source.
#[derive(Debug, Default)]
pub struct KafkaStatus {
    total_lag: AtomicI64,
    assigned_partitions: AtomicUsize,
    commit_failed: AtomicBool,
}

impl KafkaStatus {
    /// Returns the records left to read in the assigned partitions (as last measured).
    pub fn total_lag(&self) -> i64 {
        self.total_lag.load(Ordering::Relaxed)
    }

    /// Returns how many partitions are assigned to this worker.
    pub fn assigned_partitions(&self) -> usize {
        self.assigned_partitions.load(Ordering::Relaxed)
    }

    /// Notes that an asynchronous commit failed, so that the next one sends every position again.
    pub(crate) fn commit_failed(&self) {
        self.commit_failed.store(true, Ordering::Relaxed);
    }
}

/// The shared state of one run of the source.
pub(crate) struct Shared {
    context: Box<dyn SourceContext + Send>,
    lanes: Vec<Lane>,
    next_lane: LaneId,
    options: KafkaOptions,
    metrics: Arc<Metrics>,
    health: Option<Arc<Health>>,
    status: Arc<KafkaStatus>,
    /// Set by a callback that failed; the poll loop returns it.
    failure: Option<Error>,
    /// Shutdown began (or a failure ended the run): no lane starts any more.
    closed: bool,
    /// Lanes closed by the shutdown whose positions could not be committed yet (a
    /// rebalance was in progress); committed once the group lets this member again.
    released: Vec<Lane>,
}

impl Shared {
    pub(crate) fn new(
        context: Box<dyn SourceContext + Send>,
        options: KafkaOptions,
        metrics: Arc<Metrics>,
        health: Option<Arc<Health>>,
        status: Arc<KafkaStatus>,
    ) -> Self {
        Shared {
            context,
            lanes: Vec::new(),
            next_lane: 0,
            options,
            metrics,
            health,
            status,
            failure: None,
            closed: false,
            released: Vec::new(),
        }
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.context.stop_requested()
    }

    pub(crate) fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    fn fail(&mut self, error: Error) {
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }

    /// Takes one record of an assigned partition.
    pub(crate) fn take(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &[u8],
    ) -> Result<(), PipelineStopped> {
        let Ok(offset) = u64::try_from(offset) else {
            return Ok(());
        };
        let Some(lane) = self
            .lanes
            .iter_mut()
            .find(|lane| lane.partition == partition && &*lane.topic == topic)
        else {
            // Fetched before a revoke took the partition away.
            return Ok(());
        };
        lane.take(offset, value, Instant::now(), self.context.as_mut())
    }

    /// Notes a partition EOF: the lanes of that partition number have read everything.
    pub(crate) fn reached_end(&mut self, partition: i32) {
        let single_topic = self.options.topics.len() == 1;
        for lane in self
            .lanes
            .iter_mut()
            .filter(|lane| lane.partition == partition && single_topic)
        {
            lane.reached_end();
        }
        self.update_lag();
    }

    /// Takes the partitions' ends from the client's statistics.
    pub(crate) fn observe_watermarks(&mut self, high_watermarks: &HashMap<(String, i32), i64>) {
        for lane in &mut self.lanes {
            let key = (lane.topic.to_string(), lane.partition);
            if let Some(high) = high_watermarks.get(&key).copied()
                && let Ok(high) = u64::try_from(high)
            {
                lane.high_watermark = Some(high.max(lane.high_watermark.unwrap_or(0)));
            }
        }
        self.update_lag();
    }

    fn update_lag(&self) {
        let mut total = 0;
        for lane in &self.lanes {
            if let Some(lag) = lane.lag() {
                self.metrics
                    .set_partition_lag(&lane.topic, lane.partition, lag);
                total += lag;
            }
        }
        self.status.total_lag.store(total, Ordering::Relaxed);
    }

    /// The periodic duties: linger and age closes, publication reports.
    pub(crate) fn tick(&mut self) -> Result<(), PipelineStopped> {
        let now = Instant::now();
        for lane in &mut self.lanes {
            lane.tick(now, self.context.as_mut())?;
        }
        while let Some(report) = self.context.next_published(Duration::ZERO) {
            self.route(&report, &mut []);
        }
        Ok(())
    }

    /// Commits every published position not committed yet.
    pub(crate) fn commit(&mut self, consumer: &BaseConsumer<KafkaContext>, mode: CommitMode) {
        if self.status.commit_failed.swap(false, Ordering::Relaxed) {
            self.lanes.iter_mut().for_each(Lane::recommit);
        }
        commit_lanes(consumer, &mut self.lanes, mode, &self.metrics, &self.status);
    }

    /// Hands a report to its lane, among the assigned lanes or `draining`.
    fn route(&mut self, report: &Published, draining: &mut [Lane]) {
        let lane = self
            .lanes
            .iter_mut()
            .chain(draining.iter_mut())
            .find(|lane| lane.id == report.lane);
        match lane {
            Some(lane) => lane.published(report),
            None => tracing::debug!(
                lane = report.lane,
                "publication of a lane no longer assigned; not committed"
            ),
        }
    }

    /// Starts lanes for newly assigned partitions and sets where each is fetched from.
    pub(crate) fn assign(
        &mut self,
        consumer: &BaseConsumer<KafkaContext>,
        assignment: &mut TopicPartitionList,
    ) {
        self.metrics.count_rebalance(RebalanceEvent::Assign);
        if let Some(health) = &self.health {
            health.set_source_ready(true);
        }
        let partitions: Vec<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect();
        if partitions.is_empty() || self.closed {
            return;
        }
        let committed = self.committed_offsets(consumer, assignment);
        for (topic, partition) in partitions {
            let source = identity(&topic, partition);
            let checkpoint = match self.context.checkpoint(&source) {
                Ok(checkpoint) => checkpoint,
                Err(source_error) => {
                    self.fail(Error::Checkpoint {
                        identity: source,
                        source: source_error,
                    });
                    return;
                }
            };
            let committed_offset = committed.get(&(topic.clone(), partition)).copied();
            let resume = Resume::decide(
                &checkpoint,
                committed_offset,
                self.options.replay_lookback_records,
            );
            tracing::info!(
                topic = %topic,
                partition,
                committed = committed_offset,
                published_end = checkpoint.published_end,
                resume = resume.resume,
                fetch_from = resume.fetch_from,
                rebuild_end = resume.rebuild_end,
                "partition assigned"
            );
            let fetch_from = i64::try_from(resume.fetch_from).unwrap_or(i64::MAX);
            if let Err(error) =
                assignment.set_partition_offset(&topic, partition, Offset::Offset(fetch_from))
            {
                self.fail(error.into());
                return;
            }
            if let Some(offset) = committed_offset {
                self.metrics.set_committed_offset(
                    &topic,
                    partition,
                    i64::try_from(offset).unwrap_or(i64::MAX),
                );
            }
            let lane = Lane::new(
                self.next_lane,
                topic.into(),
                partition,
                self.options.limits,
                &resume,
                committed_offset,
            );
            self.next_lane = self.next_lane.wrapping_add(1);
            self.lanes.push(lane);
        }
        self.assigned_changed();
    }

    fn committed_offsets(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        assignment: &TopicPartitionList,
    ) -> HashMap<(String, i32), u64> {
        let committed = match consumer.committed_offsets(assignment.clone(), COMMITTED_TIMEOUT) {
            Ok(list) => list,
            Err(error) => {
                // The output's checkpoints still tell what is published.
                tracing::warn!(%error, "cannot read the group's committed offsets");
                return HashMap::new();
            }
        };
        let offsets = committed
            .elements()
            .iter()
            .filter_map(|element| match element.offset() {
                Offset::Offset(offset) => u64::try_from(offset)
                    .ok()
                    .map(|offset| ((element.topic().to_owned(), element.partition()), offset)),
                _ => None,
            })
            .collect();
        // The list holds partition references that would keep the consumer from closing.
        drop(committed);
        offsets
    }

    /// Drains revoked partitions (or drops lost ones) before the revoke proceeds.
    pub(crate) fn revoke(
        &mut self,
        consumer: &BaseConsumer<KafkaContext>,
        revoked: &TopicPartitionList,
        lost: bool,
    ) {
        let revoked: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|element| (element.topic().to_owned(), element.partition()))
            .collect();
        let mut leaving = Vec::new();
        for (topic, partition) in &revoked {
            if let Some(index) = self
                .lanes
                .iter()
                .position(|lane| lane.partition == *partition && &*lane.topic == topic.as_str())
            {
                leaving.push(self.lanes.swap_remove(index));
            }
        }
        if self.closed {
            // A revoke during the shutdown: the generation is still valid within it.
            let mut released = std::mem::take(&mut self.released);
            let (revoked_now, kept): (Vec<Lane>, Vec<Lane>) =
                released.drain(..).partition(|lane| {
                    revoked.iter().any(|(topic, partition)| {
                        lane.partition == *partition && &*lane.topic == topic.as_str()
                    })
                });
            self.released = kept;
            if !lost {
                let mut revoked_now = revoked_now;
                commit_lanes(
                    consumer,
                    &mut revoked_now,
                    CommitMode::Sync,
                    &self.metrics,
                    &self.status,
                );
            }
            return;
        }
        let event = if lost {
            RebalanceEvent::Lost
        } else {
            RebalanceEvent::Revoke
        };
        self.metrics.count_rebalance(event);
        if lost || self.failure.is_some() {
            for lane in &mut leaving {
                tracing::warn!(
                    topic = %lane.topic,
                    partition = lane.partition,
                    "partition lost; its unpublished segments are dropped"
                );
                if let Err(stopped) = lane.discard(self.context.as_mut()) {
                    self.fail(stopped.into());
                }
                // Another consumer may own it already: nothing more of it is published here.
                self.context.fence(lane.id);
                self.metrics.forget_partition(&lane.topic, lane.partition);
            }
            self.assigned_changed();
            return;
        }
        self.set_draining(true);
        let uncommitted = self.drain(consumer, leaving, SYNC_COMMIT_ATTEMPTS);
        for lane in &uncommitted {
            tracing::warn!(
                topic = %lane.topic,
                partition = lane.partition,
                "cannot commit a revoked partition; its next owner resumes from the output's checkpoint"
            );
        }
        self.set_draining(false);
        self.assigned_changed();
    }

    /// Closes every lane at shutdown, waits for their publication and commits;
    /// what could not be committed waits in `released` (see [`Shared::commit_released`]).
    pub(crate) fn close_all(&mut self, consumer: &BaseConsumer<KafkaContext>) {
        self.set_draining(true);
        self.closed = true;
        let leaving = std::mem::take(&mut self.lanes);
        self.released = self.drain(consumer, leaving, 1);
        self.metrics.forget_all_partitions();
        self.assigned_changed();
        if let Some(health) = &self.health {
            health.set_source_ready(false);
        }
    }

    /// Commits what the shutdown could not; tells whether anything is left to commit.
    pub(crate) fn commit_released(&mut self, consumer: &BaseConsumer<KafkaContext>) -> bool {
        if self.released.is_empty() {
            return false;
        }
        let mut released = std::mem::take(&mut self.released);
        released.iter_mut().for_each(Lane::recommit);
        if !commit_lanes(
            consumer,
            &mut released,
            CommitMode::Sync,
            &self.metrics,
            &self.status,
        ) {
            self.released = released;
        }
        !self.released.is_empty()
    }

    /// Gives up on committing what the shutdown could not (the output's checkpoints
    /// still tell the next owner where to resume).
    pub(crate) fn give_up_released(&mut self) {
        for lane in self.released.drain(..) {
            tracing::warn!(
                topic = %lane.topic,
                partition = lane.partition,
                "cannot commit at shutdown; the next owner resumes from the output's checkpoint"
            );
        }
    }

    /// Drops every lane unpublished after a failure; later revokes only unassign.
    pub(crate) fn abandon_all(&mut self) {
        for lane in &mut self.lanes {
            // A pipeline that stopped has nothing left to drop.
            let _ = lane.discard(self.context.as_mut());
        }
        self.lanes.clear();
        self.closed = true;
        self.metrics.forget_all_partitions();
        self.assigned_changed();
    }

    /// Closes `leaving`'s segments, waits for them up to the drain timeout, commits
    /// what was published synchronously and forgets the partitions.
    /// Returns the lanes whose positions could not be committed.
    fn drain(
        &mut self,
        consumer: &BaseConsumer<KafkaContext>,
        mut leaving: Vec<Lane>,
        commit_attempts: u32,
    ) -> Vec<Lane> {
        for lane in &mut leaving {
            if let Err(stopped) = lane.close(self.context.as_mut()) {
                self.fail(stopped.into());
                return Vec::new();
            }
        }
        let deadline = Instant::now() + self.options.drain_timeout;
        while leaving.iter().any(Lane::is_awaiting) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(report) = self.context.next_published(left.min(REPORT_WAIT)) {
                self.route(&report, &mut leaving);
            }
        }
        for lane in leaving.iter().filter(|lane| lane.is_awaiting()) {
            tracing::warn!(
                topic = %lane.topic,
                partition = lane.partition,
                drain_timeout_ms = self.options.drain_timeout.as_millis() as u64,
                "a closed segment was not published within the drain timeout; it is dropped, and the partition's next owner publishes it"
            );
            self.context.fence(lane.id);
        }
        // A publication the fence waited for has reported by now.
        while let Some(report) = self.context.next_published(Duration::ZERO) {
            self.route(&report, &mut leaving);
        }
        // An asynchronous commit asked for earlier may have failed: send every position.
        leaving.iter_mut().for_each(Lane::recommit);
        let mut committed = false;
        for attempt in 1..=commit_attempts {
            committed = commit_lanes(
                consumer,
                &mut leaving,
                CommitMode::Sync,
                &self.metrics,
                &self.status,
            );
            if committed || attempt == commit_attempts {
                break;
            }
            std::thread::sleep(SYNC_COMMIT_RETRY);
        }
        for lane in &leaving {
            tracing::info!(
                topic = %lane.topic,
                partition = lane.partition,
                position = lane.position(),
                "partition released"
            );
            self.metrics.forget_partition(&lane.topic, lane.partition);
        }
        if committed { Vec::new() } else { leaving }
    }

    fn set_draining(&self, draining: bool) {
        if let Some(health) = &self.health {
            health.set_draining(draining);
        }
    }

    fn assigned_changed(&self) {
        self.metrics.set_assigned_partitions(self.lanes.len());
        self.status
            .assigned_partitions
            .store(self.lanes.len(), Ordering::Relaxed);
        self.update_lag();
    }
}

/// Commits each lane's published position that is not committed yet; tells whether
/// the commit went through (or there was nothing to commit).
fn commit_lanes(
    consumer: &BaseConsumer<KafkaContext>,
    lanes: &mut [Lane],
    mode: CommitMode,
    metrics: &Metrics,
    status: &KafkaStatus,
) -> bool {
    let mut offsets = TopicPartitionList::new();
    let mut committing = Vec::new();
    for (index, lane) in lanes.iter().enumerate() {
        let Some(end) = lane.uncommitted() else {
            continue;
        };
        let offset = i64::try_from(end).unwrap_or(i64::MAX);
        if offsets
            .add_partition_offset(&lane.topic, lane.partition, Offset::Offset(offset))
            .is_ok()
        {
            committing.push((index, end));
        }
    }
    if committing.is_empty() {
        return true;
    }
    match consumer.commit(&offsets, mode) {
        Ok(()) => {
            for (index, end) in committing {
                let lane = &mut lanes[index];
                lane.committed(end);
                // An asynchronous commit that fails later is counted and sent again.
                metrics.set_committed_offset(
                    &lane.topic,
                    lane.partition,
                    i64::try_from(end).unwrap_or(i64::MAX),
                );
            }
            true
        }
        Err(error) => {
            metrics.count_commit_error();
            status.commit_failed();
            tracing::warn!(%error, "offset commit failed; the positions are sent again");
            false
        }
    }
}
