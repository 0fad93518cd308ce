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
//! until it has read them all, and prints its figures next to the file run's.
//!
//! `cargo bench --bench e2e -- 1000000 --duckdb 3` runs, instead of the one file run,
//! 3 alternating pairs of the file run and the same job in DuckDB
//! (`benches/duckdb_reference.py`, with the DuckDB of `target/test-venv`) on the
//! same input, and prints each pair's wall times, CPU per observation and peak
//! RSS, then the median ratio of delink's wall time to DuckDB's. delink runs the
//! same job there: without the privacy-risk assessment of the whole output that
//! `delink run` makes afterwards (`delink risk` does that on its own).
//!
//! Both runs are measured alike: over the whole run (start-up, the file's content
//! digest or the group join, and the last publication included) and at steady
//! state, the slope of the once-a-second progress lines between the first line
//! with records and the last line before the end.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use delink_synth::{SynthConfig, write_ndjson};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const KEK: &str = "1:0909090909090909090909090909090909090909090909090909090909090909";

fn main() -> Result<()> {
    let (mut count, mut with_kafka, mut duckdb_pairs) = (1_000_000, false, None);
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kafka" => with_kafka = true,
            "--duckdb" => {
                let pairs = args.next_if(|next| next.parse::<usize>().is_ok());
                duckdb_pairs = Some(pairs.map_or(Ok(3), |pairs| pairs.parse())?);
            }
            other => {
                if let Ok(number) = other.replace('_', "").parse::<u64>() {
                    count = number;
                }
            }
        }
    }
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
    if let Some(pairs) = duckdb_pairs {
        return against_duckdb(&root, &input, count, pairs);
    }
    let mut command = delink_run(&root, "file", count)?;
    command.arg(&input);
    let file = measure(command, &root, "file", count, false)?;
    file.print(count, "file");
    if with_kafka {
        let broker = kafka::Broker::start()?;
        broker.load(count)?;
        let command = broker.worker(delink_run(&root, "kafka", count)?);
        let broker_before = broker.cpu_seconds()?;
        let kafka = measure(command, &root, "kafka", count, true)?;
        let broker_cpu = broker.cpu_seconds()? - broker_before;
        kafka.print(count, "kafka");
        for rows in ["history_rows", "devices_rows", "quarantined"] {
            if kafka.summary[rows] != file.summary[rows] {
                return Err(format!(
                    "the Kafka run published {} {rows} where the file run published {}: \
                     it stopped before publishing all it read, so the figures do not compare",
                    kafka.summary[rows], file.summary[rows]
                )
                .into());
            }
        }
        println!(
            "e2e/{count}/kafka: the broker on the same cores took {:.2} µs CPU per observation ({broker_cpu:.1} s)",
            broker_cpu * 1e6 / count.max(1) as f64
        );
        println!(
            "e2e/{count}/kafka vs file: {:.0} % of the file run's obs/s at steady state, {:.0} % over the whole run",
            100.0 * kafka.steady_rate / file.steady_rate.max(1e-9),
            100.0 * kafka.whole_rate / file.whole_rate.max(1e-9),
        );
    }
    Ok(())
}

/// Runs `pairs` alternating pairs of the file run and the DuckDB reference job.
fn against_duckdb(root: &Path, input: &Path, count: u64, pairs: usize) -> Result<()> {
    let python = test_venv()?.join("bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_reference.py");
    let mut ratios = Vec::new();
    for pair in 1..=pairs {
        let mut command = delink_run(root, "file", count)?;
        // The same job as the reference: the privacy-risk assessment that `delink run`
        // makes of the whole output afterwards is left to `delink risk`.
        command
            .arg(input)
            .env("DELINK__RISK__ASSESS_AFTER_RUN", "false");
        let delink = measure(command, root, "file", count, false)?;
        let out = root.join(format!("duckdb-{count}"));
        if out.exists() {
            std::fs::remove_dir_all(&out)?;
        }
        let cpu_before = reaped_children_cpu_seconds()?;
        let started = Instant::now();
        let output = Command::new(&python)
            .arg(&script)
            .arg(input)
            .arg(&out)
            .stderr(Stdio::inherit())
            .output()?;
        let duckdb_wall = started.elapsed().as_secs_f64();
        let duckdb_cpu = reaped_children_cpu_seconds()? - cpu_before;
        if !output.status.success() {
            return Err(format!("the DuckDB reference failed: {}", output.status).into());
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        std::fs::remove_dir_all(&out)?;
        let ratio = delink.wall_seconds / duckdb_wall;
        ratios.push(ratio);
        println!(
            "e2e/{count}/vs-duckdb pair {pair}: delink {:.2} s wall ({:.0} obs/s), {:.2} µs CPU per observation, peak RSS {:.0} MiB, history {} devices {}; \
             DuckDB {duckdb_wall:.2} s wall, {:.2} µs CPU per observation, peak RSS {:.0} MiB, history {} devices {}; delink takes {ratio:.2} of DuckDB's wall time",
            delink.wall_seconds,
            count as f64 / delink.wall_seconds.max(1e-9),
            delink.cpu_us_per_obs,
            delink.peak_mib,
            delink.summary["history_rows"],
            delink.summary["devices_rows"],
            duckdb_cpu * 1e6 / count.max(1) as f64,
            report["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0),
            report["history_rows"],
            report["devices_rows"],
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "e2e/{count}/vs-duckdb: median of {pairs} pairs, delink's wall time / DuckDB's = {:.2}",
        ratios[ratios.len() / 2]
    );
    Ok(())
}

/// The test tools' virtual environment (tansu, DuckDB), set up when missing.
fn test_venv() -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/test-venv");
    if !venv.join("bin/tansu").exists() || !venv.join("bin/python").exists() {
        let status = Command::new("bash")
            .arg(root.join("tests/support/python-env.sh"))
            .status()?;
        if !status.success() {
            return Err("tests/support/python-env.sh failed".into());
        }
    }
    Ok(venv)
}

/// `delink run` into a fresh data directory, with a summary and a progress line a second.
fn delink_run(root: &Path, name: &str, count: u64) -> Result<Command> {
    let data = root.join(format!("data-{name}-{count}"));
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_delink"));
    command
        .arg("run")
        .arg("--data-dir")
        .arg(&data)
        .arg("--summary-json")
        .arg(root.join(format!("summary-{name}-{count}.json")))
        .args(["--progress", "always"])
        .env("DELINK_KEK", KEK)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Ok(command)
}

/// What one run showed.
struct Figures {
    /// Wall time of the process, as the harness saw it.
    wall_seconds: f64,
    whole_rate: f64,
    whole_megabytes: f64,
    seconds: f64,
    steady_rate: f64,
    steady_megabytes: f64,
    peak_mib: f64,
    /// CPU time of the delink process (user + system) per observation.
    cpu_us_per_obs: f64,
    summary: serde_json::Value,
}

impl Figures {
    fn print(&self, count: u64, name: &str) {
        let summary = &self.summary;
        println!(
            "e2e/{count}/{name}: {:.0} obs/s, {:.1} MB/s input over the whole run ({:.2} s); \
             {:.0} obs/s, {:.1} MB/s at steady state; peak RSS {:.0} MiB; \
             {:.2} µs CPU per observation; history {} rows, devices {} rows, quarantined {}",
            self.whole_rate,
            self.whole_megabytes,
            self.seconds,
            self.steady_rate,
            self.steady_megabytes,
            self.peak_mib,
            self.cpu_us_per_obs,
            summary["history_rows"],
            summary["devices_rows"],
            summary["quarantined"],
        );
    }
}

/// Runs `command`, reading its progress lines; a stream worker (`stop_at_count`) is
/// sent SIGTERM once it has read `count` records.
fn measure(
    mut command: Command,
    root: &Path,
    name: &str,
    count: u64,
    stop_at_count: bool,
) -> Result<Figures> {
    let cpu_before = reaped_children_cpu_seconds()?;
    let started = Instant::now();
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut stopped = false;
    // Read to the end, also after the SIGTERM: the worker's shutdown (which
    // seals what it holds) goes on logging, and its stderr must stay open.
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        let Some(records) = line
            .strip_prefix("progress: ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|number| number.parse::<u64>().ok())
        else {
            // Warnings and errors, but not the expected quarantine of the
            // input's broken lines.
            let quarantined = line.contains("record quarantined");
            if (line.contains("WARN") || line.contains("ERROR")) && !quarantined {
                eprintln!("{name}: {line}");
            }
            continue;
        };
        if stopped {
            continue;
        }
        samples.push((started.elapsed().as_secs_f64(), records));
        if stop_at_count && records >= count {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            stopped = true;
        }
    }
    let status = child.wait()?;
    let wall_seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("delink run ({name}) failed: {status}").into());
    }
    let cpu_seconds = reaped_children_cpu_seconds()? - cpu_before;
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root.join(format!("summary-{name}-{count}.json")),
    )?)?;
    std::fs::remove_dir_all(root.join(format!("data-{name}-{count}")))?;
    let bytes_per_record = summary["input_bytes"].as_f64().unwrap_or(0.0) / count.max(1) as f64;
    let inside: Vec<(f64, u64)> = samples
        .iter()
        .copied()
        .filter(|(_, records)| *records > 0 && *records < count)
        .collect();
    let steady_rate = match (inside.first(), inside.last()) {
        (Some(first), Some(last)) if last.0 > first.0 => {
            (last.1 - first.1) as f64 / (last.0 - first.0)
        }
        _ => f64::NAN,
    };
    // A stream worker's whole run ends when it has read everything, not at its stop.
    let seconds = match samples.iter().find(|(_, records)| *records >= count) {
        Some((at, _)) if stop_at_count => *at,
        _ => summary["elapsed_seconds"].as_f64().unwrap_or(f64::NAN),
    };
    let whole_rate = count as f64 / seconds;
    Ok(Figures {
        wall_seconds,
        whole_rate,
        whole_megabytes: whole_rate * bytes_per_record / 1e6,
        seconds,
        steady_rate,
        steady_megabytes: steady_rate * bytes_per_record / 1e6,
        peak_mib: summary["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0),
        cpu_us_per_obs: cpu_seconds * 1e6 / count.max(1) as f64,
        summary,
    })
}

/// User + system seconds of a process's `/proc/<pid>/stat`, from field `first` on
/// (14: its own times, 16: those of its reaped children); Linux counts 100 ticks a second.
fn cpu_seconds(pid: &str, first: usize) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("unreadable /proc stat")?
        .1
        .split_whitespace()
        .collect();
    let field = |number: usize| -> Result<f64> { Ok(fields[number - 3].parse::<f64>()?) };
    Ok((field(first)? + field(first + 1)?) / 100.0)
}

/// CPU seconds of every child this harness has waited for.
fn reaped_children_cpu_seconds() -> Result<f64> {
    cpu_seconds("self", 16)
}

/// The Kafka-input run of the harness: a local tansu and a loaded topic.
mod kafka {
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::Result;

    const TOPIC: &str = "bench-observations";

    /// A tansu broker on a free loopback port, killed on drop.
    pub(super) struct Broker(Child, u16);

    impl Drop for Broker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    impl Broker {
        pub(super) fn start() -> Result<Broker> {
            let tansu = super::test_venv()?.join("bin/tansu");
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let url = format!("tcp://127.0.0.1:{port}");
            let child = Command::new(tansu)
                .args(["broker", "--listener-url", &url])
                .args(["--advertised-listener-url", &url])
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

        /// The broker's own CPU seconds so far.
        pub(super) fn cpu_seconds(&self) -> Result<f64> {
            super::cpu_seconds(&self.0.id().to_string(), 14)
        }

        fn bootstrap(&self) -> String {
            format!("127.0.0.1:{}", self.1)
        }

        /// Produces the same N observations as the file run into a 4-partition topic.
        pub(super) fn load(&self, count: u64) -> Result<()> {
            eprintln!("loading {count} observations into {TOPIC} on tansu");
            let status = Command::new(env!("CARGO_BIN_EXE_delink"))
                .args([
                    "gen",
                    "--kafka-brokers",
                    &self.bootstrap(),
                    "--topic",
                    TOPIC,
                ])
                .args(["--partitions", "4", "--bad-fraction", "0.01"])
                .args(["--count", &count.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("delink gen failed: {status}").into())
            }
        }

        /// Makes `command` a worker of a fresh group on the topic.
        pub(super) fn worker(&self, mut command: Command) -> Command {
            command
                .args(["--kafka", "--kafka-brokers", &self.bootstrap()])
                .args(["--topic", TOPIC, "--group", "delink-bench"])
                // tansu makes a new group's first member wait about half a
                // session (counted in the whole run, not at steady state); the
                // drain, below the session, must cover sealing every
                // partition's open segment at the stop.
                .env("DELINK__KAFKA__SESSION_TIMEOUT_MS", "12000")
                .env("DELINK__KAFKA__HEARTBEAT_INTERVAL_MS", "1000")
                .env("DELINK__KAFKA__DRAIN_TIMEOUT_MS", "10000");
            command
        }
    }
}
