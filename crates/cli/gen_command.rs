use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use delink_synth::{SynthConfig, write_ndjson};

use crate::kafka_load::{self, KafkaArgs};

/// Arguments of `delink gen`.
#[derive(clap::Args, Debug)]
pub(crate) struct GenArgs {
    /// Number of observations (lines) to write.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    count: u64,
    /// Seed; the same count, seed, bad fraction and fleet always give the same bytes.
    #[arg(long, short = 's', default_value_t = 1)]
    seed: u64,
    /// Fraction of lines that are broken (every kind of defect of the spec), 0..1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    bad_fraction: f64,
    /// Chargers in the generated fleet; by default one per 200 observations, at least 50.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=200_000))]
    chargers: Option<u64>,
    /// Output file; standard output when omitted.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}

pub(crate) fn run(args: GenArgs) -> anyhow::Result<()> {
    let config = SynthConfig {
        bad_fraction: args.bad_fraction,
        chargers: args.chargers.map_or(0, |n| n as usize),
        ..SynthConfig::new(args.count, args.seed)
    };
    if args.kafka.is_set() {
        return kafka_load::produce(config, &args.kafka);
    }
    let summary = match &args.output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            let summary = write_ndjson(config, &mut out)?;
            out.flush()?;
            summary
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            write_ndjson(config, &mut out)?
        }
    };
    crate::logging::status(format_args!(
        "generated {} observations ({} valid, {} broken, {:.1} MB)",
        summary.lines,
        summary.valid,
        summary.broken,
        summary.bytes as f64 / 1e6
    ));
    Ok(())
}
