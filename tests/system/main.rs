//! Black-box tests of the whole system: the local stack over HTTP with real photos, and the same
//! upload flow on the AWS adapters against the emulator. One test binary, many modules.

mod helpers;

mod api_input;
mod auth;
mod batches;
mod browser;
mod cdp;
mod crash;
mod emulator;
mod emulator_batches;
mod emulator_jobs;
mod emulator_publish;
mod galleries;
mod gallery_batches;
mod gallery_bench;
mod gallery_browser;
mod hostile;
mod jobs;
mod library;
mod presets;
mod presigned;
mod republish;
mod responses;
mod share_links;
mod upload_flow;
mod uploads;
mod walkthrough;
