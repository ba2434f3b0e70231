//! The batch operations' HTTP routes: submitting a batch (one operation over up to 10,000 media,
//! explicit or selected by a filter; with an optional `Idempotency-Key`), reading it (with its
//! ETag), listing batches, reading its items' outcomes, cancelling and rolling it back; per
//! operation statistics for admins. Handlers parse, authorize, call `phoenix_domain::batches` and
//! render; errors map once ([`BatchApiError`]), and everything HTTP-generic comes from
//! `phoenix-http`. The batch worker applies the chunks.

mod batches;
mod error;
mod state;
pub mod views;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{get, post};
use phoenix_http::AuthMode;
use utoipa::OpenApi;

pub use batches::STATS_BATCHES;

/// The largest batch submission: 10,000 explicit items are about 800 KB of JSON (this route
/// alone; API Gateway takes 10 MB).
pub const SUBMIT_MAX_BODY: usize = 2 * 1024 * 1024;
pub use error::BatchApiError;
pub use phoenix_http::idempotency::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
pub use state::{BatchRoutePorts, BatchState, Config};

/// The batch routes on their state, ready to merge into an API router.
pub fn routes(config: Config, ports: BatchRoutePorts, auth: AuthMode) -> Router {
    let state = BatchState { ports, config: std::sync::Arc::new(config), auth };
    Router::new()
        .route(
            "/v1/batches",
            post(batches::submit_batch.layer(DefaultBodyLimit::max(SUBMIT_MAX_BODY))).get(batches::list_batches),
        )
        // Before `/{batch_id}`, so that `stats` is never read as an id.
        .route("/v1/batches/stats", get(batches::batch_stats))
        .route("/v1/batches/{batch_id}", get(batches::get_batch).delete(batches::cancel_batch))
        .route("/v1/batches/{batch_id}/items", get(batches::list_items))
        .route("/v1/batches/{batch_id}/rollback", post(batches::rollback_batch))
        .with_state(state)
}

/// The batch routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        batches::submit_batch,
        batches::list_batches,
        batches::batch_stats,
        batches::get_batch,
        batches::cancel_batch,
        batches::list_items,
        batches::rollback_batch
    ),
    tags((name = "batches", description = "Batch operations on up to 10,000 media: moderation, categories, tags, usage rights, trash; with per-item outcomes and rollback"))
)]
pub struct BatchesApi;
