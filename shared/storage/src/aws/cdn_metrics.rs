//! [`CdnMetrics`] from CloudWatch: the distribution's `Requests` (sum), `CacheHitRate`,
//! `4xxErrorRate` and `5xxErrorRate` (averages) in namespace `AWS/CloudFront`, dimensions
//! `DistributionId` and `Region=Global`, with one `GetMetricData` call. CloudFront publishes them
//! in us-east-1 whatever the stack's region; the hit rate and error rates need the
//! distribution's additional metrics (the template's monitoring subscription).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use phoenix_domain::ports::{CdnMetrics, CdnMetricsReport, StoreError, StoreResult};
use time::OffsetDateTime;

use super::classify;

/// The region CloudFront's metrics live in.
pub const CLOUDFRONT_METRICS_REGION: &str = "us-east-1";
const NAMESPACE: &str = "AWS/CloudFront";

#[derive(Debug, Clone)]
pub struct CloudWatchCdnMetrics {
    client: aws_sdk_cloudwatch::Client,
    distribution_id: String,
}

/// One query of the call: its id, metric and statistic.
const QUERIES: [(&str, &str, &str); 4] = [
    ("requests", "Requests", "Sum"),
    ("hits", "CacheHitRate", "Average"),
    ("e4xx", "4xxErrorRate", "Average"),
    ("e5xx", "5xxErrorRate", "Average"),
];

impl CloudWatchCdnMetrics {
    /// The metrics of `distribution_id`, read in us-east-1 (with `config`'s credentials and
    /// endpoint).
    pub fn new(config: &SdkConfig, distribution_id: impl Into<String>) -> Self {
        let config = aws_sdk_cloudwatch::config::Builder::from(config)
            .region(aws_sdk_cloudwatch::config::Region::new(CLOUDFRONT_METRICS_REGION))
            .build();
        Self { client: aws_sdk_cloudwatch::Client::from_conf(config), distribution_id: distribution_id.into() }
    }

    pub fn client(&self) -> &aws_sdk_cloudwatch::Client {
        &self.client
    }

    fn query(&self, id: &str, metric: &str, stat: &str, period: i32) -> MetricDataQuery {
        let dimensions = [("DistributionId", self.distribution_id.as_str()), ("Region", "Global")]
            .map(|(name, value)| Dimension::builder().name(name).value(value).build());
        let metric =
            Metric::builder().namespace(NAMESPACE).metric_name(metric).set_dimensions(Some(dimensions.to_vec()));
        let stat = MetricStat::builder().metric(metric.build()).period(period).stat(stat).build();
        MetricDataQuery::builder().id(id).metric_stat(stat).return_data(true).build()
    }
}

fn instant(at: OffsetDateTime) -> DateTime {
    DateTime::from_secs(at.unix_timestamp())
}

#[async_trait]
impl CdnMetrics for CloudWatchCdnMetrics {
    async fn cdn_metrics(&self, start: OffsetDateTime, end: OffsetDateTime) -> StoreResult<CdnMetricsReport> {
        if end <= start {
            return Err(StoreError::Invalid("the metrics window must end after it starts".into()));
        }
        // One data point per 5 minutes (CloudWatch's finest period for these metrics is 1 min).
        let period = 300;
        let mut values: [Vec<f64>; 4] = Default::default();
        let mut next = None;
        loop {
            let output = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(
                    QUERIES.iter().map(|(id, metric, stat)| self.query(id, metric, stat, period)).collect(),
                ))
                .start_time(instant(start))
                .end_time(instant(end))
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classify("cloudwatch GetMetricData", e))?;
            for result in output.metric_data_results() {
                if let Some(at) = QUERIES.iter().position(|(id, _, _)| Some(*id) == result.id()) {
                    values[at].extend(result.values());
                }
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => break,
            }
        }
        let sum = |v: &Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>());
        let mean = |v: &Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        Ok(CdnMetricsReport {
            distribution_id: self.distribution_id.clone(),
            start,
            end,
            requests: sum(&values[0]),
            cache_hit_rate: mean(&values[1]),
            error_4xx_rate: mean(&values[2]),
            error_5xx_rate: mean(&values[3]),
        })
    }
}
