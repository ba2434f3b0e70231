//! Batches: submit (with an optional `Idempotency-Key`), read (with its ETag, for cheap polling),
//! list, read the items' outcomes, cancel, roll back; statistics for admins. Handlers parse,
//! authorize, call `phoenix_domain::batches` and render.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use phoenix_domain::batches::events::{self, BatchEventKind};
use phoenix_domain::batches::wire::{BatchBody, FilterBody, ItemRef};
use phoenix_domain::batches::{
    self, Batch, BatchError, BatchOperation, BatchPorts, ChunkMessage, ItemOutcome, QUEUE, Submitter,
};
use phoenix_domain::idempotency::{self, Claim, IdempotencyKey};
use phoenix_domain::ports::{BatchQuery, bounds};
use phoenix_domain::{BatchId, ModelId, StoreError};
use phoenix_http::conditional::Tagged;
use phoenix_http::idempotency::{IDEMPOTENT_REPLAYED, idempotency_key};
use phoenix_http::lambda::PathPrefix;
use phoenix_http::openapi::{AuthenticatedErrors, JsonBodyErrors};
use phoenix_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, ErrorBody, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::error::BatchApiError;
use crate::state::BatchState;
use crate::views::{BatchPage, BatchStatsView, BatchView, ItemPage, ItemView, OperationStatsView, SubmitBatchBody};

/// The batches the statistics read at most: every model's latest.
pub const STATS_BATCHES: usize = 1_000;

/// `/v1/batches/{batch_id}…`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BatchPath {
    /// The batch id (26-character ULID, lower case)
    #[param(pattern = "^[0-7][0-9a-hjkmnp-tv-z]{25}$")]
    pub batch_id: String,
}

impl BatchPath {
    fn batch(&self) -> Result<BatchId, ApiError> {
        BatchId::parse(&self.batch_id).map_err(|e| ApiError::InvalidId(e.to_string()))
    }
}

/// The batch's own URL (with whatever API Gateway's stage or mapping put in front of the routes).
fn batch_location(prefix: Option<&PathPrefix>, batch: &BatchId) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(PathPrefix::url(prefix, &format!("/v1/batches/{batch}")))
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("a batch URL is not a header value: {e}")))
}

fn submitter(caller: &Caller) -> Submitter {
    Submitter {
        subject: caller.subject.clone(),
        admin: caller.is_admin(),
        model_id: match &caller.role {
            Role::Admin => None,
            Role::Model(m) => Some(m.clone()),
        },
    }
}

/// A batch as `caller` may see it, with its ETag, in a response of `status` (and its Location).
fn accepted(
    caller: &Caller,
    batch: &Batch,
    prefix: Option<&PathPrefix>,
    replayed: bool,
) -> Result<Response, BatchApiError> {
    let view = BatchView::new(batch, caller.is_admin());
    let mut response = Tagged::new(&view, batch.version)?.with_status(StatusCode::ACCEPTED);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, batch_location(prefix, &batch.batch_id)?);
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The batch an idempotency record names.
fn batch_of(resource: &str) -> Result<BatchId, ApiError> {
    BatchId::parse(resource)
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("an idempotency record names no batch: {e}")))
}

/// What a key's hash is taken of: the request as understood (the operation parsed, the
/// selection as given), so key order, spacing and defaults do not make another body.
#[derive(Serialize)]
struct Canonical<'a> {
    model_id: &'a ModelId,
    operation: &'a BatchOperation,
    items: &'a Option<Vec<ItemRef>>,
    filter: &'a Option<FilterBody>,
    dry_run: bool,
}

/// Submits a batch: one operation over explicit items or the media a filter selects (at most
/// 10,000), applied in the background in chunks of 100. With an `Idempotency-Key` (1 to 255
/// visible ASCII characters, kept 24 hours, scoped to the caller), the same key with the same body
/// answers the same batch (202 again, with `Idempotent-Replayed: true`); with another body it is
/// 422 `idempotency_key_reused`; while the first submission under the key is still being made,
/// 409 `idempotency_in_flight` (retry after `Retry-After` seconds).
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "Makes the submission safe to retry: the same key and body answer the same batch for 24 hours (1 to 255 visible ASCII characters; scoped to the caller)"),
    ),
    request_body = SubmitBatchBody,
    responses(
        (status = 202, description = "Queued (or, with `Idempotent-Replayed: true`, the batch this key made before, as it is now). A selection that is empty is `completed` at once", body = BatchView,
            headers(
                ("Location" = String, description = "The batch's URL: `/v1/batches/{batch_id}`"),
                ("ETag" = String, description = "Poll `GET Location` with `If-None-Match`"),
                ("Idempotent-Replayed" = Option<String>, description = "`true` when answered from the Idempotency-Key"),
            )),
        (status = 400, description = "Malformed body (`malformed_json`); a field of the wrong type, an unknown operation, bad params, both or neither of items and filter, an item of another model, a filter selecting more than 10,000 media, a bad Idempotency-Key (`invalid_request`, `details.field` names it)", body = ErrorBody),
        (status = 403, description = "A model user batching another model's media, or a review (approve, reject) by a model user", body = ErrorBody),
        (status = 409, description = "A submission with this Idempotency-Key is still in progress (`idempotency_in_flight`, with `Retry-After`)", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used with another body (`idempotency_key_reused`)", body = ErrorBody),
        (status = 429, description = "Too many batches running, for the model or in all (`rate_limited`, with `Retry-After` in seconds)", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait before submitting again"))),
        AuthenticatedErrors, JsonBodyErrors,
    ),
    security(("bearer" = []))
)]
pub async fn submit_batch(
    State(state): State<BatchState>,
    caller: Caller,
    prefix: Option<Extension<PathPrefix>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Response, BatchApiError> {
    let prefix = prefix.as_ref().map(|p| &p.0);
    let (items, filter) = (body.items.clone(), body.filter.clone());
    let request = body.into_request()?;
    let canonical = Canonical {
        model_id: &request.model_id,
        operation: &request.operation,
        items: &items,
        filter: &filter,
        dry_run: request.dry_run,
    };
    // A namespace of its own: a caller's job keys and batch keys never collide.
    let key = idempotency_key(&headers)?
        .map(|k| IdempotencyKey::new(format!("batches|{}", caller.subject), k, &canonical))
        .transpose()?;
    let ports = &state.ports;
    let submitter = submitter(&caller);
    let submit_ports = BatchPorts {
        batches: ports.metadata.as_ref(),
        media: ports.metadata.as_ref(),
        galleries: ports.metadata.as_ref(),
        queue: ports.queue.as_ref(),
    };
    let now = OffsetDateTime::now_utc();
    let submit = |id: BatchId| batches::submit(submit_ports, state.config.limits, &submitter, request.clone(), id, now);

    let Some(key) = key else {
        let batch = submit(BatchId::new()).await?;
        log_submitted(&batch, false);
        events::emit(ports.events.as_ref(), &batch, BatchEventKind::Submitted).await;
        return accepted(&caller, &batch, prefix, false);
    };
    let store = ports.metadata.as_ref();
    let claimed = match idempotency::claim(store, &key, BatchId::new().to_string(), now).await? {
        Claim::Replay(id) => {
            let id = batch_of(&id)?;
            let batch = ports.metadata.get_batch(&id).await.map_err(|e| match e {
                StoreError::NotFound => ApiError::NotFound(format!("batch {id} not found")),
                other => other.into(),
            })?;
            log_submitted(&batch, true);
            return accepted(&caller, &batch, prefix, true);
        }
        Claim::Submit(claimed) => claimed,
    };
    let id = batch_of(claimed.resource_id())?;
    let batch = match ports.metadata.get_batch(&id).await {
        // Written by the submission that died; some chunk messages may be lost, so send again
        // those of the chunks not yet done (a chunk delivered twice applies nothing twice).
        Ok(batch) => {
            for chunk in ports.metadata.list_chunks(&id).await? {
                if chunk.counts.is_none() {
                    let message = ChunkMessage { batch_id: id, chunk: chunk.chunk };
                    let body = serde_json::to_string(&message).map_err(|e| ApiError::Unexpected(e.into()))?;
                    ports.queue.send(&QUEUE, &body, Duration::ZERO).await?;
                }
            }
            batch
        }
        Err(StoreError::NotFound) => match submit(id).await {
            Ok(batch) => batch,
            Err(BatchError::Store(e)) => return Err(e.into()),
            Err(refused) => {
                idempotency::release(store, claimed, now).await;
                return Err(refused.into());
            }
        },
        Err(e) => return Err(e.into()),
    };
    idempotency::complete(store, claimed).await?;
    log_submitted(&batch, false);
    events::emit(ports.events.as_ref(), &batch, BatchEventKind::Submitted).await;
    accepted(&caller, &batch, prefix, false)
}

fn log_submitted(batch: &Batch, replayed: bool) {
    tracing::info!(
        batch_id = %batch.batch_id,
        model_id = %batch.model_id,
        operation = batch.operation.name(),
        total = batch.total,
        dry_run = batch.dry_run,
        replayed,
        "batch submitted"
    );
}

/// One batch: status, progress (chunks and counts by outcome), rate and ETA, timings. Poll it
/// with `If-None-Match`: 304 until something changes.
#[utoipa::path(
    get,
    path = "/v1/batches/{batch_id}",
    tag = "batches",
    params(
        BatchPath,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier read: 304 if unchanged"),
    ),
    responses(
        (status = 200, body = BatchView, headers(("ETag" = String, description = "Changes whenever the batch does"))),
        (status = 304, description = "Unchanged since the ETag sent"),
        (status = 400, description = "Malformed batch id", body = ErrorBody),
        (status = 404, description = "No such batch (or another model's, for a model user)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn get_batch(
    State(state): State<BatchState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(path): ApiPath<BatchPath>,
) -> Result<Response, BatchApiError> {
    let batch = state.visible_batch(&caller, &path.batch()?).await?;
    let view = BatchView::new(&batch, caller.is_admin());
    Ok(Tagged::new(&view, batch.version)?.respond_to(&headers))
}

/// Cancels a queued or running batch: chunks not yet applied are skipped; items already applied
/// stay applied, with their outcomes (roll the batch back to undo them). An ended batch is
/// 409 `invalid_state`.
#[utoipa::path(
    delete,
    path = "/v1/batches/{batch_id}",
    tag = "batches",
    params(BatchPath),
    responses(
        (status = 200, description = "Cancelled", body = BatchView, headers(("ETag" = String))),
        (status = 400, description = "Malformed batch id", body = ErrorBody),
        (status = 404, description = "No such batch (or another model's, for a model user)", body = ErrorBody),
        (status = 409, description = "The batch has ended (`invalid_state`)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn cancel_batch(
    State(state): State<BatchState>,
    caller: Caller,
    ApiPath(path): ApiPath<BatchPath>,
) -> Result<Response, BatchApiError> {
    let id = path.batch()?;
    state.visible_batch(&caller, &id).await?;
    let batch = batches::cancel(state.ports.metadata.as_ref(), &id, OffsetDateTime::now_utc()).await?;
    tracing::info!(batch_id = %id, "batch cancelled");
    let view = BatchView::new(&batch, caller.is_admin());
    Ok(Tagged::new(&view, batch.version)?.with_status(StatusCode::OK))
}

/// Rolls an ended batch back, as a new batch: every item it applied gets its previous values
/// back, if it is still as the batch left it; an item changed since is reported
/// (`skipped_conflict`), never clobbered. The original becomes `rolled_back` when the rollback ends.
#[utoipa::path(
    post,
    path = "/v1/batches/{batch_id}/rollback",
    tag = "batches",
    params(BatchPath),
    responses(
        (status = 202, description = "The rollback batch, queued", body = BatchView,
            headers(
                ("Location" = String, description = "The rollback batch's URL"),
                ("ETag" = String),
            )),
        (status = 400, description = "Malformed batch id", body = ErrorBody),
        (status = 404, description = "No such batch (or another model's, for a model user)", body = ErrorBody),
        (status = 409, description = "Still running, a dry run, cancelled, a rollback, or already rolled back (`invalid_state`)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn rollback_batch(
    State(state): State<BatchState>,
    caller: Caller,
    prefix: Option<Extension<PathPrefix>>,
    ApiPath(path): ApiPath<BatchPath>,
) -> Result<Response, BatchApiError> {
    let id = path.batch()?;
    state.visible_batch(&caller, &id).await?;
    let ports = &state.ports;
    let rollback = batches::rollback(
        ports.metadata.as_ref(),
        ports.queue.as_ref(),
        &submitter(&caller),
        &id,
        BatchId::new(),
        OffsetDateTime::now_utc(),
    )
    .await?;
    tracing::info!(batch_id = %id, rollback_id = %rollback.batch_id, total = rollback.total, "batch rolled back");
    events::emit(ports.events.as_ref(), &rollback, BatchEventKind::Submitted).await;
    accepted(&caller, &rollback, prefix.as_ref().map(|p| &p.0), false)
}

fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    bounds::page_size(limit.unwrap_or(bounds::DEFAULT_PAGE_SIZE)).map_err(|_| ApiError::InvalidField {
        field: "limit".into(),
        message: format!("limit must be between {} and {}", bounds::PAGE_SIZE.start(), bounds::PAGE_SIZE.end()),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListItemsParams {
    /// Only items with this outcome.
    #[param(
        pattern = "^(applied|skipped_conflict|skipped_not_found|skipped_not_allowed|skipped_invalid_state|failed)$"
    )]
    pub outcome: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`, with the same `outcome`.
    pub cursor: Option<String>,
}

/// A batch's items that have an outcome, in the batch's order, a page at a time: what became of
/// each, why, and (applied items) the values it had before.
#[utoipa::path(
    get,
    path = "/v1/batches/{batch_id}/items",
    tag = "batches",
    params(BatchPath, ListItemsParams),
    responses(
        (status = 200, body = ItemPage),
        (status = 400, description = "Malformed batch id (`invalid_id`); bad outcome, limit or cursor (`invalid_request`)", body = ErrorBody),
        (status = 404, description = "No such batch (or another model's, for a model user)", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_items(
    State(state): State<BatchState>,
    caller: Caller,
    ApiPath(path): ApiPath<BatchPath>,
    ApiQuery(params): ApiQuery<ListItemsParams>,
) -> Result<Json<ItemPage>, BatchApiError> {
    let id = path.batch()?;
    let outcome = params
        .outcome
        .as_deref()
        .map(|o| {
            ItemOutcome::parse(o).ok_or_else(|| ApiError::InvalidField {
                field: "outcome".into(),
                message: format!(
                    "unknown outcome {o:?}; one of {}",
                    ItemOutcome::ALL.map(ItemOutcome::as_str).join(", ")
                ),
            })
        })
        .transpose()?;
    let limit = page_size(params.limit)?;
    state.visible_batch(&caller, &id).await?;
    let page = state.ports.metadata.list_items(&id, outcome, limit, params.cursor).await?;
    Ok(Json(ItemPage { items: page.items.iter().map(ItemView::from).collect(), next_cursor: page.next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListBatchesParams {
    /// The model whose batches to list. A model user's default (and only allowed value) is its
    /// own model; an admin may leave it out to list every model's batches.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub model_id: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`, with the same `model_id`.
    pub cursor: Option<String>,
}

/// Batches, newest first, a page at a time: a model's, or — admins only — every model's.
#[utoipa::path(
    get,
    path = "/v1/batches",
    tag = "batches",
    params(ListBatchesParams),
    responses(
        (status = 200, body = BatchPage),
        (status = 400, description = "Bad model id, limit or cursor", body = ErrorBody),
        (status = 403, description = "A model user naming another model", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn list_batches(
    State(state): State<BatchState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListBatchesParams>,
) -> Result<Json<BatchPage>, BatchApiError> {
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
    let query = BatchQuery { model, limit: page_size(params.limit)?, cursor: params.cursor };
    let page = state.ports.metadata.list_batches(&query).await?;
    let admin = caller.is_admin();
    Ok(Json(BatchPage {
        items: page.items.iter().map(|b| BatchView::new(b, admin)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Per operation, over every model's latest batches (at most 1,000, dry runs left out): how many
/// batches, items applied, the share of items that failed or were skipped, the mean rate.
/// Admins only.
#[utoipa::path(
    get,
    path = "/v1/batches/stats",
    tag = "batches",
    responses(
        (status = 200, body = BatchStatsView),
        (status = 403, description = "Admins only", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn batch_stats(
    State(state): State<BatchState>,
    caller: Caller,
) -> Result<Json<BatchStatsView>, BatchApiError> {
    caller.require_admin("read batch statistics")?;
    let mut read = Vec::new();
    let mut query = BatchQuery { model: None, limit: *bounds::PAGE_SIZE.end(), cursor: None };
    let truncated = loop {
        query.limit = (STATS_BATCHES - read.len()).min(*bounds::PAGE_SIZE.end());
        let page = state.ports.metadata.list_batches(&query).await?;
        read.extend(page.items);
        match page.next_cursor {
            Some(c) if read.len() < STATS_BATCHES => query.cursor = Some(c),
            Some(_) => break true,
            None => break false,
        }
    };
    Ok(Json(BatchStatsView { truncated, ..stats(&read) }))
}

#[derive(Default)]
struct Tally {
    batches: u64,
    applied: u64,
    handled: u64,
    rates: Vec<f64>,
}

fn stats(read: &[Batch]) -> BatchStatsView {
    let mut by_operation: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for batch in read.iter().filter(|b| !b.dry_run) {
        let tally = by_operation.entry(batch.operation.name()).or_default();
        tally.batches += 1;
        tally.applied += batch.counts.applied;
        tally.handled += batch.counts.total();
        tally.rates.extend(batch.items_per_second(batch.updated_at));
    }
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    BatchStatsView {
        operations: by_operation
            .into_iter()
            .map(|(operation, t)| OperationStatsView {
                operation: operation.to_owned(),
                batches: t.batches,
                items_applied: t.applied,
                failure_rate: if t.handled == 0 {
                    0.0
                } else {
                    round((t.handled - t.applied) as f64 / t.handled as f64)
                },
                mean_items_per_second: (!t.rates.is_empty())
                    .then(|| round(t.rates.iter().sum::<f64>() / t.rates.len() as f64)),
            })
            .collect(),
        batches_read: read.len() as u64,
        truncated: false,
    }
}
