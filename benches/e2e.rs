//! End-to-end harness: generates N observations (1% broken), runs the release
//! `delink run` on them in a fresh data directory, and prints obs/s, input MB/s
//! and peak RSS as measured by the run itself.
//!
//! `cargo bench --bench e2e -- 1000000` (N defaults to 1,000,000; the input is
//! cached under target/bench-data/).

use std::path::PathBuf;
use std::process::Command;

use delink_synth::{SynthConfig, write_ndjson};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count = std::env::args()
        .skip(1)
        .find_map(|arg| arg.replace('_', "").parse::<u64>().ok())
        .unwrap_or(1_000_000);
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
    Ok(())
}
