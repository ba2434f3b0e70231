//! `GET /v1/cache/stats` (admins): the public routes' own counts on this instance (served from
//! the stored document in memory, 304s, renders, hit ratio per route) and, where a CDN is in
//! front (AWS), the distribution's CloudWatch figures over the last hour.

use axum::Json;
use axum::extract::State;
use phoenix_domain::ports::CdnMetricsReport;
use phoenix_http::openapi::AuthenticatedErrors;
use phoenix_http::{ApiError, Caller, ErrorBody};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::GalleryApiError;
use crate::public::CacheStats;
use crate::state::GalleryState;

/// The window the CDN's figures cover.
pub const CDN_WINDOW: Duration = Duration::hours(1);

/// The distribution's figures (CloudWatch, `AWS/CloudFront`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CdnStatsView {
    pub distribution_id: String,
    pub start: String,
    pub end: String,
    /// Requests in the window; absent without data points
    pub requests: Option<f64>,
    /// Percentages (0 to 100), averaged over the window
    pub cache_hit_rate: Option<f64>,
    pub error_4xx_rate: Option<f64>,
    pub error_5xx_rate: Option<f64>,
}

impl From<CdnMetricsReport> for CdnStatsView {
    fn from(r: CdnMetricsReport) -> Self {
        let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        Self {
            distribution_id: r.distribution_id,
            start: at(r.start),
            end: at(r.end),
            requests: r.requests,
            cache_hit_rate: r.cache_hit_rate,
            error_4xx_rate: r.error_4xx_rate,
            error_5xx_rate: r.error_5xx_rate,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatsView {
    /// This instance's public routes since it started (in AWS: one Lambda instance's)
    pub routes: Vec<CacheStats>,
    /// The CDN's figures over the last hour; absent without a CDN (locally)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdn: Option<CdnStatsView>,
}

/// Cache statistics: the public routes' counts (hits served from the stored document, 304s,
/// renders, hit ratio), and in AWS the CDN's requests, cache hit rate and error rates over the
/// last hour. Admins only.
#[utoipa::path(
    get,
    path = "/v1/cache/stats",
    tag = "public",
    responses(
        (status = 200, body = CacheStatsView),
        (status = 403, description = "Admins only", body = ErrorBody),
        AuthenticatedErrors,
    ),
    security(("bearer" = []))
)]
pub async fn cache_stats(
    State(state): State<GalleryState>,
    caller: Caller,
) -> Result<Json<CacheStatsView>, GalleryApiError> {
    caller.require_admin("read cache statistics")?;
    let cdn = match &state.ports.cdn_metrics {
        Some(metrics) => {
            let end = OffsetDateTime::now_utc();
            Some(metrics.cdn_metrics(end - CDN_WINDOW, end).await.map_err(ApiError::from)?.into())
        }
        None => None,
    };
    Ok(Json(CacheStatsView { routes: state.ports.cache.stats(), cdn }))
}
