//! The processor's configuration, from the environment with defaults.

use phoenix_domain::Limits;
use phoenix_domain::config::env_or;
use phoenix_imaging::PresetSet;

#[derive(Debug, Clone)]
pub struct Config {
    pub limits: Limits,
    pub presets: PresetSet,
    /// Records of one batch processed at once; each holds a decoded image in memory.
    pub concurrency: usize,
    /// Keep the GPS position in (admin-only) metadata. Off by default: models' whereabouts are private.
    pub keep_gps: bool,
    /// The ingest queue's deliveries of one message before its redrive moves it to the
    /// dead-letter queue (`maxReceiveCount` in template.yaml; the local queue's setting). The
    /// last of them does no image work: it only makes sure the media is not left `processing`
    /// (docs/architecture.md, "Claims and redelivery"). At least 2.
    pub max_receives: u32,
}

impl Config {
    pub const DEFAULT_MAX_RECEIVES: u32 = 5;

    /// Whether a delivery received this many times is the last the queue will make.
    pub fn is_last_delivery(&self, receive_count: u32) -> bool {
        self.max_receives >= 2 && receive_count >= self.max_receives
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            presets: PresetSet::default(),
            concurrency: 2,
            keep_gps: false,
            max_receives: Self::DEFAULT_MAX_RECEIVES,
        }
    }
}

impl Config {
    /// The limits' variables (`PHOENIX_MAX_UPLOAD_BYTES`, `PHOENIX_MAX_PIXELS`, `PHOENIX_MAX_SIDE`,
    /// …, see [`Limits::from_env`]), the presets from the file `PHOENIX_PRESETS_FILE` names
    /// (else the built-in set), `PHOENIX_KEEP_GPS` (default false),
    /// `PHOENIX_PROCESSOR_CONCURRENCY` (default 2) and `PHOENIX_INGEST_MAX_RECEIVES` (default 5,
    /// the queue's `maxReceiveCount`; at least 2).
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::default();
        let max_receives = env_or("PHOENIX_INGEST_MAX_RECEIVES", defaults.max_receives)?;
        anyhow::ensure!(
            max_receives >= 2,
            "PHOENIX_INGEST_MAX_RECEIVES must be at least 2: the last delivery only records a failure"
        );
        Ok(Self {
            limits: Limits::from_env()?,
            presets: presets_from_env()?,
            concurrency: env_or("PHOENIX_PROCESSOR_CONCURRENCY", defaults.concurrency)?,
            keep_gps: env_or("PHOENIX_KEEP_GPS", defaults.keep_gps)?,
            max_receives,
        })
    }
}

/// The presets from the file named by `PHOENIX_PRESETS_FILE`, else the built-in set.
fn presets_from_env() -> anyhow::Result<PresetSet> {
    match std::env::var("PHOENIX_PRESETS_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            PresetSet::from_file(path.trim()).map_err(|e| anyhow::anyhow!("PHOENIX_PRESETS_FILE {path}: {e}"))
        }
        _ => Ok(PresetSet::default()),
    }
}
