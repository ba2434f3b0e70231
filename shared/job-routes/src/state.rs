//! What every job handler shares: its configuration and the ports, built once at start-up.

use std::sync::Arc;

use axum::extract::FromRef;
use phoenix_domain::config::ConfigError;
use phoenix_domain::jobs::{Job, JobSettings};
use phoenix_domain::ports::{EventBus, LaneControl};
use phoenix_domain::{JobId, MetadataStore, ObjectStore, Queue, StoreError};
use phoenix_http::{ApiError, AuthMode, Caller};
use phoenix_media_routes::DerivativeLinks;

use crate::views::JobView;

/// The job routes' configuration: the same variables and defaults wherever they run.
#[derive(Debug, Clone)]
pub struct Config {
    /// How jobs run (stamped on each job at submission: attempts, fault injection).
    pub jobs: JobSettings,
    /// How the derivatives a job made are linked (as the media routes link them).
    pub links: DerivativeLinks,
}

impl Config {
    /// `JobSettings::from_env` and the media routes' derivative links
    /// (`PHOENIX_DERIVATIVE_URL_TTL_SECS`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { jobs: JobSettings::from_env()?, links: phoenix_media_routes::Config::from_env()?.links })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self { jobs: JobSettings::default(), links: phoenix_media_routes::Config::default().links }
    }
}

/// The ports the job routes use.
#[derive(Clone)]
pub struct JobPorts {
    /// Watermark profiles and logos; presigned derivative links.
    pub objects: Arc<dyn ObjectStore>,
    /// Jobs, idempotency records, and the media a job targets.
    pub metadata: Arc<dyn MetadataStore>,
    /// Knows the job lanes and their dead-letter queues.
    pub queue: Arc<dyn Queue>,
    pub events: Arc<dyn EventBus>,
    pub lanes: Arc<dyn LaneControl>,
}

#[derive(Clone)]
pub struct JobState {
    pub ports: JobPorts,
    pub config: Arc<Config>,
    pub auth: AuthMode,
}

impl FromRef<JobState> for AuthMode {
    fn from_ref(state: &JobState) -> Self {
        state.auth.clone()
    }
}

impl JobState {
    /// The job, if `caller` may see it: another model's job is "not found" (as one that does
    /// not exist), so ids never tell a model user what other models run.
    pub async fn visible_job(&self, caller: &Caller, id: &JobId) -> Result<Job, ApiError> {
        let not_found = || ApiError::NotFound(format!("job {id} not found"));
        let job = self.ports.metadata.get_job(id).await.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            other => other.into(),
        })?;
        caller.authorize(&job.model_id).map_err(|_| not_found())?;
        Ok(job)
    }

    /// A job as `caller` may see it, with its result's derivative links.
    pub async fn render(&self, caller: &Caller, job: &Job) -> Result<JobView, ApiError> {
        let derivatives = job.result.as_ref().map(|r| r.derivatives.as_slice()).unwrap_or_default();
        let mut urls = Vec::with_capacity(derivatives.len());
        for d in derivatives {
            urls.push(self.config.links.url(self.ports.objects.as_ref(), &d.key).await?);
        }
        Ok(JobView::new(job, urls, caller.is_admin()))
    }
}
