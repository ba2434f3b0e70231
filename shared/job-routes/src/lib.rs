//! The background jobs' HTTP routes: submitting jobs (crop, rotate, flip, watermark, regenerate;
//! with an optional `Idempotency-Key`), reading, listing, cancelling and retrying them; the lanes'
//! statistics and controls (pause, resume, redrive) for admins; and watermark profiles. Handlers
//! parse, authorize, call `phoenix_domain::jobs` / `watermarks` and render; errors map once
//! ([`JobApiError`]), and everything HTTP-generic comes from `phoenix-http`.

mod error;
mod jobs;
mod queues;
mod state;
pub mod views;
mod watermarks;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{get, post};
use phoenix_http::AuthMode;
use utoipa::OpenApi;

pub use error::JobApiError;
pub use phoenix_http::idempotency::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
pub use queues::REDRIVE_BATCH;
pub use state::{Config, JobPorts, JobState};
pub use watermarks::WATERMARK_MAX_BODY;

/// The job, queue and watermark routes on their state, ready to merge into an API router.
pub fn routes(config: Config, ports: JobPorts, auth: AuthMode) -> Router {
    let state = JobState { ports, config: std::sync::Arc::new(config), auth };
    Router::new()
        .route("/v1/jobs", post(jobs::submit_job).get(jobs::list_jobs))
        .route("/v1/jobs/{job_id}", get(jobs::get_job).delete(jobs::cancel_job))
        .route("/v1/jobs/{job_id}/retry", post(jobs::retry_job))
        .route("/v1/queues/stats", get(queues::queue_stats))
        .route("/v1/queues/{lane}/pause", post(queues::pause_lane))
        .route("/v1/queues/{lane}/resume", post(queues::resume_lane))
        .route("/v1/queues/{lane}/redrive", post(queues::redrive_lane))
        .route("/v1/watermarks", get(watermarks::list_watermarks))
        .route(
            "/v1/watermarks/{profile}",
            // A logo is larger than the API's default body limit: this route alone allows more.
            get(watermarks::get_watermark)
                .put(watermarks::put_watermark.layer(DefaultBodyLimit::max(WATERMARK_MAX_BODY))),
        )
        .with_state(state)
}

/// The job routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        jobs::submit_job,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        jobs::retry_job,
        queues::queue_stats,
        queues::pause_lane,
        queues::resume_lane,
        queues::redrive_lane,
        watermarks::put_watermark,
        watermarks::get_watermark,
        watermarks::list_watermarks
    ),
    tags(
        (name = "jobs", description = "Background image jobs: crop, rotate, flip, watermark, regenerate"),
        (name = "queues", description = "The job lanes, for admins: statistics, pause, resume, redrive"),
        (name = "watermarks", description = "Watermark profiles: a logo and how it is drawn")
    )
)]
pub struct JobsApi;
