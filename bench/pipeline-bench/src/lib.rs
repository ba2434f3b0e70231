//! Benchmarks of `phoenix-imaging` (in `benches/`), outside that crate so they can change on their
//! own. Run them with `cargo bench -p phoenix-bench`; `bench/compare.sh` measures the whole
//! `phoenix-derive` process against sharp instead.

use std::path::PathBuf;

/// The shared test photos, kept outside the repository (`../shared/testdata/photos` from its root).
pub fn photos_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/photos")
}

/// The bytes of one test photo; panics with the path when it is missing.
pub fn photo(name: &str) -> Vec<u8> {
    let path = photos_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read the test photo {}: {e}", path.display()))
}
