use std::path::PathBuf;

/// Explains a key-store failure. Every variant is fatal for the pipeline:
/// without trustworthy keys nothing may be written (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A file operation failed.
    #[error("key store {action} failed at {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A command that never creates a store found none.
    #[error(
        "no key store at {location}: nothing was ever processed with this configuration (check --data-dir or keystore.postgres_url); only `delink run` or `delink keys init` creates one"
    )]
    StoreMissing {
        /// The directory or database looked at (no password).
        location: String,
    },
    /// Another process holds the store.
    #[error(
        "key store at {path} is in use by another delink process; stop it or use another data directory"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The store holds keys but no KEK was provided.
    #[error(
        "key store at {path} holds keys but no KEK was found; set DELINK_KEK or point keystore.kek_file at the KEK it was created with"
    )]
    KekMissing {
        /// The store directory.
        path: PathBuf,
    },
    /// The KEK text is malformed.
    #[error("KEK is malformed: {reason}")]
    KekMalformed {
        /// What is wrong with it (never the secret itself).
        reason: &'static str,
    },
    /// A wrapped key was made under a KEK version that is not available.
    #[error(
        "key store record {record} is wrapped under KEK version {version}, which is not loaded"
    )]
    KekVersionMissing {
        /// The record number.
        record: u64,
        /// The KEK version it names.
        version: u32,
    },
    /// A wrapped key failed authentication: wrong KEK or a tampered store.
    #[error(
        "key store record {record} fails authentication; the KEK does not match this store or the store was altered"
    )]
    Unwrap {
        /// The record number.
        record: u64,
    },
    /// The store file is not a delink key store.
    #[error("{path} is not a delink key store ({reason})")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The keyring cannot be changed where it comes from.
    #[error(
        "{action} needs a writable keyring file, but the KEK comes from {source_name}; point keystore.kek_file at the keyring file (and unset DELINK_KEK), or update the secret by hand"
    )]
    KekReadOnly {
        /// What was attempted.
        action: &'static str,
        /// Where the keyring comes from.
        source_name: String,
    },
    /// The shared key-store backend failed (connection, query or transaction).
    #[error("key store backend failed while {action}: {detail}")]
    Backend {
        /// What was being done.
        action: &'static str,
        /// The backend's error class (never a value from a query).
        detail: String,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// Sealing or opening a payload failed.
    #[error("payload authentication failed; wrong key or altered data")]
    Seal,
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, KeyStoreError>;
