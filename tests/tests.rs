//! End-to-end tests: the real `delink` binary on generated input, output read back.
//!
//! One test binary (see `Cargo.toml`), one module per topic.

mod admin_http;
mod broker;
mod util;

mod cli;
mod config_check;
mod crash;
mod delinking;
mod deploy;
mod erasure;
mod file_layout;
mod identity;
mod kafka;
mod kafka_load;
mod leak;
mod monitoring;
mod object_store;
mod pipeline_e2e;
mod postgres_workers;
mod reader;
mod risk;
mod shutdown;
