//! Black-box tests of the whole system: the local stack over HTTP with real photos, and the same
//! upload flow on the AWS adapters against the emulator. One test binary, many modules.

mod helpers;

mod api_input;
mod auth;
mod batches;
mod browser;
mod crash;
mod emulator;
mod emulator_batches;
mod emulator_jobs;
mod hostile;
mod jobs;
mod library;
mod presets;
mod presigned;
mod responses;
mod upload_flow;
mod uploads;
mod walkthrough;
