//! Jobs: submit (with an optional `Idempotency-Key`), read (with its ETag, for cheap polling),
//! list, cancel and retry. Handlers parse, authorize, call the domain's use case and render.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use phoenix_domain::idempotency::IdempotencyKey;
use phoenix_domain::jobs::{self, JobError, JobStatus, Operation, SubmitPorts, SubmitRequest, Target};
use phoenix_domain::ports::{JobQuery, bounds};
use phoenix_domain::watermarks::{self, WatermarkError};
use phoenix_domain::{JobId, ModelId};
use phoenix_http::conditional::Tagged;
use phoenix_http::idempotency::{IDEMPOTENT_REPLAYED, idempotency_key};
use phoenix_http::lambda::PathPrefix;
use phoenix_http::openapi::{AuthenticatedErrors, JsonBodyErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, Role};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::error::JobApiError;
use crate::state::JobState;
use crate::views::{JobPage, JobView, SubmitJobBody};

/// `/v1/jobs/{job_id}…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// The job id (26-character ULID, lower case)
    #[param(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub job_id: String,
}

impl JobPath {
    fn job(&self) -> Result<JobId, ApiError> {
        JobId::parse(&self.job_id).map_err(|e| ApiError::InvalidId(e.to_string()))
    }
}

/// The job's own URL (with whatever API Gateway's stage or mapping put in front of the routes).
fn job_location(prefix: Option<&PathPrefix>, job: &JobId) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(PathPrefix::url(prefix, &format!("/v1/jobs/{job}")))
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("a job URL is not a header value: {e}")))
}

/// Submits a job. With an `Idempotency-Key` (1 to 255 visible ASCII characters, kept 24 hours,
/// scoped to the caller), the same key with the same body answers the same job (202 again, with
/// `Idempotent-Replayed: true`); with another body it is 422 `idempotency_key_reused`; while the
/// first submission under the key is still being made, 409 `idempotency_in_flight` (retry after
/// `Retry-After` seconds).
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "Makes the submission safe to retry: the same key and body answer the same job for 24 hours (1 to 255 visible ASCII characters; scoped to the caller)"),
    ),
    request_body = SubmitJobBody,
    responses(
        (status = 202, description = "Queued (or, with `Idempotent-Replayed: true`, the job this key made before, as it is now)", body = JobView,
            headers(
                ("Location" = String, description = "The job's URL: `/v1/jobs/{job_id}`"),
                ("ETag" = String, description = "Poll `GET Location` with `If-None-Match`"),
                ("Idempotent-Replayed" = Option<String>, description = "`true` when answered from the Idempotency-Key"),
            )),
        (status = 400, description = "Malformed body (`malformed_json`), a field of the wrong type or out of bounds, bad params, a whole-model target for a one-media operation, fault injection off, a bad Idempotency-Key (`invalid_request`, `details.field` names it)", body = ErrorBody),
        (status = 403, description = "A model user submitting for another model", body = ErrorBody),
        (status = 404, description = "No such media, or no such watermark profile", body = ErrorBody),
        (status = 409, description = "The media is not processed yet (`invalid_state`), or a submission with this Idempotency-Key is still in progress (`idempotency_in_flight`, with `Retry-After`)", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body (`idempotency_key_reused`)", body = ErrorBody),
        AuthenticatedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn submit_job(
    State(state): State<JobState>,
    caller: Caller,
    prefix: Option<Extension<PathPrefix>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmitJobBody>,
) -> Result<Response, JobApiError> {
    let model = body.target.model_id.clone();
    caller.authorize(&model)?;
    let operation = Operation::from_request(body.operation.as_str(), body.params.unwrap_or_default())?;
    let ports = &state.ports;
    if let Operation::Watermark { profile } = &operation {
        watermarks::get_profile(ports.objects.as_ref(), profile).await.map_err(|e| match e {
            WatermarkError::NotFound(_) => ApiError::NotFound(format!(
                "no watermark profile named {profile}: an admin creates it with PUT /v1/watermarks/{profile}"
            ))
            .into(),
            other => JobApiError::from(other),
        })?;
    }
    let request = SubmitRequest {
        operation,
        target: Target { model_id: model, media_id: body.target.media_id, stale: body.target.stale },
        lane: body.priority.unwrap_or_default().into(),
        fault: body.fault,
    };
    let key = idempotency_key(&headers)?
        .map(|k| IdempotencyKey::new(caller.subject.clone(), k, &request).map_err(JobError::from))
        .transpose()?;
    let submitted = jobs::submit(
        SubmitPorts {
            jobs: ports.metadata.as_ref(),
            idempotency: ports.metadata.as_ref(),
            media: ports.metadata.as_ref(),
            queue: ports.queue.as_ref(),
            events: ports.events.as_ref(),
        },
        &state.config.jobs,
        &caller.subject,
        request,
        key,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let job = &submitted.job;
    tracing::info!(
        job_id = %job.job_id,
        model_id = %job.model_id,
        operation = job.operation.name(),
        replayed = submitted.replayed,
        "job submitted"
    );
    let view = state.render(&caller, job).await?;
    let mut response = Tagged::new(&view, job.version)?.with_status(StatusCode::ACCEPTED);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, job_location(prefix.as_ref().map(|p| &p.0), &job.job_id)?);
    if submitted.replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One job: status, attempts, progress, timings, error, result. Poll it with `If-None-Match`:
/// 304 until something changes.
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}",
    tag = "jobs",
    params(
        JobPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = JobView, headers(("ETag" = String, description = "Changes whenever the job does"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "Malformed job id", body = ErrorBody),
        (status = 404, description = "No such job (or another model's, for a model user)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn get_job(
    State(state): State<JobState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<Response, JobApiError> {
    let job = state.visible_job(&caller, &path.job()?).await?;
    let view = state.render(&caller, &job).await?;
    Ok(Tagged::new(&view, job.version)?.respond_to(&headers))
}

/// Cancels a queued job. A running job cannot be stopped, and an ended one has nothing to stop:
/// both are 409 `invalid_state`.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{job_id}",
    tag = "jobs",
    params(JobPath),
    responses(
        (status = 200, description = "Cancelled", body = JobView, headers(("ETag" = String))),
        (status = 400, description = "Malformed job id", body = ErrorBody),
        (status = 404, description = "No such job (or another model's, for a model user)", body = ErrorBody),
        (status = 409, description = "Not queued (`invalid_state`), or it changed meanwhile (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn cancel_job(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<Response, JobApiError> {
    let id = path.job()?;
    state.visible_job(&caller, &id).await?;
    let ports = &state.ports;
    let job = jobs::cancel(ports.metadata.as_ref(), ports.events.as_ref(), &id, OffsetDateTime::now_utc()).await?;
    tracing::info!(job_id = %id, "job cancelled");
    let view = state.render(&caller, &job).await?;
    Ok(Tagged::new(&view, job.version)?.with_status(StatusCode::OK))
}

/// Runs a failed job again, with a fresh attempt budget (its earlier attempts stay listed).
#[utoipa::path(
    post,
    path = "/v1/jobs/{job_id}/retry",
    tag = "jobs",
    params(JobPath),
    responses(
        (status = 202, description = "Queued again", body = JobView, headers(("ETag" = String))),
        (status = 400, description = "Malformed job id", body = ErrorBody),
        (status = 404, description = "No such job (or another model's, for a model user)", body = ErrorBody),
        (status = 409, description = "Not failed, a child of a whole-model job, or a parent whose children ran (`invalid_state`); or it changed meanwhile (`version_conflict`)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn retry_job(
    State(state): State<JobState>,
    caller: Caller,
    ApiPath(path): ApiPath<JobPath>,
) -> Result<Response, JobApiError> {
    let id = path.job()?;
    state.visible_job(&caller, &id).await?;
    let ports = &state.ports;
    let job = jobs::retry(
        ports.metadata.as_ref(),
        ports.queue.as_ref(),
        ports.events.as_ref(),
        &id,
        OffsetDateTime::now_utc(),
    )
    .await?;
    tracing::info!(job_id = %id, "job retried");
    let view = state.render(&caller, &job).await?;
    Ok(Tagged::new(&view, job.version)?.with_status(StatusCode::ACCEPTED))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListJobsParams {
    /// The model whose jobs to list. A model user's default (and only allowed value) is its own
    /// model; an admin may leave it out to list every model's jobs in one `status`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: Option<String>,
    /// Only jobs in this status.
    #[param(pattern = "^(queued|running|succeeded|failed|cancelled)$")]
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`, with the same filters.
    pub cursor: Option<String>,
}

/// Jobs, newest first, a page at a time: a model's (optionally in one status), or — admins only —
/// every model's in one status.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListJobsParams),
    responses(
        (status = 200, body = JobPage),
        (status = 400, description = "Bad model id, status, limit or cursor; or an admin naming neither model_id nor status", body = ErrorBody),
        (status = 403, description = "A model user naming another model", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    State(state): State<JobState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListJobsParams>,
) -> Result<axum::Json<JobPage>, JobApiError> {
    let asked = params
        .model_id
        .as_deref()
        .map(|m| {
            ModelId::parse(m).map_err(|e| ApiError::InvalidField { field: "model_id".into(), message: e.to_string() })
        })
        .transpose()?;
    let model = match (&caller.role, asked) {
        (Role::Model(own), None) => Some(own.clone()),
        (Role::Model(_), Some(asked)) => {
            caller.authorize(&asked)?;
            Some(asked)
        }
        (Role::Admin, asked) => asked,
    };
    let status = params
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| ApiError::InvalidField {
                field: "status".into(),
                message: format!("unknown status {s:?}; one of queued, running, succeeded, failed, cancelled"),
            })
        })
        .transpose()?;
    if model.is_none() && status.is_none() {
        return Err(ApiError::InvalidRequest(
            "name a model_id, or a status to list every model's jobs in that status".into(),
        )
        .into());
    }
    let limit =
        bounds::page_size(params.limit.unwrap_or(bounds::DEFAULT_PAGE_SIZE)).map_err(|_| ApiError::InvalidField {
            field: "limit".into(),
            message: format!("limit must be between {} and {}", bounds::PAGE_SIZE.start(), bounds::PAGE_SIZE.end()),
        })?;
    let query = JobQuery { model, status, limit, cursor: params.cursor, oldest_first: false };
    let page = state.ports.metadata.list_jobs(&query).await?;
    let mut items: Vec<JobView> = Vec::with_capacity(page.items.len());
    for job in &page.items {
        items.push(state.render(&caller, job).await?);
    }
    Ok(axum::Json(JobPage { items, next_cursor: page.next_cursor }))
}
