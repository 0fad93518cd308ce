//! End-to-end harness: generates N observations (1% broken), runs the release
//! `delink run` on them in a fresh data directory, and prints obs/s, input MB/s
//! and peak RSS as measured by the run itself.
//!
//! `cargo bench --bench e2e -- 1000000` (N defaults to 1,000,000; the input is
//! cached under target/bench-data/).
//!
//! `cargo bench --bench e2e -- 1000000 --kafka` also loads the same N observations
//! into a 4-partition topic of a local tansu broker (memory storage, from
//! `target/test-venv`, see tests/support/python-env.sh), runs `delink run --kafka`
//! until the group has caught up, and prints its figures next to the file run's:
//! over the whole run (group join and stop included) and over the consuming window
//! (first record to the last, read off the once-a-second progress lines).

use std::path::PathBuf;
use std::process::Command;

use delink_synth::{SynthConfig, write_ndjson};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count = std::env::args()
        .skip(1)
        .find_map(|arg| arg.replace('_', "").parse::<u64>().ok())
        .unwrap_or(1_000_000);
    let kafka = std::env::args().any(|arg| arg == "--kafka");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&root)?;
    let input = root.join(format!("observations-{count}.ndjson"));
    if !input.exists() {
        eprintln!("generating {count} observations into {}", input.display());
        let partial = input.with_extension("partial");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        write_ndjson(
            SynthConfig {
                bad_fraction: 0.01,
                ..SynthConfig::new(count, 1)
            },
            &mut out,
        )?;
        std::io::Write::flush(&mut out)?;
        std::fs::rename(&partial, &input)?;
    }
    let data = root.join(format!("data-{count}"));
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let summary_path = root.join(format!("summary-{count}.json"));
    let status = Command::new(env!("CARGO_BIN_EXE_delink"))
        .arg("run")
        .arg(&input)
        .arg("--data-dir")
        .arg(&data)
        .arg("--summary-json")
        .arg(&summary_path)
        .args(["--progress", "never"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("delink run failed: {status}").into());
    }
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path)?)?;
    let peak = summary["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    println!(
        "e2e/{count}: {:.0} obs/s, {:.1} MB/s input, peak RSS {:.0} MiB ({} obs, {:.1} MB in {:.2} s; history {} rows, devices {} rows, quarantined {})",
        summary["observations_per_second"].as_f64().unwrap_or(0.0),
        summary["input_megabytes_per_second"]
            .as_f64()
            .unwrap_or(0.0),
        peak,
        summary["observations_in"],
        summary["input_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        summary["elapsed_seconds"].as_f64().unwrap_or(0.0),
        summary["history_rows"],
        summary["devices_rows"],
        summary["quarantined"],
    );
    std::fs::remove_dir_all(&data)?;
    if kafka {
        kafka::run(count, &root, &summary)?;
    }
    Ok(())
}

/// The Kafka-input run of the harness.
mod kafka {
    use std::io::{BufRead, BufReader};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    const TOPIC: &str = "bench-observations";
    const KEK: &str = "1:0909090909090909090909090909090909090909090909090909090909090909";

    /// A tansu broker on a free loopback port, killed on drop.
    struct Broker(Child, u16);

    impl Drop for Broker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn start_broker() -> Result<Broker> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let tansu = root.join("target/test-venv/bin/tansu");
        if !tansu.exists() {
            let status = Command::new("bash")
                .arg(root.join("tests/support/python-env.sh"))
                .status()?;
            if !status.success() {
                return Err("tests/support/python-env.sh failed".into());
            }
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let broker = Broker(child, port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("tansu did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }

    /// Loads the topic, runs one worker until it has read every record, stops it, and
    /// prints its figures beside the file run's.
    pub(super) fn run(count: u64, root: &Path, file_summary: &serde_json::Value) -> Result<()> {
        let broker = start_broker()?;
        let bootstrap = format!("127.0.0.1:{}", broker.1);
        let delink = env!("CARGO_BIN_EXE_delink");
        eprintln!("loading {count} observations into {TOPIC} on tansu");
        let status = Command::new(delink)
            .args(["gen", "--kafka-brokers", &bootstrap, "--topic", TOPIC])
            .args(["--partitions", "4", "--bad-fraction", "0.01"])
            .args(["--count", &count.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("delink gen failed: {status}").into());
        }
        let data = root.join(format!("data-kafka-{count}"));
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        let summary_path = root.join(format!("summary-kafka-{count}.json"));
        let mut worker = Command::new(delink)
            .args([
                "run",
                "--kafka",
                "--kafka-brokers",
                &bootstrap,
                "--topic",
                TOPIC,
            ])
            .args(["--group", "delink-bench", "--progress", "always"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--summary-json")
            .arg(&summary_path)
            .env("DELINK_KEK", KEK)
            .env("DELINK__KAFKA__SESSION_TIMEOUT_MS", "2000")
            .env("DELINK__KAFKA__HEARTBEAT_INTERVAL_MS", "400")
            .env("DELINK__KAFKA__DRAIN_TIMEOUT_MS", "1500")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = worker.stderr.take().ok_or("no stderr")?;
        let mut first_record: Option<Instant> = None;
        let mut caught_up: Option<Instant> = None;
        let mut previous = 0u64;
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            let Some(records) = line
                .strip_prefix("progress: ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|number| number.parse::<u64>().ok())
            else {
                continue;
            };
            if records > 0 && first_record.is_none() {
                // The first second's records arrived at most a second ago.
                first_record = Some(Instant::now() - Duration::from_secs(1));
            }
            if records >= count {
                // The last second's records came within the last second: count it half.
                caught_up = Some(Instant::now() - Duration::from_millis(500));
                let _ = Command::new("kill")
                    .args(["-TERM", &worker.id().to_string()])
                    .status();
                break;
            }
            previous = records;
        }
        let status = worker.wait()?;
        if !status.success() {
            return Err(
                format!("delink run --kafka failed: {status} (at {previous} records)").into(),
            );
        }
        drop(broker);
        let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary_path)?)?;
        let window = match (first_record, caught_up) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64().max(1e-3),
            _ => f64::NAN,
        };
        let bytes = summary["input_bytes"].as_f64().unwrap_or(0.0);
        let window_rate = count as f64 / window;
        let file_rate = file_summary["observations_per_second"]
            .as_f64()
            .unwrap_or(0.0);
        let peak = summary["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
        println!(
            "e2e/{count}/kafka: {:.0} obs/s, {:.1} MB/s input over the whole run ({:.2} s, group join and stop included); \
             {:.0} obs/s, {:.1} MB/s while consuming ({:.1} s); peak RSS {:.0} MiB; history {} rows, devices {} rows, quarantined {}",
            summary["observations_per_second"].as_f64().unwrap_or(0.0),
            summary["input_megabytes_per_second"]
                .as_f64()
                .unwrap_or(0.0),
            summary["elapsed_seconds"].as_f64().unwrap_or(0.0),
            window_rate,
            bytes / 1e6 / window,
            window,
            peak,
            summary["history_rows"],
            summary["devices_rows"],
            summary["quarantined"],
        );
        println!(
            "e2e/{count}/kafka vs file: {:.0} % of the file run's obs/s while consuming",
            100.0 * window_rate / file_rate.max(1e-9)
        );
        std::fs::remove_dir_all(&data)?;
        Ok(())
    }
}
