//! A [`KeyStore`](delink_keystore::KeyStore) kept in PostgreSQL, so that
//! several pipeline processes share one set of entity keys.
//!
//! It sits where the embedded store does (decode → **keys** → transform) and
//! passes the same conformance suite. Rows hold what the embedded store's
//! file holds: a lookup tag (never the identifier), the scope, the epoch, the
//! KEK version and the wrapped key, bound to scope, epoch and tag by the AEAD.
//!
//! The design decision to know: the database is the arbiter. A new key is
//! inserted with `ON CONFLICT (tag) DO NOTHING` and committed before it is
//! handed out; a handle that loses the race reads and uses the winner's key,
//! so every process agrees on one key per entity, and
//! [`KeyStore::sync`](delink_keystore::KeyStore::sync) has nothing left to do.
//! The store caches no key: every lookup is a query on a statement prepared
//! once per pooled connection, and the only unwrapped keys in a process are
//! the ones its caller caches (the pipeline's shared key cache). Erasures bump
//! a generation counter row that
//! [`KeyStore::refresh`](delink_keystore::KeyStore::refresh) reads, so those
//! callers know when to drop their caches.
//!
//! Tables (created on open under an advisory lock): `delink_keys`,
//! `delink_index_key` (one row: the index key wrapped under the KEK),
//! `delink_generation` (one row) and `delink_journal` (JSON lines).
//!
//! Erasure deletes the row and vacuums the table, but PostgreSQL never
//! overwrites in place: the wrapped key may survive in free page space, WAL
//! and backups until they are recycled. It is wrapped, so rotating the KEK
//! and destroying the old version is what completes an erasure, as for the
//! embedded store's backups.
//!
//! Follow-ups: connections are plain TCP (`NoTls`); a deployment across
//! hosts needs TLS (`postgres-native-tls` or `postgres-openssl`) before it
//! carries wrapped keys over a network. Errors carry a SQLSTATE code or a
//! fixed phrase, never the server's message, which may quote a row.

#![deny(missing_docs)]

mod error;
mod pool;
mod schema;
mod store;

pub use store::PostgresKeyStore;
