"""Side by side: ``wit download`` vs ``img2dataset`` on the same URL list from the loopback sample web.

    python bench/bench_download.py [--images 1000] [--processes 2] [--threads 32] [--latency 0.05]

The sample web serves every image with an added response latency (like a
remote server); both tools get the same URL list, processes x threads, image
size (256, border) and no size filters, in one run, in separate subprocesses.
Printed per tool: images/s, peak RSS of its whole process tree (sampled from
/proc every 50 ms), and the ratio. A second table times the per-image CPU
work alone (decode + resize + JPEG encode, one thread) with img2dataset's
OpenCV ``Resizer`` and with our Pillow path (``draft`` decode), on the sample
web's images and on larger 1600x1200 JPEGs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from wit_pipeline.sampleweb import render, serve_sample_web  # noqa: E402


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; returns (seconds, peak RSS of its process tree, output tail)."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WIT_PROGRESS": "0"}
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.communicate()[0].decode(errors="replace")
    seconds = time.monotonic() - started
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{output[-3000:]}")
    return seconds, peak[0], output[-1500:]


def count_wit(out: str) -> int:
    return json.load(open(os.path.join(out, "stats.json")))["out"]


def count_img2dataset(out: str) -> int:
    total = 0
    for name in os.listdir(out):
        if name.endswith("_stats.json"):
            total += json.load(open(os.path.join(out, name)))["successes"]
    return total


def resize_bench(images: list[bytes], repeat: int) -> dict[str, float]:
    """Images/s of decode + resize (256, border) + JPEG encode, one thread, for both resize paths."""
    import cv2
    from img2dataset.resizer import Resizer

    from wit_pipeline.download.images import DEFAULT_MAX_PIXELS, ImageChecks, load_image
    from wit_pipeline.download.resize import encode_jpeg, resize

    cv2.setNumThreads(1)
    theirs = Resizer(image_size=256, resize_mode="border", resize_only_if_bigger=False)
    checks = ImageChecks(min_image_size=0, max_aspect_ratio=1e9, max_pixels=DEFAULT_MAX_PIXELS)

    def ours(data: bytes) -> bytes:
        image, size = load_image(data, checks, image_size=256, resize_mode="border")
        return encode_jpeg(resize(image, 256, "border", original_size=size))

    rates = {}
    for name, fn in (("img2dataset Resizer (OpenCV)", lambda d: theirs(io.BytesIO(d))[0]),
                     ("wit resize (Pillow + draft)", ours)):
        fn(images[0])
        started = time.perf_counter()
        for _ in range(repeat):
            for data in images:
                assert fn(data)
        rates[name] = repeat * len(images) / (time.perf_counter() - started)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="added seconds per response")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--skip-resize-bench", action="store_true")
    args = parser.parse_args()
    per_shard = max(1, args.images // (args.processes * 2))

    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp, \
            serve_sample_web(seed=0, faults=False, latency_s=args.latency, n_images=args.images) as web:
        site = web.site
        for image in site.images:      # render every image once, so neither tool pays for the drawing
            web.cached(image.path, lambda image=image: render.web_image_bytes(site, image))
        urls = os.path.join(tmp, "urls.parquet")
        pq.write_table(pa.table({"url": [web.image_url(i) for i in site.images],
                                 "text": [i.caption for i in site.images]}), urls)
        wit_out, i2d_out = os.path.join(tmp, "wit"), os.path.join(tmp, "img2dataset")
        wit_cmd = [sys.executable, "-m", "wit_pipeline", "download", "--input", urls, "--out", wit_out,
                   "--processes", str(args.processes), "--threads", str(args.threads),
                   "--image-size", str(args.image_size), "--resize-mode", "border",
                   "--samples-per-shard", str(per_shard), "--min-image-size", "0",
                   "--max-aspect-ratio", "1e9", "--allow-private-networks"]
        i2d_cmd = [sys.executable, "-c", "import fire, img2dataset; fire.Fire(img2dataset.download)",
                   "--url_list", urls,
                   "--input_format", "parquet", "--url_col", "url", "--caption_col", "text",
                   "--output_format", "webdataset", "--output_folder", i2d_out,
                   "--processes_count", str(args.processes), "--thread_count", str(args.threads),
                   "--image_size", str(args.image_size), "--resize_mode", "border",
                   "--number_sample_per_shard", str(per_shard), "--enable_wandb", "False"]
        results = {}
        for name, cmd, count, out in (("wit download", wit_cmd, count_wit, wit_out),
                                      ("img2dataset", i2d_cmd, count_img2dataset, i2d_out)):
            seconds, peak, _ = timed(cmd)
            results[name] = {"seconds": seconds, "images": count(out), "peak_rss_mb": peak / 2**20}
            results[name]["images_per_s"] = results[name]["images"] / seconds

    print(f"{args.images} URLs, sample web on loopback with {args.latency * 1000:.0f} ms latency, "
          f"{args.processes} processes x {args.threads} threads, {args.image_size} px border, "
          f"{os.cpu_count()} CPUs")
    print(f"{'tool':<16} {'images':>7} {'seconds':>8} {'images/s':>9} {'peak RSS':>10}")
    for name, r in results.items():
        print(f"{name:<16} {r['images']:>7} {r['seconds']:>8.1f} {r['images_per_s']:>9.1f} "
              f"{r['peak_rss_mb']:>7.0f} MB")
    ratio = results["wit download"]["images_per_s"] / results["img2dataset"]["images_per_s"]
    mem = results["wit download"]["peak_rss_mb"] / results["img2dataset"]["peak_rss_mb"]
    print(f"ratio wit/img2dataset: {ratio:.2f}x images/s, {mem:.2f}x peak RSS")

    if not args.skip_resize_bench:
        with serve_sample_web(seed=0, faults=False, n_images=60) as web:
            small = [render.web_image_bytes(web.site, i) for i in web.site.images]
        large = [render.encode(render.draw_shape("star", "red", "blue", (1600, 1200), seed=s), "jpg")
                 for s in range(12)]
        print("decode + resize 256 border + encode, one thread (images/s):")
        for label, data, repeat in (("sample web images (224-640 px, 25% PNG)", small, 3),
                                    ("1600x1200 JPEG", large, 3)):
            rates = resize_bench(data, repeat)
            print(f"  {label}: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
