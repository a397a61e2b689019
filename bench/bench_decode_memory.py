"""Peak memory of the download's image decode on PNGs just under the pixel cap, many threads at once.

    python bench/bench_decode_memory.py [--images 32] [--threads 64] [--dir /tmp/wit-bench-decode]
                                        [--base DIR] [--base-limit 6G]

Makes (once, kept in ``--dir``) ``--images`` flat 9459x9459 PNGs (89.5 Mpx, just
under ``DEFAULT_MAX_PIXELS``; ~0.1-0.4 MB each, ~360 MB each decoded): half
RGBA, the rest RGB, palette with transparency, LA and L, one file per kind
copied to the count. Then, in a fresh subprocess per code tree, decodes them
all through the function the download stage uses (``load_resized``; on a tree
without it, ``load_image`` then ``resize``) to 256 px ``border``, ``--threads``
at once, and prints per tree: how many were decoded or refused (by reason),
seconds, and peak RSS (the child's ``ru_maxrss``).

``--base DIR`` also runs an older tree (``git archive <commit> | tar -x -C DIR``)
under an address-space limit (``--base-limit``), so that a tree without a
decode budget fails its allocations (``decode_error``: MemoryError) instead of
taking the machine's memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE = 9459                                         # 9459 * 9459 = 89,472,681 <= 89,478,485
KINDS = ["RGBA", "RGB", "RGBA", "P", "RGBA", "LA", "RGBA", "L"]


def _png(kind: str) -> bytes:
    from PIL import Image, ImageDraw

    if kind == "P":
        image = Image.new("P", (SIDE, SIDE), 3)
        image.putpalette([(i * 7) % 256 for i in range(768)])
    else:
        image = Image.new(kind, (SIDE, SIDE), (200, 30, 30, 128)[:len(kind)] if kind != "L" else 90)
    ImageDraw.Draw(image).rectangle((100, 100, 900, 900), fill=1 if kind == "P" else (0, 0, 0, 255)[:len(kind)]
                                    if kind != "L" else 0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **({"transparency": 3} if kind == "P" else {}))
    return buffer.getvalue()


def make_images(directory: str, count: int) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    originals: dict[str, str] = {}
    paths = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        path = os.path.join(directory, f"{index:03d}-{kind}.png")
        if not os.path.exists(path):
            if kind not in originals:
                original = os.path.join(directory, f"{kind}.png.src")
                if not os.path.exists(original):
                    with open(original + ".tmp", "wb") as handle:
                        handle.write(_png(kind))
                    os.replace(original + ".tmp", original)
                originals[kind] = original
            shutil.copyfile(originals[kind], path)
        paths.append(path)
    return paths


def child(tree: str, paths: list[str], threads: int) -> dict:
    """Decode every file ``threads`` at once with ``tree``'s download code; counts and peak RSS."""
    sys.path.insert(0, tree)
    from concurrent.futures import ThreadPoolExecutor

    from wit_pipeline.download import images
    from wit_pipeline.download.resize import resize

    checks = images.ImageChecks(min_image_size=200, max_aspect_ratio=3.0, max_pixels=images.DEFAULT_MAX_PIXELS)

    def decode(path: str) -> str:
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            if hasattr(images, "load_resized"):
                images.load_resized(data, checks, 256, "border")
            else:
                image, size = images.load_image(data, checks, image_size=256, resize_mode="border")
                resize(image, 256, "border", original_size=size)
            return "decoded"
        except images.ImageRejected as exc:       # MemoryError inside the decode: decode_error
            return exc.reason
        except MemoryError:
            return "MemoryError"

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(decode, paths))
    return {"outcomes": dict(Counter(outcomes)), "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def run_tree(name: str, tree: str, directory: str, count: int, threads: int, limit: int | None) -> dict:
    def limited() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, os.path.abspath(__file__), "--child", tree, "--dir", directory,
           "--images", str(count), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limited, check=False)
    if done.returncode != 0:
        return {"tree": name, "error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return {"tree": name, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--dir", default="/tmp/wit-bench-decode")
    parser.add_argument("--base", help="an older source tree to compare (e.g. git archive HEAD, extracted)")
    parser.add_argument("--base-limit", default="6G", help="address-space limit of the --base run (default 6G)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = make_images(args.dir, args.images)
    if args.child:
        print(json.dumps(child(args.child, paths, args.threads)))
        return
    rows = [run_tree("this tree", REPO, args.dir, args.images, args.threads, None)]
    if args.base:
        limit = int(args.base_limit.rstrip("Gg")) << 30
        rows.append(run_tree(f"--base {args.base} (limit {args.base_limit})", args.base, args.dir, args.images,
                             args.threads, limit))
    print(f"{args.images} near-cap PNGs ({SIDE}x{SIDE}), {args.threads} threads, one process")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
