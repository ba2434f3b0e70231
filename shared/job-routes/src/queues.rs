//! The lanes, for the agency's admins: statistics, pause and resume, and redrive of a lane's
//! dead-letter queue.

use axum::Json;
use axum::extract::State;
use phoenix_domain::jobs::{self, Lane, QueueStatsReport};
use phoenix_http::openapi::AuthenticatedErrors;
use phoenix_http::{ApiError, ApiPath, Caller, ErrorBody};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::error::JobApiError;
use crate::state::JobState;
use crate::views::{LaneStatsView, QueueStatsView, RedriveView};

/// Messages one redrive call moves at most: the API's 15 s timeout bounds a request, so a large
/// dead-letter queue is emptied by calling again until `moved` is 0.
pub const REDRIVE_BATCH: usize = 100;

/// `/v1/queues/{lane}/…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LanePath {
    /// `high` or `normal`
    #[param(pattern = "^(high|normal)$")]
    pub lane: String,
}

impl LanePath {
    fn lane(&self) -> Result<Lane, ApiError> {
        Lane::parse(&self.lane)
            .ok_or_else(|| ApiError::NotFound(format!("no lane named {:?}; the lanes are high and normal", self.lane)))
    }
}

async fn report(state: &JobState) -> Result<QueueStatsReport, JobApiError> {
    let ports = &state.ports;
    Ok(jobs::queue_stats(
        ports.metadata.as_ref(),
        ports.queue.as_ref(),
        ports.lanes.as_ref(),
        OffsetDateTime::now_utc(),
    )
    .await?)
}

async fn lane_report(state: &JobState, lane: Lane) -> Result<LaneStatsView, JobApiError> {
    let report = report(state).await?;
    let stats = report
        .lanes
        .iter()
        .find(|s| s.lane == lane)
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("queue stats lack lane {}", lane.as_str())))?;
    Ok(stats.into())
}

/// Each lane's depth (visible, in flight, delayed), dead-letter count and whether it is paused;
/// every model's jobs by status; the age of the oldest queued job. Admins only.
#[utoipa::path(
    get,
    path = "/v1/queues/stats",
    tag = "queues",
    responses(
        (status = 200, body = QueueStatsView),
        (status = 403, description = "Admins only", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn queue_stats(State(state): State<JobState>, caller: Caller) -> Result<Json<QueueStatsView>, JobApiError> {
    caller.require_admin("read queue statistics")?;
    Ok(Json((&report(&state).await?).into()))
}

/// Pauses a lane: its messages stay queued and no worker takes them until it is resumed (jobs
/// already running finish). Admins only.
#[utoipa::path(
    post,
    path = "/v1/queues/{lane}/pause",
    tag = "queues",
    params(LanePath),
    responses(
        (status = 200, description = "The lane's statistics after the change", body = LaneStatsView),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such lane", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn pause_lane(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<LanePath>,
) -> Result<Json<LaneStatsView>, JobApiError> {
    set_paused(state, caller, path, true).await
}

/// Resumes a paused lane. Admins only.
#[utoipa::path(
    post,
    path = "/v1/queues/{lane}/resume",
    tag = "queues",
    params(LanePath),
    responses(
        (status = 200, description = "The lane's statistics after the change", body = LaneStatsView),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such lane", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn resume_lane(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<LanePath>,
) -> Result<Json<LaneStatsView>, JobApiError> {
    set_paused(state, caller, path, false).await
}

async fn set_paused(
    state: JobState,
    caller: Caller,
    path: LanePath,
    paused: bool,
) -> Result<Json<LaneStatsView>, JobApiError> {
    caller.require_admin("pause or resume a lane")?;
    let lane = path.lane()?;
    jobs::set_paused(state.ports.lanes.as_ref(), lane, paused).await?;
    tracing::info!(lane = lane.as_str(), paused, "lane switched");
    Ok(Json(lane_report(&state, lane).await?))
}

/// Moves up to 100 messages from a lane's dead-letter queue back onto the lane; a failed job a
/// message names is queued again with a fresh attempt budget. Call again until `moved` is 0.
/// Admins only.
#[utoipa::path(
    post,
    path = "/v1/queues/{lane}/redrive",
    tag = "queues",
    params(LanePath),
    responses(
        (status = 200, description = "How many messages this call moved", body = RedriveView),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such lane", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn redrive_lane(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<LanePath>,
) -> Result<Json<RedriveView>, JobApiError> {
    caller.require_admin("redrive a dead-letter queue")?;
    let lane = path.lane()?;
    let ports = &state.ports;
    let moved = jobs::redrive(
        ports.metadata.as_ref(),
        ports.queue.as_ref(),
        ports.events.as_ref(),
        lane,
        REDRIVE_BATCH,
        OffsetDateTime::now_utc(),
    )
    .await?;
    tracing::info!(lane = lane.as_str(), moved, "dead letters redriven");
    Ok(Json(RedriveView { lane: lane.into(), moved }))
}
