//! Fixtures shared by the test suites of several crates: a throwaway
//! PostgreSQL server on loopback. Never a dependency of production code.

pub mod postgres;
