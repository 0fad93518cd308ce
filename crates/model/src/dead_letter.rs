//! A second destination for quarantined records: a dead-letter topic, say.
//!
//! The quarantine stays the durable home of every rejected record; a dead-letter
//! destination gets a copy, still sealed, so that producers' owners can be alerted
//! and tooling can react without reading the data directory. Delivery is at
//! least once: the pipeline flushes the destination before it reports a segment
//! published, so a committed input position implies its dead letters are
//! delivered; a replay after a crash may send some again.

use crate::SourceError;

/// One quarantined record as a dead letter; it carries nothing in clear but the reason.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The segment the record was read in (its quarantine row's `segment`).
    pub segment: &'a str,
    /// The record's position in its source (line number or offset).
    pub position: u64,
    /// The rejection reason, from a fixed set.
    pub reason: &'a str,
    /// The schema field the rejection names, if any.
    pub field: Option<&'a str>,
    /// The record's quarantine partition, `YYYY-MM-DD`: its sealing key's day.
    pub quarantine_day: &'a str,
    /// Size of the record as read, in bytes.
    pub record_bytes: u64,
    /// The record sealed under the day's quarantine key, bound to segment and position.
    pub sealed: &'a [u8],
}

/// Where dead letters go; shared by the pipeline's threads.
pub trait DeadLetters: Send + Sync {
    /// Hands over one dead letter; may block while the destination's queue is full.
    fn send(&self, letter: &DeadLetter<'_>) -> Result<(), SourceError>;

    /// Waits until every letter sent so far is delivered; fails if any was not.
    fn flush(&self) -> Result<(), SourceError>;
}
