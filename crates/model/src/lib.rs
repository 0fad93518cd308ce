//! Observation types shared by every stage of delink: the typed charger
//! observation, the catalogue of input fields with their privacy class, the
//! key scopes of the privacy model, and bounded rejection reasons.
//!
//! This crate sits at the bottom of the dependency graph and does no IO. The
//! design decision to know: every input field is an enum variant
//! ([`Field`]) with a fixed [`FieldClass`], so the policy can be checked
//! against the catalogue at startup and nothing outside the catalogue can
//! ever be copied to an output.

/// The schema string of the contract this build understands.
pub const SCHEMA_V1: &str = "charger.observation.v1";

mod dataset;
mod dead_letter;
mod field;
mod observation;
mod prehashed;
mod raw_batch;
mod rejection;
mod scope;
mod source;

pub use dataset::Dataset;
pub use dead_letter::{DeadLetter, DeadLetters};
pub use field::{Field, FieldClass, ValueType};
pub use observation::{
    Charger, Component, Installation, Kind, Meter, Network, Observation, Operator, Session, Status,
    SubjectId, User,
};
pub use prehashed::{BuildPrehashedHasher, PrehashedHasher};
pub use raw_batch::{LaneId, RawBatch, RawRecord, SegmentId};
pub use rejection::{Rejection, RejectionReason};
pub use scope::Scope;
pub use source::{
    Checkpoint, PipelineStopped, Published, SegmentRange, Source, SourceContext, SourceError,
};
