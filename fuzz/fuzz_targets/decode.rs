//! Arbitrary bytes through the upload path: `probe`, then `process` with every default preset.
//!
//! Either may refuse the input, never panic out of it. The pipeline turns codec panics into
//! errors with `catch_unwind`; libfuzzer-sys's own panic hook would abort on those too, so it is
//! replaced by one that only records the message, and a crash is a panic that gets out.

#![no_main]

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{LazyLock, Once};

use libfuzzer_sys::fuzz_target;
use phoenix_imaging::{ImageLimits, PresetSet, RenderOptions, probe, process};

// Small limits keep each input to milliseconds, so the fuzzer explores headers and codecs instead of
// spending its time on legitimately large photos (whose limits the system tests cover).
const LIMITS: ImageLimits = ImageLimits { max_bytes: 1024 * 1024, max_pixels: 1_000_000, max_side: 2000 };

static PRESETS: LazyLock<PresetSet> = LazyLock::new(PresetSet::default);
static QUIET_HOOK: Once = Once::new();

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    QUIET_HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()))));
    });
    if panic::catch_unwind(AssertUnwindSafe(|| check(data))).is_err() {
        let message = LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| "unknown panic".into());
        eprintln!("a panic escaped the imaging crate: {message}");
        std::process::abort();
    }
});

fn check(data: &[u8]) {
    let probed = probe(data, &LIMITS);
    let processed = process(data, &LIMITS, &PRESETS, None, &RenderOptions::default());
    match (probed, processed) {
        (Err(_), Ok(_)) => panic!("process accepted what probe refused"),
        (Ok(probed), Ok(processed)) => {
            assert_eq!(probed, processed.probe, "process and probe disagree about the header");
            for r in &processed.renditions {
                assert!(r.width > 0 && r.height > 0 && !r.bytes.is_empty(), "an empty rendition: {r:?}");
                assert!(r.width <= probed.width && r.height <= probed.height, "an upscaled rendition: {r:?}");
            }
        }
        _ => {}
    }
}
