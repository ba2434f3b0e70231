//! The HTTP API of phoenix4ge media as deployed: every route crate merged into one axum router
//! that `lambda_http::run` serves in AWS and the local server mounts unchanged, behind the
//! common layers of `phoenix-http`, plus health and the one OpenAPI document of the whole API.
//! [`build`] is the wiring that the Lambda's `main.rs`, the local server and the tests all call.

pub mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
pub use phoenix_domain::batches::BatchLimits;
use phoenix_domain::config::{ConfigError, TrashSettings};
pub use phoenix_domain::jobs::JobSettings;
use phoenix_domain::ports::{CdnMetrics, EventBus, LaneControl};
use phoenix_domain::{Limits, MetadataStore, ObjectStore, Queue};
pub use phoenix_http::{ApiError, AuthMode, Caller, DevClaims, Role};
pub use phoenix_media_routes::DerivativeLinks;
use serde::Serialize;
use utoipa::ToSchema;

/// The API's configuration: the same variables and defaults wherever it runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    /// How derivative URLs are made (media, versions, job results).
    pub links: DerivativeLinks,
    /// The trash's grace period (stamped on what a delete moves there) and purge delay.
    pub trash: TrashSettings,
    /// How jobs run: stamped on each job at submission (attempts, fault injection).
    pub jobs: JobSettings,
    /// How many batches may be queued or running at once, per model and in all.
    pub batches: BatchLimits,
    /// How published gallery documents link derivatives (`PHOENIX_PUBLIC_MEDIA_BASE`; when
    /// empty and `links` is a public base, that base).
    pub galleries: phoenix_gallery_routes::Config,
}

impl Config {
    /// The media routes' variables (`phoenix_media_routes::Config::from_env`), the jobs'
    /// (`JobSettings::from_env`) and the batches' limits (`PHOENIX_BATCHES_PER_MODEL`,
    /// `PHOENIX_BATCHES_TOTAL`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let media = phoenix_media_routes::Config::from_env()?;
        Ok(Self {
            limits: media.limits,
            links: media.links,
            trash: media.trash,
            jobs: JobSettings::from_env()?,
            batches: phoenix_batch_routes::Config::from_env()?.limits,
            galleries: phoenix_gallery_routes::Config::from_env()?,
        })
    }

    fn media(&self) -> phoenix_media_routes::Config {
        phoenix_media_routes::Config { limits: self.limits.clone(), links: self.links.clone(), trash: self.trash }
    }

    fn batch_routes(&self) -> phoenix_batch_routes::Config {
        phoenix_batch_routes::Config { limits: self.batches }
    }

    /// What published documents put before a derivative's key ([`Self::gallery_routes`]): what
    /// the publisher must use too, so that a republish changes only what changed.
    pub fn gallery_media_base(&self) -> String {
        self.gallery_routes().media_base
    }

    /// Published documents link derivatives under the configured base, else where the media
    /// routes do when that is a public base (the local server), else relative to the page.
    fn gallery_routes(&self) -> phoenix_gallery_routes::Config {
        let mut config = self.galleries.clone();
        if let (true, DerivativeLinks::PublicBase(base)) = (config.media_base.is_empty(), &self.links) {
            config.media_base = base.clone();
        }
        config
    }

    fn job_routes(&self) -> phoenix_job_routes::Config {
        phoenix_job_routes::Config { jobs: self.jobs.clone(), links: self.links.clone() }
    }
}

impl Default for Config {
    fn default() -> Self {
        let media = phoenix_media_routes::Config::default();
        Self {
            limits: media.limits,
            links: media.links,
            trash: media.trash,
            jobs: JobSettings::default(),
            batches: BatchLimits::default(),
            galleries: phoenix_gallery_routes::Config::default(),
        }
    }
}

/// Every port the API uses, built once at start-up.
#[derive(Clone)]
pub struct Ports {
    pub objects: Arc<dyn ObjectStore>,
    pub metadata: Arc<dyn MetadataStore>,
    /// One queue adapter that knows the ingest queue (maintenance commands), the job lanes
    /// (submit, retry, redrive), the lanes' dead-letter queues (statistics, redrive) and the
    /// batches queue (a batch's chunks).
    pub queue: Arc<dyn Queue>,
    /// Where job lifecycle events go.
    pub events: Arc<dyn EventBus>,
    /// Pauses and resumes the lanes' workers.
    pub lanes: Arc<dyn LaneControl>,
    /// The CDN's CloudWatch figures for `GET /v1/cache/stats` (AWS); `None` without a CDN.
    pub cdn_metrics: Option<Arc<dyn CdnMetrics>>,
}

/// The whole API on these ports, authenticating callers by `auth`.
pub fn build(config: Config, ports: Ports, auth: AuthMode) -> Router {
    let system = Router::new().route("/v1/health", get(health)).route("/openapi.json", get(openapi_json));
    let media = phoenix_media_routes::MediaPorts {
        objects: ports.objects.clone(),
        metadata: ports.metadata.clone(),
        queue: ports.queue.clone(),
    };
    let batches = phoenix_batch_routes::BatchRoutePorts {
        metadata: ports.metadata.clone(),
        queue: ports.queue.clone(),
        events: ports.events.clone(),
    };
    let galleries = phoenix_gallery_routes::GalleryRoutePorts {
        metadata: ports.metadata.clone(),
        objects: ports.objects.clone(),
        cache: Arc::new(phoenix_gallery_routes::PublicCache::default()),
        queue: ports.queue.clone(),
        cdn_metrics: ports.cdn_metrics.clone(),
    };
    let jobs = phoenix_job_routes::JobPorts {
        objects: ports.objects,
        metadata: ports.metadata,
        queue: ports.queue,
        events: ports.events,
        lanes: ports.lanes,
    };
    phoenix_http::finish(
        system
            .merge(phoenix_media_routes::routes(config.media(), media, auth.clone()))
            .merge(phoenix_job_routes::routes(config.job_routes(), jobs, auth.clone()))
            .merge(phoenix_batch_routes::routes(config.batch_routes(), batches, auth.clone()))
            .merge(phoenix_gallery_routes::routes(config.gallery_routes(), galleries, auth)),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: answers without auth.
#[utoipa::path(get, path = "/v1/health", tag = "system", responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// The OpenAPI document of this API (no auth).
async fn openapi_json() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi::document())
}
