//! The production pipeline in-process: one decode per photo, every default preset in every format,
//! plus the header-only probe. `cargo bench -p phoenix-bench [-- FILTER]`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use phoenix_bench::photo;
use phoenix_imaging::{ImageLimits, PresetSet, RenderOptions, probe, process};

/// Real photos of the three accepted formats (see `../shared/testdata/README.md`).
const PHOTOS: [&str; 3] = ["landscape-20mp.jpg", "alpha.png", "landscape.webp"];

fn process_default_presets(c: &mut Criterion) {
    let limits = ImageLimits::default();
    let presets = PresetSet::default();
    let options = RenderOptions::default();
    let mut group = c.benchmark_group("process");
    // Whole photos take from half a second to two seconds: few samples, of equal iteration counts.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(25));
    for name in PHOTOS {
        let bytes = photo(name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let processed = process(black_box(&bytes), &limits, &presets, None, &options)
                    .unwrap_or_else(|e| panic!("{name} was refused: {e}"));
                black_box(processed.renditions.len())
            })
        });
    }
    group.finish();
}

fn probe_header(c: &mut Criterion) {
    let limits = ImageLimits::default();
    let bytes = photo("landscape-20mp.jpg");
    c.bench_function("probe/landscape-20mp.jpg", |b| {
        b.iter(|| probe(black_box(&bytes), &limits).expect("landscape-20mp.jpg is a valid JPEG"))
    });
}

criterion_group!(benches, process_default_presets, probe_header);
criterion_main!(benches);
