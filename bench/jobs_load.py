"""Drives bench/jobs-load.sh: standard library only."""
import json
import os
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

API, TOKEN, PID = os.environ["API"], os.environ["TOKEN"], int(os.environ["PID"])
COUNT, PHOTO = int(os.environ["COUNT"]), open(os.environ["PHOTO"], "rb").read()
MODEL = "bench-jobs"


def call(method, path, body=None, raw=None, headers=None, url=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url or API + path, data=data, method=method)
    if url is None:
        request.add_header("Authorization", "Bearer " + TOKEN)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        request.add_header(k, v)
    with urllib.request.urlopen(request, timeout=120) as response:
        text = response.read()
        return json.loads(text) if text else None


def upload():
    created = call("POST", f"/v1/models/{MODEL}/media/uploads",
                   {"filename": "p.jpg", "content_type": "image/jpeg", "bytes": len(PHOTO)})
    up = created["upload"]
    call("PUT", None, raw=PHOTO, url=up["url"], headers={k: v for k, v in up["headers"].items() if k.lower() != "content-length"})
    return created["media_id"], time.monotonic()


def wait_processed(media, since):
    while True:
        record = call("GET", f"/v1/models/{MODEL}/media/{media}")
        if record["status"] not in ("uploading", "processing"):
            return time.monotonic() - since
        time.sleep(0.05)


def at(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def peak_kib():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# An upload on the idle server, for the starvation comparison.
idle_upload = wait_processed(*upload())
with ThreadPoolExecutor(4) as pool:
    media = [m for m, _ in pool.map(lambda _: upload(), range(COUNT - 1))]
for m in media:
    wait_processed(m, time.monotonic())
print(f"{COUNT} media processed; peak memory so far {peak_kib() / 1024:.0f} MiB")

presets = ["tiny", "small", "medium", "large", "xlarge", "cover-square", "cover-portrait"]
parent = call("POST", "/v1/jobs", {"operation": "regenerate", "params": {"presets": presets},
                                   "target": {"model_id": MODEL}, "priority": "normal"})
probes = {"high": [], "normal": []}
stop = threading.Event()


def probe():
    # Cheap jobs (a regenerate of a current media) on each lane: how long until one starts.
    target = {"model_id": MODEL, "media_id": media[0]}
    while not stop.is_set():
        for lane in ("high", "normal"):
            job = call("POST", "/v1/jobs", {"operation": "regenerate", "target": target, "priority": lane})
            probes[lane].append(job["job_id"])
        time.sleep(0.5)


thread = threading.Thread(target=probe)
thread.start()
time.sleep(5)
busy_upload = wait_processed(*upload())
while True:
    job = call("GET", f"/v1/jobs/{parent['job_id']}")
    if job["status"] in ("succeeded", "failed"):
        break
    time.sleep(0.5)
stop.set()
thread.join()
seconds = at(job["finished_at"]) - at(job["started_at"])
total = job["progress"]["total"]
print()
print(f"| figure | value |")
print(f"|---|---|")
print(f"| regenerate of {total} media, every preset | {seconds:.1f} s, {total / seconds:.2f} items/s ({job['status']}, {job['progress']['failed']} failed) |")
print(f"| server peak memory (VmHWM) | {peak_kib() / 1024:.0f} MiB |")
print(f"| a new upload processed, idle server | {idle_upload:.2f} s |")
print(f"| a new upload processed, during the regenerate | {busy_upload:.2f} s ({busy_upload / idle_upload:.2f}x) |")
for lane, ids in probes.items():
    waits = []
    for i in ids:
        j = call("GET", f"/v1/jobs/{i}")
        while j["status"] in ("queued", "running") and j.get("started_at") is None:
            time.sleep(0.2)
            j = call("GET", f"/v1/jobs/{i}")
        waits.append(at(j["started_at"]) - at(j["queued_at"]))
    waits.sort()
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    print(f"| submit → running, {lane} lane ({len(waits)} probes) | p50 {statistics.median(waits) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms |")
