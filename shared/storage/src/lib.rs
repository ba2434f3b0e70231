//! Adapters for the domain's ports: `local` (files, SQLite, in-process queues) and `aws` (S3,
//! DynamoDB, SQS), and the conformance suites both must pass (feature `conformance`, for tests).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "local")]
pub mod local;
