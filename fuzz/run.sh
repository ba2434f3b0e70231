#!/usr/bin/env bash
# Fuzzes the upload decoder (target `decode`: probe + process) for a bounded time; exits non-zero
# when libFuzzer finds a crash, leak, timeout or out-of-memory input (saved in fuzz/artifacts/decode/).
#
#   fuzz/run.sh [SECONDS]            default 60; extra libFuzzer flags in $FUZZ_ARGS
#
# Works on a stable toolchain: cargo-fuzz only needs nightly for its default sanitizer
# (`-Zsanitizer=address`). With `-s none` it passes only stable flags (SanitizerCoverage through
# `-Cpasses=sancov-module` and `-Cllvm-args`), and Rust code needs no AddressSanitizer to be
# memory-safe. FUZZ_SANITIZER=address asks for ASan (useful for the C codecs) and sets
# RUSTC_BOOTSTRAP=1 so that stable accepts the -Z flag (experimental: not what CI runs).
# libFuzzer itself is C++: needs a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never

seconds=${1:-60}
sanitizer=${FUZZ_SANITIZER:-none}

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if [ "$sanitizer" != none ] && ! rustc --version | grep -q -- -nightly; then
  export RUSTC_BOOTSTRAP=1
fi
# Start from the main workspace's versions of everything they share.
[ -f Cargo.lock ] || cp ../Cargo.lock Cargo.lock

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
# Seeds: the shared test files under 1 MB (photos within and beyond the limits below, and the
# hostile ones), plus tiny PNGs of each colour type, which are cheap to mutate and to run.
testdata=../../shared/testdata
if [ -d "$testdata" ]; then
  find "$testdata" -type f -size -1000k ! -name '*.md' -exec cp {} "$corpus/" \;
fi
python3 - "$corpus" <<'EOF'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(name, width, height, colour_type, depth, channels, extra=b""):
    row = bytes(range(width * channels * depth // 8))
    raw = b"".join(b"\x00" + row for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(f"{sys.argv[1]}/{name}.png", "wb").write(data)
png("tiny-grey", 7, 5, 0, 8, 1)
png("tiny-rgb", 9, 4, 2, 8, 3)
png("tiny-rgba", 6, 6, 6, 8, 4)
png("tiny-rgb16", 5, 3, 2, 16, 3)
png("tiny-palette", 8, 8, 3, 8, 1, chunk(b"PLTE", bytes(range(48)) * 16) + chunk(b"tRNS", bytes(range(0, 256, 16))))
EOF
echo "seed corpus: $(find "$corpus" -type f | wc -l) files" >&2

cargo fuzz build -s "$sanitizer" decode
# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
cargo fuzz run -s "$sanitizer" decode "$corpus" -- \
  -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=30 -max_len=262144 -print_final_stats=1 ${FUZZ_ARGS:-}
