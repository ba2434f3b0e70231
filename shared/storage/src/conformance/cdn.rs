//! The CDN port's contract ([`cdn_suite`]): one request per change set, the paths and reference
//! it was given reach the CDN as they are, each change set its own invalidation.

use async_trait::async_trait;
use phoenix_domain::ports::{CallerReference, Cdn, CdnPath, Invalidation};

use super::run_id;

/// What the CDN itself holds for an invalidation, as its caller reference and paths (sorted);
/// `None` if it does not know the id.
#[async_trait]
pub trait SeenInvalidations: Send + Sync {
    async fn seen(&self, id: &str) -> Option<(String, Vec<String>)>;
}

fn path(raw: &str) -> CdnPath {
    CdnPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

/// A change set's paths reach the CDN in one invalidation with its reference; another change set
/// is another invalidation. (Idempotency on the reference is CloudFront's own and the local
/// adapter's; the emulator does not keep it, so adapters test it where it holds.)
pub async fn cdn_suite(cdn: &dyn Cdn, seen: &dyn SeenInvalidations) {
    let run = run_id();
    let gallery = format!("/v1/public/galleries/{run}");
    let page = format!("/g/summer-{run}");
    let first = Invalidation::new(
        CallerReference::parse(&format!("gallery-{run}-v1")).expect("a reference"),
        [path(&gallery), path(&page), path(&gallery), path(&format!("/s/{run}/*"))],
    )
    .expect("an invalidation");
    let id = cdn.invalidate(&first).await.unwrap_or_else(|e| panic!("invalidate: {e}"));
    assert!(!id.is_empty(), "the CDN names the invalidation");
    let mut want: Vec<String> = first.paths().iter().map(|p| p.as_str().to_owned()).collect();
    want.sort();
    assert_eq!(want.len(), 3, "the paths are distinct");
    match seen.seen(&id).await {
        Some((reference, mut paths)) => {
            paths.sort();
            assert_eq!(reference, first.reference().as_str(), "the caller reference reaches the CDN");
            assert_eq!(paths, want, "the paths reach the CDN as given, in one invalidation");
        }
        None => panic!("the CDN does not know invalidation {id}"),
    }

    let second =
        Invalidation::new(CallerReference::parse(&format!("gallery-{run}-v2")).expect("a reference"), [path(&gallery)])
            .expect("an invalidation");
    let other = cdn.invalidate(&second).await.unwrap_or_else(|e| panic!("invalidate a second change set: {e}"));
    assert_ne!(other, id, "another change set is another invalidation");
    let (reference, paths) = seen.seen(&other).await.expect("the second invalidation is known");
    assert_eq!((reference.as_str(), paths), (second.reference().as_str(), vec![gallery.clone()]));
}
