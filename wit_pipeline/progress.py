"""Logging and progress-bar conventions shared by every stage."""

from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger once: WARNING by default, -v INFO, -vv DEBUG."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    # Beam and urllib3 are chatty at INFO; keep them one level quieter than ours.
    for noisy in ("apache_beam", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def progress_enabled() -> bool:
    """Progress bars go to stderr when it is a terminal, unless WIT_PROGRESS says otherwise."""
    setting = os.environ.get("WIT_PROGRESS", "auto")
    if setting == "auto":
        return sys.stderr.isatty()
    return setting not in ("0", "false", "no", "off")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap an iterable in a progress bar showing items/s and ETA (on a terminal)."""
    return iter(tqdm(items, total=total, desc=desc, unit=unit, disable=not progress_enabled(),
                     dynamic_ncols=True, file=sys.stderr))
