//! SIGTERM and SIGINT: the first asks the pipeline to stop and publish what it
//! has read, within a deadline; a second one, or the deadline, exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use delink_telemetry::Health;

/// Exit code when a second signal cut a graceful stop short.
pub(crate) const EXIT_FORCED: i32 = 3;
/// Exit code when a graceful stop did not finish within the shutdown timeout.
pub(crate) const EXIT_SHUTDOWN_TIMEOUT: i32 = 4;

/// Watches for termination signals on a thread of its own; on the first, sets `stop`
/// and turns readiness off.
pub(crate) fn watch_signals(
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered here, before the thread starts, so no signal is missed or kills the process.
    let (mut terminate, mut interrupt) = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("delink-signals".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                stop.store(true, Ordering::Relaxed);
                health.begin_shutdown();
                tracing::warn!(
                    timeout_seconds = timeout.as_secs(),
                    "stopping: publishing what was read, then exiting (a second signal exits at once)"
                );
                tokio::select! {
                    _ = terminate.recv() => {
                        tracing::error!("second signal: exiting without publishing what is in flight");
                        std::process::exit(EXIT_FORCED);
                    }
                    _ = interrupt.recv() => {
                        tracing::error!("second signal: exiting without publishing what is in flight");
                        std::process::exit(EXIT_FORCED);
                    }
                    () = tokio::time::sleep(timeout) => {
                        tracing::error!(
                            timeout_seconds = timeout.as_secs(),
                            "the stop did not finish within pipeline.shutdown_timeout_secs; exiting"
                        );
                        std::process::exit(EXIT_SHUTDOWN_TIMEOUT);
                    }
                }
            });
        })?;
    Ok(())
}
