//! Throwaway external services for tests and benchmarks, started on loopback and removed
//! when dropped: what the server's non-default backends need to be exercised for real.
//!
//! A test that needs a service it cannot start fails under `CI=true` and otherwise skips
//! with a visible `SKIPPED:` line, like the rest of the suite.

pub mod postgres;
pub mod s3;
