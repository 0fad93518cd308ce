//! Conformance-suite backends on the shared throwaway PostgreSQL cluster.

use std::path::Path;

use delink_keystore::testkit::Backend;
use delink_keystore::{KekSource, KeyStore};
use delink_keystore_postgres::PostgresKeyStore;
pub(crate) use delink_test_support::postgres::{cluster, connect};

/// A fresh, empty store for one conformance check.
pub(crate) struct PostgresBackend {
    /// The store's database.
    pub(crate) url: String,
    scratch: tempfile::TempDir,
}

impl Backend for PostgresBackend {
    fn open(&self, keyring: &KekSource) -> delink_keystore::Result<Box<dyn KeyStore>> {
        Ok(Box::new(PostgresKeyStore::open(&self.url, keyring)?))
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }
}

/// Makes a fresh store (a new database) on the shared cluster.
pub(crate) fn fresh_store() -> PostgresBackend {
    PostgresBackend {
        url: cluster().fresh_database(None),
        scratch: tempfile::tempdir().expect("scratch dir"),
    }
}
