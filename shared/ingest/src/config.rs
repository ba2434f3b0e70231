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
}

impl Default for Config {
    fn default() -> Self {
        Self { limits: Limits::default(), presets: PresetSet::default(), concurrency: 2, keep_gps: false }
    }
}

impl Config {
    /// The limits' variables (`PHOENIX_MAX_UPLOAD_BYTES`, `PHOENIX_MAX_PIXELS`, `PHOENIX_MAX_SIDE`,
    /// …, see [`Limits::from_env`]), the presets from the file `PHOENIX_PRESETS_FILE` names
    /// (else the built-in set), `PHOENIX_KEEP_GPS` (default false) and
    /// `PHOENIX_PROCESSOR_CONCURRENCY` (default 2).
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::default();
        Ok(Self {
            limits: Limits::from_env()?,
            presets: presets_from_env()?,
            concurrency: env_or("PHOENIX_PROCESSOR_CONCURRENCY", defaults.concurrency)?,
            keep_gps: env_or("PHOENIX_KEEP_GPS", defaults.keep_gps)?,
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
