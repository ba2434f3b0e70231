//! Typed limits: configuration with defaults, checked before any work starts.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest original accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Largest decoded image accepted, in pixels (width x height).
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_side: u32,
    /// How long a presigned upload stays valid.
    pub upload_url_ttl: Duration,
    /// How long an `uploading` record waits for its bytes before it is treated as abandoned.
    pub abandoned_upload_after: Duration,
    /// How long a processor's claim on an original lasts before another delivery may take over:
    /// the time one delivery may take. The rule (docs/architecture.md, "Claims and redelivery"):
    /// equal to the processor's deadline — the Lambda's `Timeout` in AWS, the drain's visibility
    /// timeout locally — and never longer than the queue's visibility timeout, so that a
    /// redelivered message finds the claim of a dead delivery lapsed (or its own).
    pub processing_lease: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_side: 20_000,
            upload_url_ttl: Duration::from_secs(15 * 60),
            abandoned_upload_after: Duration::from_secs(7 * 24 * 3600),
            // template.yaml: the processor's `Timeout: 120` (a test in phoenix-ingest checks it).
            processing_lease: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

/// Reads an optional environment variable, parsed; absent means the default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError { name: name.to_owned(), message: format!("{raw:?} is not valid: {e}") }),
        _ => Ok(default),
    }
}

/// Refuses a zero where only a positive value makes sense.
fn positive(name: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError { name: name.to_owned(), message: "must be greater than zero".to_owned() });
    }
    Ok(value)
}

/// Reads a required environment variable.
pub fn env_required(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError { name: name.to_owned(), message: "is required".to_owned() }),
    }
}

impl Limits {
    /// Limits from `PHOENIX_MAX_UPLOAD_BYTES`, `PHOENIX_MAX_PIXELS`, `PHOENIX_MAX_SIDE`,
    /// `PHOENIX_UPLOAD_URL_TTL_SECS` and `PHOENIX_PROCESSING_LEASE_SECS`, each defaulting to
    /// [`Limits::default`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            max_upload_bytes: env_or("PHOENIX_MAX_UPLOAD_BYTES", d.max_upload_bytes)?,
            max_pixels: env_or("PHOENIX_MAX_PIXELS", d.max_pixels)?,
            max_side: env_or("PHOENIX_MAX_SIDE", d.max_side)?,
            upload_url_ttl: Duration::from_secs(env_or("PHOENIX_UPLOAD_URL_TTL_SECS", d.upload_url_ttl.as_secs())?),
            processing_lease: Duration::from_secs(positive(
                "PHOENIX_PROCESSING_LEASE_SECS",
                env_or("PHOENIX_PROCESSING_LEASE_SECS", d.processing_lease.as_secs())?,
            )?),
            ..d
        })
    }
}

/// The trash: how long a deleted media stays restorable, and how long the purge the trash sweep
/// queues waits before it runs. Read once, the same for the API (which stamps `purge_after` on
/// what it deletes) and the worker (whose reaper sweeps the trash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrashSettings {
    /// A deleted media is restorable this long, then purged (`PHOENIX_TRASH_GRACE_SECS`, default
    /// 7 days).
    pub grace: Duration,
    /// The delay of a queued purge (`PHOENIX_PURGE_DELAY_SECS`, default 60 s): longer than the
    /// sweep that queues it may take, so the purge finds the tombstone the sweep then writes (or,
    /// if that write failed, none, and does nothing).
    pub purge_delay: Duration,
}

impl TrashSettings {
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
    pub const DEFAULT_PURGE_DELAY: Duration = Duration::from_secs(60);

    /// From `PHOENIX_TRASH_GRACE_SECS` (greater than zero) and `PHOENIX_PURGE_DELAY_SECS` (at
    /// most 900, SQS's longest delay), each defaulting to [`TrashSettings::default`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let grace =
            positive("PHOENIX_TRASH_GRACE_SECS", env_or("PHOENIX_TRASH_GRACE_SECS", Self::DEFAULT_GRACE.as_secs())?)?;
        let purge_delay = env_or("PHOENIX_PURGE_DELAY_SECS", Self::DEFAULT_PURGE_DELAY.as_secs())?;
        if purge_delay > 900 {
            return Err(ConfigError {
                name: "PHOENIX_PURGE_DELAY_SECS".into(),
                message: "must be at most 900 (SQS's longest delay)".into(),
            });
        }
        Ok(Self { grace: Duration::from_secs(grace), purge_delay: Duration::from_secs(purge_delay) })
    }
}

impl Default for TrashSettings {
    fn default() -> Self {
        Self { grace: Self::DEFAULT_GRACE, purge_delay: Self::DEFAULT_PURGE_DELAY }
    }
}
