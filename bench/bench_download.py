"""Side by side: ``wit download`` vs ``img2dataset`` on the same URL list from the loopback sample web.

    python bench/bench_download.py [--images 1000] [--processes 2] [--threads 32] [--latency 0.05] [--rounds 3]
                                    [--per-host-limit N] [--server-nagle] [--skip-resize-bench]

The sample web serves every image with an added response latency (like a
remote server) and without Nagle's algorithm (as real servers answer; see
``Handler.disable_nagle_algorithm`` below); both tools get the same URL list,
processes x threads (every thread free to fetch from the one host: ours with
``--per-host-limit`` = threads, img2dataset has no such limit), image size
(256, border), JPEG quality 95 (both defaults) and no size filters, in one run,
in separate subprocesses; ``--rounds N`` runs both N times, the order
alternating. Printed per tool and round: images/s, CPU seconds of its process
tree (user + system, from ``RUSAGE_CHILDREN``), the server's CPU meanwhile,
peak RSS of its process tree (sampled from /proc every 50 ms), and the ratios;
then the median ratio. A second table times the per-image CPU work alone
(decode + resize + JPEG encode, one thread) with img2dataset's OpenCV
``Resizer`` and with our Pillow path (``draft`` decode), on the sample web's
images and on larger 1600x1200 JPEGs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
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
from wit_pipeline.sampleweb.server import Handler  # noqa: E402

# Python's http.server writes a response's headers and body in two sends. With Nagle's algorithm on, the body
# then waits for the client's delayed ACK of the headers (40 ms on Linux) on every response of a keep-alive
# connection, while a new connection's first responses are ACKed at once: a stall real servers do not have
# (nginx: tcp_nodelay on) that would fall only on the client reusing connections. The bench's server sends
# without Nagle (``--server-nagle`` keeps it), so both tools meet a server that answers like a real one.
Handler.disable_nagle_algorithm = True


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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> dict:
    """Run ``cmd``; returns its wall seconds, CPU seconds (its process tree, once reaped), the CPU seconds this
    process (the sample web's server threads) spent meanwhile, peak RSS of its process tree and output tail."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WIT_PROGRESS": "0"}
    started, cpu_before, server_before = time.monotonic(), _children_cpu(), time.process_time()
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
    return {"seconds": seconds, "cpu_s": _children_cpu() - cpu_before, "server_cpu_s": time.process_time() -
            server_before, "peak_rss_mb": peak[0] / 2**20, "output": output[-1500:]}


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


def _commands(args, urls: str, wit_out: str, i2d_out: str) -> dict[str, list[str]]:
    """Both tools' command lines: same input, processes x threads, image size, resize mode, shard size."""
    per_shard = max(1, args.images // (args.processes * 2))
    wit_cmd = [sys.executable, "-m", "wit_pipeline", "download", "--input", urls, "--out", wit_out,
               "--processes", str(args.processes), "--threads", str(args.threads),
               "--image-size", str(args.image_size), "--resize-mode", "border",
               "--samples-per-shard", str(per_shard), "--min-image-size", "0",
               "--max-aspect-ratio", "1e9", "--allow-private-networks",
               "--per-host-limit", str(args.per_host_limit or args.threads)]
    i2d_cmd = [sys.executable, "-c", "import fire, img2dataset; fire.Fire(img2dataset.download)",
               "--url_list", urls,
               "--input_format", "parquet", "--url_col", "url", "--caption_col", "text",
               "--output_format", "webdataset", "--output_folder", i2d_out,
               "--processes_count", str(args.processes), "--thread_count", str(args.threads),
               "--image_size", str(args.image_size), "--resize_mode", "border",
               "--number_sample_per_shard", str(per_shard), "--enable_wandb", "False"]
    return {"wit download": wit_cmd, "img2dataset": i2d_cmd}


def run_round(commands: dict[str, list[str]], order: list[str], outs: dict[str, str]) -> dict[str, dict]:
    """One run of each tool, in ``order``, each into an empty output folder."""
    counts = {"wit download": count_wit, "img2dataset": count_img2dataset}
    results = {}
    for name in order:
        shutil.rmtree(outs[name], ignore_errors=True)
        result = timed(commands[name])
        result["images"] = counts[name](outs[name])
        result["images_per_s"] = result["images"] / result["seconds"]
        results[name] = result
    return results


def print_round(number: int, results: dict[str, dict]) -> float:
    """The round's table; returns its images/s ratio."""
    print(f"round {number} (in this order: {', '.join(results)})")
    print(f"  {'tool':<14} {'images':>7} {'seconds':>8} {'images/s':>9} {'CPU s':>7} {'CPU ms/img':>10} "
          f"{'server CPU s':>12} {'peak RSS':>10}")
    for name, r in sorted(results.items()):
        print(f"  {name:<14} {r['images']:>7} {r['seconds']:>8.1f} {r['images_per_s']:>9.1f} {r['cpu_s']:>7.1f} "
              f"{1000 * r['cpu_s'] / max(1, r['images']):>10.2f} {r['server_cpu_s']:>12.1f} "
              f"{r['peak_rss_mb']:>7.0f} MB")
    ours, theirs = results["wit download"], results["img2dataset"]
    ratio = ours["images_per_s"] / theirs["images_per_s"]
    cpu = (theirs["cpu_s"] / max(1, theirs["images"])) / (ours["cpu_s"] / max(1, ours["images"]))
    mem = ours["peak_rss_mb"] / theirs["peak_rss_mb"]
    print(f"  ratio wit/img2dataset: {ratio:.2f}x images/s, {cpu:.2f}x images per CPU second, "
          f"{mem:.2f}x peak RSS")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05, help="added seconds per response")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tool, the order alternating")
    parser.add_argument("--per-host-limit", type=int, default=0,
                        help="wit download's --per-host-limit (default: --threads, as img2dataset has no limit)")
    parser.add_argument("--server-nagle", action="store_true", help="the sample web sends with Nagle's algorithm")
    parser.add_argument("--skip-resize-bench", action="store_true")
    args = parser.parse_args()
    Handler.disable_nagle_algorithm = not args.server_nagle

    print(f"{args.images} URLs, sample web on loopback ({args.latency * 1000:.0f} ms latency, "
          f"{'Nagle on' if args.server_nagle else 'TCP_NODELAY'}), both tools {args.processes} processes x "
          f"{args.threads} threads (wit: --per-host-limit {args.per_host_limit or args.threads}; img2dataset has "
          f"no limit), {args.image_size} px "
          f"border, JPEG quality 95, webdataset output, {os.cpu_count()} CPUs; CPU s: the tool's process tree "
          "(user + system)")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp, \
            serve_sample_web(seed=0, faults=False, latency_s=args.latency, n_images=args.images) as web:
        site = web.site
        for image in site.images:      # render every image once, so neither tool pays for the drawing
            web.cached(image.path, lambda image=image: render.web_image_bytes(site, image))
        urls = os.path.join(tmp, "urls.parquet")
        pq.write_table(pa.table({"url": [web.image_url(i) for i in site.images],
                                 "text": [i.caption for i in site.images]}), urls)
        outs = {"wit download": os.path.join(tmp, "wit"), "img2dataset": os.path.join(tmp, "img2dataset")}
        commands = _commands(args, urls, outs["wit download"], outs["img2dataset"])
        for number in range(1, args.rounds + 1):
            order = ["wit download", "img2dataset"] if number % 2 else ["img2dataset", "wit download"]
            ratios.append(print_round(number, run_round(commands, order, outs)))
    if len(ratios) > 1:
        print(f"images/s ratio over {len(ratios)} rounds: median {statistics.median(ratios):.2f}x, "
              f"min {min(ratios):.2f}x, max {max(ratios):.2f}x")

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
