//! A few connections shared by the worker threads of one handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use delink_keystore::Result;
use postgres::{Client, Config, NoTls, Statement};

use crate::error::backend;

/// One open connection and the statements prepared on it.
pub(crate) struct Connection {
    pub(crate) client: Client,
    /// Prepared on first use, by query text; they live as long as the connection.
    statements: HashMap<&'static str, Statement>,
}

impl Connection {
    /// Returns the statement prepared for `query` on this connection, preparing it on first use.
    pub(crate) fn statement(
        &mut self,
        query: &'static str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(query) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(query)?;
        self.statements.insert(query, statement.clone());
        Ok(statement)
    }
}

/// Holds up to `slots.len()` connections, each opened on first use and
/// reopened after it broke. A caller takes any free slot, so threads missing
/// their key cache at once do not queue behind one connection.
pub(crate) struct Pool {
    config: Config,
    slots: Vec<Mutex<Option<Connection>>>,
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
    /// A connection that broke during `work` is dropped with its prepared
    /// statements, so the next call reconnects; the failed call itself
    /// reports its error (fail closed).
    pub(crate) fn with_connection<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let mut slot = self.free_slot();
        let connection = match &mut *slot {
            Some(connection) if !connection.client.is_closed() => connection,
            stale => stale.insert(Connection {
                client: self.config.connect(NoTls).map_err(backend("connecting"))?,
                statements: HashMap::new(),
            }),
        };
        let outcome = work(connection);
        if connection.client.is_closed() {
            *slot = None;
        }
        outcome
    }

    /// Runs `work` on a connection's client, as [`Pool::with_connection`] does.
    pub(crate) fn with_client<T>(&self, work: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        self.with_connection(|connection| work(&mut connection.client))
    }

    fn free_slot(&self) -> MutexGuard<'_, Option<Connection>> {
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
