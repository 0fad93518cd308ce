//! The tables of the store, created on open.

use postgres::Client;

/// Serialises schema creation between processes opening a new store at once
/// (`CREATE TABLE IF NOT EXISTS` alone can still collide on the type catalogue).
const SCHEMA_LOCK: i64 = 0x0064_656c_696e_6b01;

/// The layout version; a store made by another layout is refused on open.
pub(crate) const FORMAT: i32 = 3;

/// The tables. `grp` is the tag of the key's group (a charger's epochs and
/// components share it); the index key's `serial` grows with each rotation,
/// which gives every key new tags. `u32` values (epochs, KEK versions) are kept as `bigint` so
/// every value round-trips without a sign trick; `record` only names a row in
/// errors, so that a failed unwrap can be traced without showing its tag.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS delink_keys (
    tag bytea PRIMARY KEY,
    grp bytea NOT NULL,
    scope smallint NOT NULL,
    epoch bigint NOT NULL,
    kek_version bigint NOT NULL,
    wrapped bytea NOT NULL,
    record bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX IF NOT EXISTS delink_keys_grp ON delink_keys (grp);
CREATE TABLE IF NOT EXISTS delink_index_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    format integer NOT NULL,
    store_id bytea NOT NULL,
    serial bigint NOT NULL,
    kek_version bigint NOT NULL,
    wrapped bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS delink_generation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    value bigint NOT NULL
);
INSERT INTO delink_generation (value) VALUES (0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS delink_journal (
    seq bigserial PRIMARY KEY,
    event text NOT NULL
);
";

/// Creates the tables when absent; idempotent and safe to race.
pub(crate) fn ensure(client: &mut Client) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    transaction.batch_execute(TABLES)?;
    transaction.commit()
}
