//! `delink config check`: is this deployment's configuration sound, and can it
//! reach everything it names? Connects, reads, and changes nothing.

use std::time::Duration;

use anyhow::bail;
use delink_keystore::KeyStoreError;

use crate::{ConfigArgs, load_settings, parse_duration};

/// Arguments of `delink config`.
#[derive(clap::Args, Debug)]
pub(crate) struct ConfigCommandArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ConfigCommand {
    /// Validates configuration and policy, then connects to the output store, the key
    /// store (and the Kafka brokers with --kafka) without side effects; exits 1 naming
    /// each failure.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// Also check the Kafka source that `delink run --kafka` would consume: the brokers
    /// answer and know every `kafka.topics` topic (and the dead-letter topic).
    #[arg(long)]
    kafka: bool,
    /// How long to wait for the brokers and the output store.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

pub(crate) fn run(args: ConfigCommandArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    // Configuration and policy errors end the check: nothing else can be trusted.
    let (config, plan) = load_settings(&args.settings)?;
    let source = |path: &Option<std::path::PathBuf>| {
        path.as_ref()
            .map_or("built-in".to_owned(), |path| path.display().to_string())
    };
    println!("ok      configuration ({})", source(&args.settings.config));
    println!(
        "ok      policy ({}, digest {})",
        source(&config.policy_file),
        &plan.digest[..16]
    );
    let mut failures = 0;
    let mut report = |name: &str, outcome: anyhow::Result<String>| match outcome {
        Ok(detail) => println!("ok      {name}: {detail}"),
        Err(error) => {
            failures += 1;
            println!("FAILED  {name}: {error:#}");
        }
    };
    report("output store", output_store(&config, args.timeout));
    report("key store", key_store(&config));
    if args.kafka {
        report("kafka", kafka(&config, args.timeout));
    }
    if failures > 0 {
        bail!("{failures} check(s) failed; see above");
    }
    Ok(())
}

/// Lists the top of the outputs (`output.location`, else the data directory).
fn output_store(config: &delink_config::Config, timeout: Duration) -> anyhow::Result<String> {
    let outputs = delink_datadir::OutputStore::for_config(config)?;
    let found = outputs.probe(timeout).map_err(|error| {
        error.context(format!(
            "the outputs at {} cannot be listed; check output.location and the store's credentials (AWS_*, GOOGLE_*, AZURE_*)",
            outputs.describe("")
        ))
    })?;
    let holds = if found.is_empty() {
        "nothing published yet".to_owned()
    } else {
        found.join(", ")
    };
    Ok(format!("{} reachable ({holds})", outputs.describe("")))
}

/// Opens the existing key store (unwrapping its index key with the KEK) and closes it.
fn key_store(config: &delink_config::Config) -> anyhow::Result<String> {
    let backend = config.keystore.backend.as_str();
    match delink_pipeline::open_key_store(config, delink_pipeline::StoreAccess::Existing) {
        Ok(_) => Ok(format!("{backend} store opened with the configured KEK")),
        Err(error) => match error.downcast_ref::<KeyStoreError>() {
            Some(KeyStoreError::StoreMissing { .. }) => Ok(format!(
                "no {backend} store yet; the first `delink run` creates it (and its KEK when none is configured)"
            )),
            Some(KeyStoreError::Locked { .. }) => Ok(format!(
                "{backend} store in use by a running process; not opened"
            )),
            _ => Err(error),
        },
    }
}

/// Fetches the brokers' metadata and finds every configured topic in it.
fn kafka(config: &delink_config::Config, timeout: Duration) -> anyhow::Result<String> {
    let options = crate::kafka_source::kafka_options(config);
    let mut topics = config.kafka.topics.clone();
    topics.extend(config.kafka.dead_letter_topic.clone());
    let probes = delink_source_kafka::probe_topics(&options, &topics, timeout).map_err(|error| {
        anyhow::anyhow!(
            "the brokers at {} did not answer within {timeout:?} ({:#}); check kafka.brokers and kafka.properties",
            config.kafka.brokers,
            anyhow::Error::from(error)
        )
    })?;
    let mut found = Vec::new();
    for probe in probes {
        match probe.partitions {
            Some(partitions) => found.push(format!("{} ({partitions} partitions)", probe.topic)),
            None => bail!(
                "the brokers at {} know no topic {}; create it or fix kafka.topics / kafka.dead_letter_topic",
                config.kafka.brokers,
                probe.topic
            ),
        }
    }
    Ok(format!("{}: {}", config.kafka.brokers, found.join(", ")))
}
