//! What every gallery handler shares: its configuration and the ports, built once at start-up.

use std::sync::Arc;

use axum::extract::FromRef;
use phoenix_domain::config::{ConfigError, env_or};
use phoenix_domain::galleries::GalleryPorts;
use phoenix_domain::ports::CdnMetrics;
use phoenix_domain::shares::ShareKeys;
use phoenix_domain::{MetadataStore, ObjectStore};
use phoenix_http::AuthMode;

use crate::public::PublicCache;

/// The gallery routes' configuration: the same variables and defaults wherever they run.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// What published documents put before a derivative's key to make its URL: the CDN's
    /// origin in AWS (empty: `/derived/…`, relative to the page's own origin, which the CDN
    /// serves derivatives from too), the local server's base URL locally.
    pub media_base: String,
    /// The share links' signing keys (the first signs, all verify); without them share links
    /// cannot be made (503) and every `/s/{token}` is a 404.
    pub share_keys: Option<ShareKeys>,
    /// Where a share link's visitor's address comes from, for the access log's hash.
    pub client_address: ClientAddressSource,
}

/// Where the client's address is read. `X-Forwarded-For` is never believed: anyone can send it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAddressSource {
    /// The connection's peer (the local server), or API Gateway's `sourceIp`.
    #[default]
    Peer,
    /// `CloudFront-Viewer-Address` (`ip:port`), which CloudFront sets itself and the template's
    /// share-link origin request policy forwards; the peer when it is absent.
    CloudFrontViewer,
}

impl Config {
    /// `PHOENIX_PUBLIC_MEDIA_BASE` (default empty: relative URLs), `PHOENIX_SHARE_KEYS`
    /// (`kid:base64[,kid:base64…]`, optional here: the Lambda may read them from SSM, the local
    /// server makes one), `PHOENIX_CLIENT_ADDRESS` (`peer`, the default, or `cloudfront`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let share_keys = match env_or("PHOENIX_SHARE_KEYS", String::new())? {
            raw if raw.trim().is_empty() => None,
            raw => Some(
                ShareKeys::parse(&raw)
                    .map_err(|e| ConfigError { name: "PHOENIX_SHARE_KEYS".into(), message: e.to_string() })?,
            ),
        };
        let client_address = match env_or("PHOENIX_CLIENT_ADDRESS", "peer".to_owned())?.as_str() {
            "peer" => ClientAddressSource::Peer,
            "cloudfront" => ClientAddressSource::CloudFrontViewer,
            other => {
                return Err(ConfigError {
                    name: "PHOENIX_CLIENT_ADDRESS".into(),
                    message: format!("{other:?} must be peer or cloudfront"),
                });
            }
        };
        Ok(Self { media_base: env_or("PHOENIX_PUBLIC_MEDIA_BASE", String::new())?, share_keys, client_address })
    }
}

/// The ports the gallery routes use.
#[derive(Clone)]
pub struct GalleryRoutePorts {
    /// Galleries and the media records they hold.
    pub metadata: Arc<dyn MetadataStore>,
    /// Published documents and their pointers.
    pub objects: Arc<dyn ObjectStore>,
    /// The public routes' copy of the stored documents, and their counts.
    pub cache: Arc<PublicCache>,
    /// The publish queue: a change of a published gallery (a patch, a delete, a publish or
    /// rollback) asks the publisher to republish it and invalidate its CDN paths.
    pub queue: Arc<dyn phoenix_domain::Queue>,
    /// The CDN's own statistics (CloudWatch in AWS); absent locally, where the public routes'
    /// counts are the cache statistics.
    pub cdn_metrics: Option<Arc<dyn CdnMetrics>>,
}

#[derive(Clone)]
pub struct GalleryState {
    pub ports: GalleryRoutePorts,
    pub config: Arc<Config>,
    pub auth: AuthMode,
}

impl GalleryState {
    pub fn domain(&self) -> GalleryPorts<'_> {
        GalleryPorts {
            galleries: self.ports.metadata.as_ref(),
            media: self.ports.metadata.as_ref(),
            objects: self.ports.objects.as_ref(),
        }
    }
}

impl FromRef<GalleryState> for AuthMode {
    fn from_ref(state: &GalleryState) -> Self {
        state.auth.clone()
    }
}
