//! The CDN in front of published galleries, share links and derivatives: when what a cached path
//! shows changes, the path is invalidated. A change set (a gallery republished, say) is one
//! [`Invalidation`] — one request however many paths it names — and carries a caller reference
//! that makes it idempotent: a redelivered message asks again with the same reference and
//! invalidates nothing twice.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;

/// Paths one invalidation may name: CloudFront's limit on file paths in progress at once.
pub const MAX_PATHS: usize = 3_000;
/// Wildcard paths (`/g/*`) one invalidation may name: CloudFront's limit on wildcard paths in
/// progress at once.
pub const MAX_WILDCARDS: usize = 15;
/// Longest path accepted (our bound; the paths we invalidate are short).
pub const MAX_PATH_LEN: usize = 1_024;
/// Longest caller reference accepted (our bound).
pub const MAX_REFERENCE_LEN: usize = 128;
/// How long to wait after [`CdnError::TooManyInProgress`] before asking again: invalidations
/// usually finish within a minute or two.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A path as the CDN's cache knows it: `/` then URL-safe ASCII (already percent-encoded where
/// needed), optionally ending in `*` to name every path with that prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CdnPath(String);

impl CdnPath {
    pub fn parse(raw: &str) -> Result<Self, CdnError> {
        let invalid = |why: &str| CdnError::Invalid(format!("CDN path {raw:?} {why}"));
        if !raw.starts_with('/') {
            return Err(invalid("must start with '/'"));
        }
        if raw.len() > MAX_PATH_LEN {
            return Err(invalid(&format!("is longer than {MAX_PATH_LEN} characters")));
        }
        // RFC 3986's unreserved and sub-delimiter characters, '/', ':', '@', '?' and '%' (for
        // percent-encoded bytes); nothing the CDN would have to encode itself.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/!$&'()+,;=:@%?".contains(c);
        let body = raw.strip_suffix('*').unwrap_or(raw);
        if let Some(bad) = body.chars().find(|&c| !allowed(c)) {
            let why = if bad == '*' { "may only end in '*'".to_owned() } else { format!("contains {bad:?}") };
            return Err(invalid(&why));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Whether it names every path with its prefix (`/g/*`).
    pub fn is_wildcard(&self) -> bool {
        self.0.ends_with('*')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CdnPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names one change set, so that asking twice for it invalidates once (CloudFront's
/// `CallerReference`): the same change set must always carry the same reference (e.g.
/// `gallery-{gallery_id}-v{published_version}`), and another change set another one.
/// 1 to 128 characters of A-Z, a-z, 0-9, '-', '_', '.' and ':'.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct CallerReference(String);

impl CallerReference {
    pub fn parse(raw: &str) -> Result<Self, CdnError> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_REFERENCE_LEN
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !ok {
            return Err(CdnError::Invalid(format!(
                "caller reference {raw:?} must be 1 to {MAX_REFERENCE_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.' or ':'"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallerReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One change set's paths, invalidated in one request: 1 to [`MAX_PATHS`] distinct paths, at
/// most [`MAX_WILDCARDS`] of them wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    reference: CallerReference,
    paths: BTreeSet<CdnPath>,
}

impl Invalidation {
    pub fn new(reference: CallerReference, paths: impl IntoIterator<Item = CdnPath>) -> Result<Self, CdnError> {
        let paths: BTreeSet<CdnPath> = paths.into_iter().collect();
        if paths.is_empty() {
            return Err(CdnError::Invalid("an invalidation names at least one path".to_owned()));
        }
        if paths.len() > MAX_PATHS {
            return Err(CdnError::Invalid(format!(
                "an invalidation names at most {MAX_PATHS} paths, not {}",
                paths.len()
            )));
        }
        let wildcards = paths.iter().filter(|p| p.is_wildcard()).count();
        if wildcards > MAX_WILDCARDS {
            return Err(CdnError::Invalid(format!(
                "an invalidation names at most {MAX_WILDCARDS} wildcard paths, not {wildcards}"
            )));
        }
        Ok(Self { reference, paths })
    }

    pub fn reference(&self) -> &CallerReference {
        &self.reference
    }

    /// Distinct, in order.
    pub fn paths(&self) -> &BTreeSet<CdnPath> {
        &self.paths
    }
}

#[async_trait]
pub trait Cdn: Send + Sync {
    /// Asks the CDN to drop what it cached under the invalidation's paths, in one request, and
    /// returns the CDN's id of the invalidation (it completes in the background, within minutes).
    /// Idempotent on the reference: asked again with the same reference and paths, it returns the
    /// first request's id and invalidates nothing twice; the same reference with other paths is
    /// `Invalid`.
    async fn invalidate(&self, invalidation: &Invalidation) -> Result<String, CdnError>;
}

/// What an invalidation can fail with. `TooManyInProgress` and `Unavailable` are transient (ask
/// again later, with the same reference); `Invalid` and `Internal` are final.
#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    /// The CDN has as many invalidations in progress as it allows (CloudFront's
    /// `TooManyInvalidationsInProgress`): ask again once some have finished
    /// ([`BUSY_RETRY_AFTER`]).
    #[error("too many invalidations in progress: {0:#}")]
    TooManyInProgress(#[source] anyhow::Error),
    /// Throttled, unreachable, failing, or a deployment problem an operator must fix (no such
    /// distribution, access denied): ask again later.
    #[error("CDN unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
    /// The request must change (a bad path, too many paths, a reference reused for other paths);
    /// asked again as it is, it fails again.
    #[error("invalid invalidation: {0}")]
    Invalid(String),
    /// Our fault (a request that cannot be built); a retry will not cure it.
    #[error("internal CDN error: {0:#}")]
    Internal(#[source] anyhow::Error),
}

impl CdnError {
    /// Whether the same invalidation may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::TooManyInProgress(_) | Self::Unavailable(_))
    }

    /// How long to wait before asking again, when the CDN says so.
    pub fn retry_after(&self) -> Option<Duration> {
        matches!(self, Self::TooManyInProgress(_)).then_some(BUSY_RETRY_AFTER)
    }
}

/// For callers that report every port's errors as [`StoreError`] (queue handlers retry exactly its
/// `Unavailable`).
impl From<CdnError> for StoreError {
    fn from(e: CdnError) -> Self {
        match e {
            CdnError::TooManyInProgress(e) => StoreError::Unavailable(e.context("too many invalidations in progress")),
            CdnError::Unavailable(e) => StoreError::Unavailable(e),
            CdnError::Invalid(message) => StoreError::Invalid(message),
            CdnError::Internal(e) => StoreError::Internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> CdnPath {
        CdnPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn paths_are_absolute_url_safe_and_wildcards_only_at_the_end() {
        for good in ["/", "/g/summer-2025", "/v1/public/galleries/01jd3k6v2q8m3y7x9t0b5n4c2a", "/g/*", "/s/a%20b?x=1"] {
            assert_eq!(path(good).as_str(), good);
        }
        assert!(path("/g/*").is_wildcard());
        assert!(!path("/g/x").is_wildcard());
        for bad in ["", "g/x", "/g/*/x", "/g x", "/g/\u{e9}", "/g/<x>", "/g/#x", "/g/\n"] {
            assert!(matches!(CdnPath::parse(bad), Err(CdnError::Invalid(_))), "{bad:?} is refused");
        }
        assert!(CdnPath::parse(&format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
    }

    #[test]
    fn references_are_short_plain_ascii() {
        assert!(CallerReference::parse("gallery-01jd3k6v2q8m3y7x9t0b5n4c2a-v12").is_ok());
        for bad in ["", "a b", "a/b", &"a".repeat(MAX_REFERENCE_LEN + 1)] {
            assert!(CallerReference::parse(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn an_invalidation_is_a_bounded_set_of_distinct_paths() {
        let reference = CallerReference::parse("r1").unwrap();
        let one = Invalidation::new(reference.clone(), [path("/g/b"), path("/g/a"), path("/g/b")]).unwrap();
        assert_eq!(one.paths().iter().map(CdnPath::as_str).collect::<Vec<_>>(), ["/g/a", "/g/b"]);
        assert!(Invalidation::new(reference.clone(), []).is_err());
        let many = (0..=MAX_PATHS).map(|n| path(&format!("/g/{n}")));
        assert!(Invalidation::new(reference.clone(), many).is_err());
        let wild = (0..=MAX_WILDCARDS).map(|n| path(&format!("/g/{n}/*")));
        assert!(Invalidation::new(reference, wild).is_err());
    }

    #[test]
    fn busy_and_unavailable_are_transient_and_map_to_unavailable() {
        let busy = CdnError::TooManyInProgress(anyhow::anyhow!("busy"));
        assert!(busy.is_transient());
        assert_eq!(busy.retry_after(), Some(BUSY_RETRY_AFTER));
        assert!(StoreError::from(busy).is_transient());
        assert!(CdnError::Unavailable(anyhow::anyhow!("down")).is_transient());
        assert!(!CdnError::Invalid("x".into()).is_transient());
        assert!(matches!(StoreError::from(CdnError::Invalid("x".into())), StoreError::Invalid(_)));
        assert!(!StoreError::from(CdnError::Internal(anyhow::anyhow!("bug"))).is_transient());
    }
}
