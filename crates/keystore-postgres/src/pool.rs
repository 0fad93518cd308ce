//! A few connections shared by the worker threads of one handle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use delink_keystore::Result;
use postgres::{Client, Config, NoTls};

use crate::error::backend;

/// Holds up to `slots.len()` connections, each opened on first use and
/// reopened after it broke. A caller takes any free slot, so threads missing
/// the key cache at once do not queue behind one connection.
pub(crate) struct Pool {
    config: Config,
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(config: Config, size: usize) -> Self {
        Pool {
            config,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Runs `work` on a connection, connecting first when the slot has none.
    ///
    /// A connection that broke during `work` is dropped, so the next call
    /// reconnects; the failed call itself reports its error (fail closed).
    pub(crate) fn with_client<T>(&self, work: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut slot = self.free_slot();
        let client = match &mut *slot {
            Some(client) if !client.is_closed() => client,
            stale => stale.insert(self.config.connect(NoTls).map_err(backend("connecting"))?),
        };
        let outcome = work(client);
        if client.is_closed() {
            *slot = None;
        }
        outcome
    }

    fn free_slot(&self) -> MutexGuard<'_, Option<Client>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.slots.len();
        for offset in 0..count {
            match self.slots[(start + offset) % count].try_lock() {
                Ok(slot) => return slot,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.slots[start % count]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
