//! Liveness and readiness of a worker, set by the pipeline and read by the probes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Tells the admin server whether the worker is alive and ready for work.
///
/// The pipeline sets the flags from its own threads; `/healthz` and `/readyz`
/// read them. Each flag stands on its own, so relaxed atomics suffice: a probe
/// that sees one change a moment before another answers correctly either way.
///
/// Reasons are `&'static str` from a fixed set (the associated constants and
/// the literals passed to [`Health::set_failed`]), so a probe's body can never
/// carry input data.
#[derive(Debug, Default)]
pub struct Health {
    key_store_open: AtomicBool,
    source_ready: AtomicBool,
    draining: AtomicBool,
    shutting_down: AtomicBool,
    failure: OnceLock<&'static str>,
}

impl Health {
    /// Why a worker that has failed is not ready (its liveness tells the failure).
    pub const FAILED: &'static str = "failed";
    /// Why a worker that is shutting down is not ready.
    pub const SHUTTING_DOWN: &'static str = "shutting down";
    /// Why a worker whose key store is not open is not ready.
    pub const KEY_STORE_NOT_OPEN: &'static str = "key store not open";
    /// Why a worker whose source is not ready (a Kafka consumer not yet in its
    /// group, a file source not yet reading) is not ready.
    pub const SOURCE_NOT_READY: &'static str = "source not ready";
    /// Why a worker draining a revoked partition is not ready.
    pub const DRAINING: &'static str = "draining";

    /// Creates the state of a worker that has just started: alive, not ready.
    pub fn new() -> Self {
        Health::default()
    }

    /// Records whether the key store is open.
    pub fn set_key_store_open(&self, open: bool) {
        self.key_store_open.store(open, Ordering::Relaxed);
    }

    /// Records whether the source is ready: the Kafka consumer is in its
    /// group (with or without partitions), or the file source is reading.
    pub fn set_source_ready(&self, ready: bool) {
        self.source_ready.store(ready, Ordering::Relaxed);
    }

    /// Records whether the worker is draining a revoked partition.
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Records that the worker is shutting down. Nothing clears it, so a
    /// drain that ends during shutdown (`set_draining(false)`) does not make
    /// the worker ready again.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Records a fatal error; the worker stays not live and not ready. Pass a
    /// literal such as `"key store failed"`, never a message built from an
    /// error or a record. The first reason is kept.
    pub fn set_failed(&self, reason: &'static str) {
        // A later failure is usually a consequence of the first one.
        let _ = self.failure.set(reason);
    }

    /// Tells whether the worker is draining a partition or shutting down
    /// (what `delink_draining` reports).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.shutting_down.load(Ordering::Relaxed)
    }

    /// Answers the liveness probe: `Ok` unless a fatal error was recorded,
    /// in which case it returns that error's reason.
    pub fn liveness(&self) -> Result<(), &'static str> {
        match self.failure.get() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Answers the readiness probe: `Ok` when the key store is open, the
    /// source is ready, and the worker is neither failed, shutting down nor
    /// draining. Otherwise returns the first reason, checked in that order:
    /// [`Health::FAILED`], [`Health::SHUTTING_DOWN`],
    /// [`Health::KEY_STORE_NOT_OPEN`], [`Health::SOURCE_NOT_READY`],
    /// [`Health::DRAINING`].
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.failure.get().is_some() {
            return Err(Health::FAILED);
        }
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(Health::SHUTTING_DOWN);
        }
        if !self.key_store_open.load(Ordering::Relaxed) {
            return Err(Health::KEY_STORE_NOT_OPEN);
        }
        if !self.source_ready.load(Ordering::Relaxed) {
            return Err(Health::SOURCE_NOT_READY);
        }
        if self.draining.load(Ordering::Relaxed) {
            return Err(Health::DRAINING);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    #[test]
    fn a_new_worker_is_alive_but_not_ready() {
        let health = Health::new();
        assert_eq!(health.liveness(), Ok(()));
        assert_eq!(health.readiness(), Err(Health::KEY_STORE_NOT_OPEN));
        assert!(!health.is_draining());
    }

    #[test]
    fn readiness_follows_key_store_source_and_draining() {
        let health = Health::new();
        health.set_source_ready(true);
        assert_eq!(health.readiness(), Err(Health::KEY_STORE_NOT_OPEN));
        health.set_key_store_open(true);
        assert_eq!(health.readiness(), Ok(()));
        health.set_draining(true);
        assert_eq!(health.readiness(), Err(Health::DRAINING));
        assert!(health.is_draining());
        health.set_draining(false);
        assert_eq!(health.readiness(), Ok(()));
        health.set_source_ready(false);
        assert_eq!(health.readiness(), Err(Health::SOURCE_NOT_READY));
        health.set_source_ready(true);
        health.set_key_store_open(false);
        assert_eq!(health.readiness(), Err(Health::KEY_STORE_NOT_OPEN));
        assert_eq!(health.liveness(), Ok(()));
    }

    #[test]
    fn shutdown_outlasts_a_drain_that_ends() {
        let health = Health::new();
        health.set_key_store_open(true);
        health.set_source_ready(true);
        health.begin_shutdown();
        health.set_draining(true);
        health.set_draining(false);
        assert_eq!(health.readiness(), Err(Health::SHUTTING_DOWN));
        assert!(health.is_draining());
        assert_eq!(health.liveness(), Ok(()));
    }

    #[test]
    fn a_failure_ends_liveness_and_readiness_and_keeps_its_first_reason() {
        let health = Health::new();
        health.set_key_store_open(true);
        health.set_source_ready(true);
        health.set_failed("key store failed");
        health.set_failed("sink failed");
        assert_eq!(health.liveness(), Err("key store failed"));
        assert_eq!(health.readiness(), Err(Health::FAILED));
    }

    #[test]
    fn flags_set_on_other_threads_are_seen() {
        let health = Arc::new(Health::new());
        let setters: Vec<_> = [0, 1]
            .into_iter()
            .map(|index| {
                let health = Arc::clone(&health);
                std::thread::spawn(move || {
                    if index == 0 {
                        health.set_key_store_open(true);
                    } else {
                        health.set_source_ready(true);
                    }
                })
            })
            .collect();
        for setter in setters {
            setter.join().expect("setter");
        }
        assert_eq!(health.readiness(), Ok(()));
    }
}
