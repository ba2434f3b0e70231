#!/usr/bin/env bash
# phoenix-derive against sharp, on one core: wall time and peak memory of the whole job (read one
# photo, write every rendition of every preset plus metadata.json), process start included.
#
#   bench/compare.sh [-n RUNS] [--presets FILE] [INPUT...]
#
# Default inputs: ../shared/testdata/photos/{landscape-20mp.jpg,alpha.png,landscape.webp} plus a
# 24 MP and a 50 MP JPEG made from landscape-20mp.jpg with sharp in the temporary folder. Each
# command runs once to warm up, then RUNS times (default 7, or $RUNS), the two alternating, pinned
# to CPU 0 (`taskset -c 0`) and measured with `/usr/bin/time -f '%e %M'`; without those two tools
# a python3 stand-in does the same (sched_setaffinity, wait4). Needs node/npm, cargo and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

SHARP_VERSION=0.35.5
runs=${RUNS:-7}
presets=shared/imaging/presets.json
inputs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) runs=$2; shift 2 ;;
    --presets) presets=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) inputs+=("$1"); shift ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive number, not '$runs'" >&2; exit 2; }
[ -f "$presets" ] || { echo "no presets file at $presets" >&2; exit 2; }
presets=$(cd "$(dirname "$presets")" && pwd)/$(basename "$presets")

step() { printf '\n==> %s\n' "$*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "sharp $SHARP_VERSION (npm, into a temporary folder)"
(cd "$work" && npm install --silent --no-audit --no-fund --no-save "sharp@$SHARP_VERSION" >&2)
export NODE_PATH="$work/node_modules"
node -e "const s = require('sharp'); console.error('sharp', s.versions.sharp, 'libvips', s.versions.vips)"

step "phoenix-derive (cargo build --release)"
cargo build --release -p phoenix-imaging --bin phoenix-derive >&2
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
ours="$target_dir/release/phoenix-derive"
[ -x "$ours" ] || { echo "no binary at $ours" >&2; exit 1; }

if [ ${#inputs[@]} -eq 0 ]; then
  photos=../shared/testdata/photos
  step "making the 24 MP and 50 MP JPEGs from landscape-20mp.jpg"
  # Upscaled and cropped to 3:2; quality 90, 4:2:0, baseline: like a camera's JPEG, if smoother.
  node -e '
    const sharp = require("sharp");
    const [src, dir] = process.argv.slice(1);
    const make = (w, h, name) => sharp(src).resize(w, h, { fit: "cover" })
      .jpeg({ quality: 90, chromaSubsampling: "4:2:0", mozjpeg: false }).toFile(`${dir}/${name}`);
    Promise.all([make(6000, 4000, "jpeg-24mp.jpg"), make(8660, 5774, "jpeg-50mp.jpg")])
      .catch((e) => { console.error(e); process.exit(1); });
  ' "$photos/landscape-20mp.jpg" "$work"
  inputs=("$photos/landscape-20mp.jpg" "$work/jpeg-24mp.jpg" "$work/jpeg-50mp.jpg" "$photos/alpha.png"
    "$photos/landscape.webp")
fi

# The measured environment: one core, one worker thread in every pool.
export UV_THREADPOOL_SIZE=1 RAYON_NUM_THREADS=1
if command -v taskset >/dev/null && [ -x /usr/bin/time ]; then
  method="taskset -c 0 + /usr/bin/time"
else
  method="python3 (sched_setaffinity + wait4)"
fi

# measure OUT_DIR CMD...: runs CMD on CPU 0 with a fresh OUT_DIR; prints "wall_seconds peak_rss_kib".
measure() {
  local out=$1
  shift
  rm -rf "$out"
  mkdir -p "$out"
  if [ "$method" = "python3 (sched_setaffinity + wait4)" ]; then
    python3 - "$work/log" "$@" <<'EOF'
import os, sys, time
log, cmd = sys.argv[1], sys.argv[2:]
os.sched_setaffinity(0, {0})
with open(log, "wb") as out:
    start = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                                                               (os.POSIX_SPAWN_DUP2, out.fileno(), 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
if os.waitstatus_to_exitcode(status) != 0:
    sys.exit(1)
print(f"{wall:.6f} {usage.ru_maxrss}")
EOF
  else
    local start end
    start=$(date +%s%N)
    taskset -c 0 /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/log" 2>&1 || return 1
    end=$(date +%s%N)
    # %e only has 10 ms resolution: the wall time is taken around the same call, in nanoseconds.
    printf '%s %s\n' "$(((end - start) / 1000))e-6" "$(tail -n 1 "$work/time" | cut -d' ' -f2)"
  fi
}

run_side() {
  local side=$1 input=$2
  if [ "$side" = ours ]; then
    measure "$work/out-ours" "$ours" "$input" "$work/out-ours" --presets "$presets"
  else
    measure "$work/out-sharp" node bench/sharp/derive.mjs "$input" "$work/out-sharp" --presets "$presets"
  fi
}

printf '\nphoenix-derive vs sharp %s: %s runs each after a warm-up, on CPU 0 (%s), %s\n' \
  "$SHARP_VERSION" "$runs" "$method" "$(date -u +%Y-%m-%d)"
for input in "${inputs[@]}"; do
  [ -f "$input" ] || { echo "no such input: $input" >&2; exit 2; }
  results="$work/results.tsv"
  : >"$results"
  for side in ours sharp; do
    run_side "$side" "$input" >/dev/null || { echo "$side failed on $input:" >&2; cat "$work/log" >&2; exit 1; }
  done
  for _ in $(seq "$runs"); do
    for side in ours sharp; do
      read -r wall rss < <(run_side "$side" "$input" || { echo "$side failed on $input:" >&2; cat "$work/log" >&2; })
      [ -n "${rss:-}" ] || exit 1
      # sharp's own clock, from decode to last write: the wall time less node's start and module loading.
      inside=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("elapsed_ms", "-"))' \
        "$work/out-$side/metadata.json" 2>/dev/null || echo -)
      [ "$side" = sharp ] || inside=-
      printf '%s\t%s\t%s\t%s\n' "$side" "$wall" "$rss" "$inside" >>"$results"
    done
  done
  python3 - "$input" "$results" "$work/out-ours" "$work/out-sharp" <<'EOF'
import os, statistics, sys
input_path, results, out_ours, out_sharp = sys.argv[1:]
rows = [line.split("\t") for line in open(results).read().splitlines()]
def med(side, col, scale):
    return statistics.median(float(r[col]) for r in rows if r[0] == side) * scale
wall = {s: med(s, 1, 1000.0) for s in ("ours", "sharp")}
rss = {s: med(s, 2, 1 / 1024) for s in ("ours", "sharp")}
def files(d):
    names = sorted(os.listdir(d))
    images = [n for n in names if not n.endswith(".json")]
    return len(names), len(images), sum(os.path.getsize(os.path.join(d, n)) for n in images)
inside = [float(r[3]) for r in rows if r[0] == "sharp" and r[3] != "-"]
size = os.path.getsize(input_path)
print(f"\n{os.path.basename(input_path)} ({size / 1e6:.1f} MB)")
print(f"  {'':16}{'median wall ms':>16}{'median peak RSS MiB':>22}{'files (images)':>17}{'image bytes':>13}")
for side, label in (("ours", "phoenix-derive"), ("sharp", "sharp")):
    total, images, nbytes = files(out_ours if side == "ours" else out_sharp)
    print(f"  {label:16}{wall[side]:>16.0f}{rss[side]:>22.1f}{f'{total} ({images})':>17}{nbytes:>13}")
print(f"  {'ours/sharp':16}{wall['ours'] / wall['sharp']:>16.2f}{rss['ours'] / rss['sharp']:>22.2f}")
if inside:
    print(f"  (sharp inside node, without process start and module loading: median {statistics.median(inside):.0f} ms)")
EOF
done
