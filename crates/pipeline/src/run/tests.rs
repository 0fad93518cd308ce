//! The pipeline with a source that gives a lane away while its segments are
//! still being published.

use std::sync::{Condvar, Mutex};

use delink_datadir::{CheckpointFile, DataLayout, OutputStore};
use delink_model::{
    DeadLetter, Published, RawBatch, RawRecord, SegmentId, SourceContext, SourceError,
};

use super::*;

const POLICY: &str = include_str!("../../../../config/policy.toml");
const SOURCE: &str = "orders-0";

/// Dead letters whose flush (the first step of a publication under way) blocks
/// until the test releases it.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    flushing: bool,
    released: bool,
}

impl Gate {
    fn wait_until(&self, done: impl Fn(&GateState) -> bool) {
        let mut state = self.state.lock().expect("gate");
        while !done(&state) {
            state = self.changed.wait(state).expect("gate");
        }
    }

    fn release(&self) {
        self.state.lock().expect("gate").released = true;
        self.changed.notify_all();
    }

    fn is_released(&self) -> bool {
        self.state.lock().expect("gate").released
    }
}

impl DeadLetters for Gate {
    fn send(&self, _letter: &DeadLetter<'_>) -> Result<(), SourceError> {
        Ok(())
    }

    fn flush(&self) -> Result<(), SourceError> {
        self.state.lock().expect("gate").flushing = true;
        self.changed.notify_all();
        self.wait_until(|state| state.released);
        Ok(())
    }
}

/// Emits two segments of one lane, fences the lane while the first is being
/// published, and notes what it heard back.
struct GivingAway {
    gate: Arc<Gate>,
    heard: Arc<Mutex<Vec<Published>>>,
    fence_waited: Arc<AtomicBool>,
}

/// A closed segment of lane 0 holding `records` records that are not observations.
fn segment(first: u64, records: u64, closes_lane: bool) -> RawBatch {
    let mut batch = RawBatch {
        lane: 0,
        segment: SegmentId {
            source: SOURCE.into(),
            first_position: first,
        },
        closes_segment: true,
        end_position: first + records,
        resumable: true,
        closes_lane,
        ..RawBatch::default()
    };
    for position in first..first + records {
        let start = batch.data.len();
        batch.data.extend_from_slice(b"not an observation");
        batch.records.push(RawRecord {
            position,
            range: start..batch.data.len(),
            full_len: (batch.data.len() - start) as u64,
        });
    }
    batch
}

impl Source for GivingAway {
    fn run(&mut self, mut context: Box<dyn SourceContext + Send>) -> Result<(), SourceError> {
        context.emit(segment(0, 3, false))?;
        context.emit(segment(3, 3, true))?;
        self.gate.wait_until(|state| state.flushing);
        context.fence(0);
        self.fence_waited
            .store(self.gate.is_released(), Ordering::SeqCst);
        let mut heard = self.heard.lock().expect("heard");
        while let Some(report) = context.next_published(Duration::ZERO) {
            heard.push(report);
        }
        Ok(())
    }
}

#[test]
fn a_fenced_lane_publishes_the_segment_under_way_and_drops_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut config = delink_config::Config {
        data_dir: data.clone(),
        ..delink_config::Config::default()
    };
    config.keystore.kek_file = Some(dir.path().join("kek"));
    let plan = delink_policy::compile(POLICY).expect("policy");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let gate = Arc::new(Gate::default());
    let pipeline = Pipeline::open(config, plan, metrics)
        .expect("pipeline")
        .with_dead_letters(Arc::clone(&gate) as Arc<dyn DeadLetters>);
    let mut source = GivingAway {
        gate: Arc::clone(&gate),
        heard: Arc::default(),
        fence_waited: Arc::default(),
    };
    let heard = Arc::clone(&source.heard);
    let fence_waited = Arc::clone(&source.fence_waited);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            gate.wait_until(|state| state.flushing);
            // Long enough for a fence that does not wait to return first.
            std::thread::sleep(Duration::from_millis(200));
            gate.release();
        });
        pipeline.run(&mut source, &mut |_| {}).expect("run");
    });

    assert!(
        fence_waited.load(Ordering::SeqCst),
        "the fence returned while a publication was under way"
    );
    assert_eq!(
        *heard.lock().expect("heard"),
        vec![Published {
            lane: 0,
            segment_first: 0,
            end_position: 3
        }],
        "the publication the fence waited for is reported by the time it returns"
    );
    let published: Vec<String> = OutputStore::local(&data)
        .expect("outputs")
        .list("quarantine")
        .expect("list")
        .into_iter()
        .map(|object| object.key)
        .collect();
    assert!(
        published
            .iter()
            .any(|key| key.ends_with("part-orders-0-000000000000.parquet")),
        "{published:?}"
    );
    assert!(
        !published
            .iter()
            .any(|key| key.contains("orders-0-000000000003")),
        "a segment of the fenced lane was published: {published:?}"
    );
    let checkpoint = CheckpointFile::new(&DataLayout::new(&data), SOURCE)
        .expect("checkpoint")
        .read()
        .expect("read");
    assert_eq!(checkpoint.published_end, Some(3));
    assert_eq!(checkpoint.publishing, None);
}
