//! What every handler shares: the ports (built once at start-up), limits and auth mode.

use std::sync::Arc;
use std::time::Duration;

use phoenix_domain::{Limits, MetadataStore, ObjectKey, ObjectStore, Queue};

use crate::auth::AuthMode;
use crate::error::ApiError;

/// How derivative URLs are made for clients.
#[derive(Debug, Clone)]
pub enum DerivativeLinks {
    /// Served publicly under this base URL (the local server; later, the CDN).
    PublicBase(String),
    /// Presigned GETs against the object store, valid this long.
    Presigned(Duration),
}

#[derive(Clone)]
pub struct AppState {
    pub objects: Arc<dyn ObjectStore>,
    pub metadata: Arc<dyn MetadataStore>,
    pub limits: Limits,
    pub auth: AuthMode,
    pub links: DerivativeLinks,
    /// Where maintenance commands go (the processor's ingest queue).
    pub queue: Arc<dyn Queue>,
    /// How long a purge waits before it runs: longer than a request can take, so a delete that
    /// fails after the purge was queued is seen by the purge as not having happened.
    pub purge_delay: Duration,
}

impl AppState {
    pub async fn derivative_url(&self, key: &ObjectKey) -> Result<String, ApiError> {
        match &self.links {
            DerivativeLinks::PublicBase(base) => Ok(format!("{}/{}", base.trim_end_matches('/'), key)),
            DerivativeLinks::Presigned(ttl) => Ok(self.objects.presign_get(key, *ttl).await?.url),
        }
    }
}
