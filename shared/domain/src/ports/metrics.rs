//! The CDN's own statistics, for `GET /v1/cache/stats`: in AWS the distribution's CloudWatch
//! metrics (`AWS/CloudFront`, us-east-1); locally there is no CDN, and the public routes' counts
//! stand in.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::StoreResult;

/// The distribution's figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdnMetricsReport {
    pub distribution_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// Requests over the window (sum); absent when CloudWatch has no data points.
    pub requests: Option<f64>,
    /// Percentages over the window (the average of the data points).
    pub cache_hit_rate: Option<f64>,
    pub error_4xx_rate: Option<f64>,
    pub error_5xx_rate: Option<f64>,
}

#[async_trait]
pub trait CdnMetrics: Send + Sync {
    /// The distribution's requests, cache hit rate and error rates between `start` and `end`.
    async fn cdn_metrics(&self, start: OffsetDateTime, end: OffsetDateTime) -> StoreResult<CdnMetricsReport>;
}
