//! What every batch handler shares: its configuration and the ports, built once at start-up.

use std::sync::Arc;

use axum::extract::FromRef;
use phoenix_domain::batches::{Batch, BatchLimits};
use phoenix_domain::config::{ConfigError, env_or};
use phoenix_domain::{BatchId, MetadataStore, Queue, StoreError};
use phoenix_http::{ApiError, AuthMode, Caller};

/// The batch routes' configuration: the same variables and defaults wherever they run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    /// How many batches may run at once, per model and in all.
    pub limits: BatchLimits,
}

impl Config {
    /// `PHOENIX_BATCHES_PER_MODEL` (default 3) and `PHOENIX_BATCHES_TOTAL` (default 20): the
    /// same variables the batch worker reads for back-office submissions.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = BatchLimits::default();
        Ok(Self {
            limits: BatchLimits {
                per_model: env_or("PHOENIX_BATCHES_PER_MODEL", d.per_model)?,
                total: env_or("PHOENIX_BATCHES_TOTAL", d.total)?,
            },
        })
    }
}

/// The ports the batch routes use.
#[derive(Clone)]
pub struct BatchRoutePorts {
    /// Batches, their chunks and their items' outcomes; the media a filter selects; idempotency keys.
    pub metadata: Arc<dyn MetadataStore>,
    /// Knows the batches queue: one message a chunk.
    pub queue: Arc<dyn Queue>,
    /// Where `batch.submitted` goes.
    pub events: Arc<dyn phoenix_domain::ports::EventBus>,
}

#[derive(Clone)]
pub struct BatchState {
    pub ports: BatchRoutePorts,
    pub config: Arc<Config>,
    pub auth: AuthMode,
}

impl FromRef<BatchState> for AuthMode {
    fn from_ref(state: &BatchState) -> Self {
        state.auth.clone()
    }
}

impl BatchState {
    /// The batch, if `caller` may see it: another model's batch is "not found" (as one that does
    /// not exist), so ids never tell a model user what other models run.
    pub async fn visible_batch(&self, caller: &Caller, id: &BatchId) -> Result<Batch, ApiError> {
        let not_found = || ApiError::NotFound(format!("batch {id} not found"));
        let batch = self.ports.metadata.get_batch(id).await.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            other => other.into(),
        })?;
        caller.authorize(&batch.model_id).map_err(|_| not_found())?;
        Ok(batch)
    }
}
