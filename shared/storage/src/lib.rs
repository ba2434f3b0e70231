//! Adapters for the domain's ports: `local` (files, SQLite, in-process queues) and `aws` (S3,
//! DynamoDB, SQS), and the conformance suites both must pass.

#[cfg(feature = "aws")]
pub mod aws;
pub mod conformance;
#[cfg(feature = "local")]
pub mod local;
