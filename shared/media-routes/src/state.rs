//! What every media handler shares: its configuration and the ports, built once at start-up.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use phoenix_domain::config::{ConfigError, TrashSettings, env_or};
use phoenix_domain::{Limits, MetadataStore, ObjectKey, ObjectStore, Presigner, Queue};
use phoenix_http::{ApiError, AuthMode};

/// How derivative URLs are made for clients.
#[derive(Debug, Clone)]
pub enum DerivativeLinks {
    /// Served publicly under this base URL (the local server; the CDN in AWS, `PHOENIX_CDN_*`).
    PublicBase(String),
    /// Presigned GETs against the object store, valid this long.
    Presigned(Duration),
}

impl DerivativeLinks {
    /// The URL a client loads the derivative at `key` from. Every route crate that shows
    /// derivatives (media, versions, job results) makes its links here.
    pub async fn url(&self, objects: &dyn Presigner, key: &ObjectKey) -> Result<String, ApiError> {
        match self {
            Self::PublicBase(base) => Ok(format!("{}/{}", base.trim_end_matches('/'), key)),
            Self::Presigned(ttl) => Ok(objects.presign_get(key, *ttl).await?.url),
        }
    }
}

/// The media routes' configuration: the same variables and defaults wherever they run.
#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    pub links: DerivativeLinks,
    /// The trash: a delete stamps `purge_after` = now + its grace period.
    pub trash: TrashSettings,
}

impl Config {
    pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(3600);

    /// From the limits' variables, `PHOENIX_DERIVATIVE_URL_TTL_SECS` (presigned derivative
    /// links, default 3600) and the trash's ([`TrashSettings::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            limits: Limits::from_env()?,
            links: DerivativeLinks::Presigned(Duration::from_secs(env_or(
                "PHOENIX_DERIVATIVE_URL_TTL_SECS",
                Self::DEFAULT_LINK_TTL.as_secs(),
            )?)),
            trash: TrashSettings::from_env()?,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            links: DerivativeLinks::Presigned(Self::DEFAULT_LINK_TTL),
            trash: TrashSettings::default(),
        }
    }
}

/// The ports the media routes use.
#[derive(Clone)]
pub struct MediaPorts {
    pub objects: Arc<dyn ObjectStore>,
    pub metadata: Arc<dyn MetadataStore>,
    /// Where maintenance commands go (the processor's ingest queue).
    pub queue: Arc<dyn Queue>,
}

#[derive(Clone)]
pub struct MediaState {
    pub ports: MediaPorts,
    pub config: Arc<Config>,
    pub auth: AuthMode,
}

impl FromRef<MediaState> for AuthMode {
    fn from_ref(state: &MediaState) -> Self {
        state.auth.clone()
    }
}

impl MediaState {
    pub async fn derivative_url(&self, key: &ObjectKey) -> Result<String, ApiError> {
        self.config.links.url(self.ports.objects.as_ref(), key).await
    }
}
