//! Cache warming: a freshly published document requested once through the CDN, so the first
//! visitor gets a hit. Best effort: a failure is only logged.

use std::time::Duration;

use async_trait::async_trait;

/// Requests one public path through the CDN.
#[async_trait]
pub trait Warmer: Send + Sync {
    async fn warm(&self, path: &str) -> anyhow::Result<()>;
}

/// GETs `{base}{path}` (the CDN's base URL, `https://dxxxx.cloudfront.net`) and reads the body,
/// so the CDN caches it. A short timeout: warming never holds up the queue.
pub struct HttpWarmer {
    client: reqwest::Client,
    base: String,
}

impl HttpWarmer {
    pub fn new(base: impl Into<String>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Self { client, base: base.into().trim_end_matches('/').to_owned() })
    }

    /// `PHOENIX_CDN_WARM` (`true`/`false`; default: true when `cdn_base` is known): a warmer for
    /// `cdn_base`, or `None`.
    pub fn from_env(cdn_base: Option<&str>) -> anyhow::Result<Option<Self>> {
        let raw = std::env::var("PHOENIX_CDN_WARM").unwrap_or_default();
        let enabled = match raw.trim() {
            "" => cdn_base.is_some(),
            "true" | "1" => true,
            "false" | "0" => false,
            other => anyhow::bail!("PHOENIX_CDN_WARM must be true or false, not {other:?}"),
        };
        match (enabled, cdn_base) {
            (true, Some(base)) => Ok(Some(Self::new(base)?)),
            (true, None) => {
                tracing::warn!("PHOENIX_CDN_WARM is true but no CDN is known: no cache warming");
                Ok(None)
            }
            (false, _) => Ok(None),
        }
    }
}

#[async_trait]
impl Warmer for HttpWarmer {
    async fn warm(&self, path: &str) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let response = self.client.get(&url).send().await?;
        let status = response.status();
        let cache = response.headers().get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        response.bytes().await?;
        anyhow::ensure!(status.is_success(), "GET {url}: {status}");
        tracing::info!(url, %status, x_cache = cache, "CDN warmed");
        Ok(())
    }
}
