//! Log output: human-readable text or one JSON object per line, on stderr.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Text for people; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`), for log collectors.
    Json,
}

/// Installs the global subscriber; the level comes from `RUST_LOG` (default `info`).
pub(crate) fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed) is dropped, never
        // reported on that same stderr, which would panic.
        .log_internal_errors(false)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

static FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Writes a line for the operator (progress, outcomes) to stderr: as is in text
/// format, as an `info` event in JSON format, so every stderr line parses.
pub(crate) fn status(line: std::fmt::Arguments<'_>) {
    match FORMAT.get() {
        Some(LogFormat::Json) => tracing::info!(target: "delink", "{line}"),
        _ => to_stderr(format_args!("{line}")),
    }
}

/// Writes a line to stderr, ignoring a stderr that is gone (a closed pipe, a
/// log collector that died): a worker finishes its work without its status
/// lines rather than die in the middle of a seal.
fn to_stderr(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Reports the error that ends the command, in the configured format.
pub(crate) fn fatal(error: &anyhow::Error) {
    match FORMAT.get() {
        Some(LogFormat::Json) => tracing::error!(target: "delink", "{error:#}"),
        _ => to_stderr(format_args!("error: {error:#}")),
    }
}
