"""``--blocklist-hashes FILE``: images that must never be stored, matched by exact or perceptual hash.

The file holds one hash a line, ``ALGO:HEX``; blank lines and ``#`` comments (whole-line or after the hash)
are ignored:

- ``sha256:HEX`` (64 hex digits) and ``md5:HEX`` (32): the downloaded bytes, before any decode
  (``Blocklist.match_bytes``);
- ``pdq:HEX`` (64 hex digits): Meta's PDQ perceptual hash of the decoded, upright RGB image: pdqhash's 256
  bits in its order, most significant bit first (``pdq_hex``). A decoded image matches a line within
  ``--pdq-max-distance`` differing bits (Hamming distance; default 31, PDQ's recommended threshold), so a
  re-encoded or resized copy still matches (``Blocklist.match_pdq``; the closest line wins, then the first).

A malformed line is a one-line ``UserError`` naming ``FILE:LINE``. A match is the row's ``blocklisted`` status
whose message is only ``line N``: the status row says nothing else about the image (no sha256, size or EXIF)
and nothing of it is written. PDQ matching is one numpy pass over the list packed as four uint64 words a hash
(xor, popcount), so thousands of lines cost microseconds per image; the decode-side cost (``pdq_bits``) is
paid only when the list has ``pdq`` lines. Low-quality PDQ hashes (flat images) are matched like any other: a
false match refuses an image, which is the safe side of a safety list.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .. import fileio
from ..errors import UserError

FLAG = "--blocklist-hashes"
DEFAULT_PDQ_MAX_DISTANCE = 31
PDQ_BITS = 256
HEX_DIGITS = {"sha256": 64, "md5": 32, "pdq": 64}
# Every image is hashed at this longer side at most (box-filter shrink first), as Meta's reference hashers
# downsample to 512 before hashing: pdqhash at full size costs ~0.1 s at 3 Mpixel, and the list maker
# (``pdq_hex`` of an image) and the download hash the same normalised picture, so a copy lands within a few
# bits instead of the ~10 a different scale costs. The download decodes JPEGs at least this large for it.
PDQ_MAX_SIDE = 512
_HEX = re.compile(r"^[0-9a-f]+$")


class Blocklisted(Exception):
    """A row's image is on the blocklist: ``line`` is the matching line of the file."""

    def __init__(self, line: int):
        super().__init__(f"line {line}")
        self.line = line


@dataclass(frozen=True, eq=False)
class Blocklist:
    """A parsed ``--blocklist-hashes`` file (``load_blocklist``): hashes -> their line numbers."""
    sha256: dict[str, int] = field(default_factory=dict)
    md5: dict[str, int] = field(default_factory=dict)
    pdq: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.uint64))   # (N, 4) packed bits
    pdq_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    max_distance: int = DEFAULT_PDQ_MAX_DISTANCE

    @property
    def has_pdq(self) -> bool:
        return len(self.pdq_lines) > 0

    def match_bytes(self, body: bytes, sha256_hex: str | None = None) -> int | None:
        """The line whose sha256 or md5 is the body's (``sha256_hex``: the body's, when already known)."""
        if self.sha256:
            line = self.sha256.get(sha256_hex or hashlib.sha256(body).hexdigest())
            if line is not None:
                return line
        if self.md5:
            return self.md5.get(hashlib.md5(body, usedforsecurity=False).hexdigest())
        return None

    def match_pdq(self, bits: np.ndarray) -> int | None:
        """The line of the closest PDQ hash within ``max_distance`` of ``bits`` (pdqhash's 256 bits), or None."""
        if not self.has_pdq:
            return None
        distances = _popcount(self.pdq ^ pack_pdq(bits)).sum(axis=1)
        best = int(np.argmin(distances))          # the first of the closest: the lowest line among ties
        return int(self.pdq_lines[best]) if distances[best] <= self.max_distance else None

    def check_bytes(self, body: bytes, sha256_hex: str | None = None) -> None:
        line = self.match_bytes(body, sha256_hex)
        if line is not None:
            raise Blocklisted(line)

    def check_image(self, image: Image.Image) -> None:
        """Raise ``Blocklisted`` when the decoded upright RGB ``image`` matches a ``pdq`` line."""
        if self.has_pdq:
            line = self.match_pdq(pdq_bits(image))
            if line is not None:
                raise Blocklisted(line)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy >= 2 has it built in; older numpy counts the unpacked bytes)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    return np.unpackbits(words.view(np.uint8).reshape(*words.shape, 8), axis=-1).sum(axis=-1)


def pack_pdq(bits: np.ndarray) -> np.ndarray:
    """256 bits (most significant first) -> 4 big-endian uint64 words."""
    return np.frombuffer(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), dtype=">u8").astype(np.uint64)


def pdq_hex(bits_or_image: np.ndarray | Image.Image) -> str:
    """The ``pdq:`` line's hex of pdqhash's 256 bits (of an RGB image: ``pdq_bits``), in their order, most
    significant bit first: what a list maker writes for an image."""
    bits = pdq_bits(bits_or_image) if isinstance(bits_or_image, Image.Image) else bits_or_image
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq_bits(image: Image.Image) -> np.ndarray:
    """pdqhash's 256 bits of an RGB image (shrunk to ``PDQ_MAX_SIDE`` first when larger)."""
    import pdqhash

    if max(image.size) > PDQ_MAX_SIDE:
        scale = PDQ_MAX_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    bits, _quality = pdqhash.compute(np.asarray(image.convert("RGB")))
    return bits


def _parse_line(text: str, where: str) -> tuple[str, str] | None:
    """``(algo, hex)`` of one line, None for a blank or comment line; a ``UserError`` naming ``where``."""
    text = text.split("#", 1)[0].strip()
    if not text:
        return None
    algo, sep, digits = (part.strip().lower() for part in text.partition(":"))
    if not sep or algo not in HEX_DIGITS:
        raise UserError(f"{FLAG} {where}: expected sha256:HEX, md5:HEX or pdq:HEX, got {text[:80]!r}")
    if len(digits) != HEX_DIGITS[algo] or not _HEX.match(digits):
        raise UserError(f"{FLAG} {where}: a {algo} hash is {HEX_DIGITS[algo]} hex digits, got {digits[:80]!r}")
    return algo, digits


def parse_blocklist(text: str, path: str, max_distance: int = DEFAULT_PDQ_MAX_DISTANCE) -> Blocklist:
    """The ``Blocklist`` of a file's text; the first of repeated hashes keeps its line."""
    exact: dict[str, dict[str, int]] = {"sha256": {}, "md5": {}}
    pdq: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        parsed = _parse_line(line, f"{path}:{number}")
        if parsed is None:
            continue
        algo, digits = parsed
        (pdq if algo == "pdq" else exact[algo]).setdefault(digits, number)
    packed = np.array([np.frombuffer(bytes.fromhex(h), dtype=">u8") for h in pdq], dtype=np.uint64)
    return Blocklist(sha256=exact["sha256"], md5=exact["md5"], pdq=packed.reshape(-1, 4),
                     pdq_lines=np.array(list(pdq.values()), dtype=np.int64), max_distance=max_distance)


def load_blocklist(path: str, max_distance: int = DEFAULT_PDQ_MAX_DISTANCE) -> Blocklist:
    """Read and parse ``--blocklist-hashes FILE`` (local or remote); a missing file is a ``UserError``."""
    fileio.check_readable(path, FLAG)
    try:
        text = fileio.read_text(path)
    except UserError as exc:
        raise UserError(f"{FLAG}: {exc}") from None
    return parse_blocklist(text, path, max_distance)
