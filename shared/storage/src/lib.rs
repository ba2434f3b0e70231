//! Adapters for the domain's ports: `local` (files, SQLite, in-process queues, a recording event
//! bus) and `aws` (S3, DynamoDB, SQS, EventBridge, Lambda event source mappings), and the
//! conformance suites both must pass (feature `conformance`, for tests).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(any(feature = "local", feature = "aws"))]
mod batches;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(any(feature = "local", feature = "aws"))]
mod jobs;
#[cfg(feature = "local")]
pub mod local;
#[cfg(any(feature = "local", feature = "aws"))]
mod shares;
