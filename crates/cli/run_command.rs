use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use delink_pipeline::{Pipeline, Progress, RunSummary};
use delink_telemetry::{AdminServer, Metrics};

use crate::kafka_source::{KafkaArgs, dead_letters, kafka_source};
use crate::shutdown::watch_signals;
use crate::{ConfigArgs, load_settings};

/// Arguments of `delink run`.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// NDJSON inputs, processed in order; `-` (the default) reads standard input.
    #[arg(value_name = "INPUT", default_value = "-")]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    settings: ConfigArgs,
    /// Worker threads; overrides `pipeline.workers` [default: one per core].
    #[arg(long, short = 'j')]
    workers: Option<usize>,
    /// Records per segment (the unit of publication); overrides `input.segment_records`.
    #[arg(long)]
    segment_records: Option<u64>,
    /// Serves /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9464; port 0
    /// picks a free one); overrides `admin.listen`.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Writes the final Prometheus metrics to this file (textfile-collector format).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Writes the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Progress lines on stderr: auto (every second on a terminal, every ten seconds
    /// otherwise), always (every second) or never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    progress: String,
    #[command(flatten)]
    kafka: KafkaArgs,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
    let reads_stdin = !args.kafka.kafka && args.inputs.iter().any(|input| input.as_os_str() == "-");
    if reads_stdin && std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no input: pass NDJSON files (delink run FILE…) or pipe observations to stdin; \
             `delink gen` makes a sample"
        );
    }
    for input in args
        .inputs
        .iter()
        .filter(|input| !args.kafka.kafka && input.as_os_str() != "-")
    {
        if !input.is_file() {
            anyhow::bail!("input {} is not a readable file", input.display());
        }
    }
    let (mut config, plan) = load_settings(&args.settings)?;
    if let Some(workers) = args.workers {
        config.pipeline.workers = workers;
    }
    if let Some(segment_records) = args.segment_records {
        config.input.segment_records = segment_records;
    }
    args.kafka.apply(&mut config);
    config.validate()?;
    let metrics = Arc::new(Metrics::new().context("registering metrics")?);
    if let Some(listen) = args.admin_listen {
        config.admin.listen = Some(listen);
    }
    let shutdown_timeout = Duration::from_secs(config.pipeline.shutdown_timeout_secs);
    let admin_listen = config.admin.listen;
    let kafka = args
        .kafka
        .kafka
        .then(|| kafka_source(&config, Arc::clone(&metrics)));
    let kafka_status = kafka.as_ref().map(|source| source.status());
    let dead_letters = match &kafka {
        Some(_) => dead_letters(&config, Arc::clone(&metrics))?,
        None => None,
    };
    let mut pipeline = Pipeline::open(config, plan, Arc::clone(&metrics))?;
    if let Some(destination) = dead_letters {
        pipeline = pipeline.with_dead_letters(destination);
    }
    let mut kafka = kafka.map(|source| source.with_health(pipeline.health()));
    watch_signals(pipeline.stop_flag(), pipeline.health(), shutdown_timeout)?;
    let admin = admin_listen
        .map(|listen| AdminServer::start(listen, Arc::clone(&metrics), pipeline.health()))
        .transpose()?;
    if let Some(admin) = &admin {
        crate::logging::status(format_args!(
            "admin: serving /metrics, /healthz and /readyz on http://{}",
            admin.local_addr()
        ));
    }
    // A terminal gets a line a second; a log (a Kubernetes pod, say) one every ten.
    let progress_every = match args.progress.as_str() {
        "never" => None,
        "always" => Some(1),
        _ if std::io::stderr().is_terminal() => Some(1),
        _ => Some(10),
    };
    // Rates are over the interval since the previous line: a stream worker's live throughput.
    let mut last = (std::time::Instant::now(), 0u64, 0u64);
    let mut calls = 0u64;
    let mut on_progress = |progress: &Progress| {
        calls += 1;
        let Some(every) = progress_every else {
            return;
        };
        if !calls.is_multiple_of(every) {
            return;
        }
        let seconds = last.0.elapsed().as_secs_f64().max(1e-9);
        let rate = progress.records.saturating_sub(last.1) as f64 / seconds;
        let megabytes_rate = progress.input_bytes.saturating_sub(last.2) as f64 / 1e6 / seconds;
        last = (
            std::time::Instant::now(),
            progress.records,
            progress.input_bytes,
        );
        if let Some(status) = &kafka_status {
            crate::logging::status(format_args!(
                "progress: {} observations ({rate:.0}/s, {megabytes_rate:.1} MB/s), lag {} in {} partitions, published: history {}, devices {}; quarantined {}",
                progress.records,
                status.total_lag(),
                status.assigned_partitions(),
                progress.history_rows,
                progress.devices_rows,
                progress.quarantined(),
            ));
            return;
        }
        crate::logging::status(format_args!(
            "progress: {} observations ({rate:.0}/s), {:.1} MB read, published: history {}, devices {}; quarantined {}",
            progress.records,
            progress.input_bytes as f64 / 1e6,
            progress.history_rows,
            progress.devices_rows,
            progress.quarantined(),
        ));
    };
    let summary = match kafka.as_mut() {
        Some(source) => pipeline.run(source, &mut on_progress)?,
        None => pipeline.run(&mut pipeline.file_source(args.inputs), &mut on_progress)?,
    };
    if let Some(admin) = admin {
        admin.shutdown()?;
    }
    print!("{summary}");
    if let Some(path) = &args.metrics_file {
        std::fs::write(path, metrics.render())
            .with_context(|| format!("cannot write metrics to {}", path.display()))?;
    }
    if let Some(path) = &args.summary_json {
        std::fs::write(path, summary_json(&summary).to_string())
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
    Ok(())
}

fn summary_json(summary: &RunSummary) -> serde_json::Value {
    let totals = &summary.totals;
    let rejected: serde_json::Map<String, serde_json::Value> = totals
        .rejected
        .iter()
        .map(|(reason, count)| (reason.as_str().to_owned(), (*count).into()))
        .collect();
    serde_json::json!({
        "observations_in": totals.records,
        "valid": totals.valid(),
        "duplicates": totals.duplicates,
        "history_rows": totals.history_rows,
        "devices_rows": totals.devices_rows,
        "quarantined": totals.quarantined(),
        "quarantined_by_reason": rejected,
        "unknown_fields": totals.unknown_fields,
        "values_withheld": totals.withheld,
        "blank_lines": totals.blank_lines,
        "files_published": totals.files_published,
        "segments_published": totals.segments_published,
        "input_bytes": totals.input_bytes,
        "elapsed_seconds": summary.elapsed.as_secs_f64(),
        "observations_per_second": summary.records_per_second(),
        "input_megabytes_per_second": summary.megabytes_per_second(),
        "peak_rss_bytes": summary.peak_rss_bytes,
        "profile_levels": summary.profile_levels,
        "profile_rows_below_k": summary.profile_rows_below_k,
        "risk": summary.risk.as_ref().map(|risk| {
            let mut report = serde_json::to_value(risk).unwrap_or_default();
            report["failures"] = risk.failures().into();
            report
        }),
    })
}
