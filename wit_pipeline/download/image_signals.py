"""Opt-outs written inside an image file (issue #16 signals ``metadata`` and ``c2pa``): pure functions of the bytes.

``check_image_signals(body, signals, c2pa_constrained)`` runs before any decode and says whether the image
refuses AI training (``ImageVerdict.reason``: ``opt_out_metadata`` / ``opt_out_c2pa``, with a short message).

- **metadata**: IPTC/PLUS ``plus:DataMining`` (namespace ``http://ns.useplus.org/ldf/xmp/1.0/``) in the
  image's XMP packet, as an attribute or an element (text or ``rdf:resource``), its value the bare code or
  the vocabulary URI ``http://ns.useplus.org/ldf/vocab/DMI-...``. Every ``DMI-PROHIBITED*`` code refuses
  (``-AIMLTRAINING``, ``-GENAIMLTRAINING``, ``-EXCEPTSEARCHENGINEINDEXING``, ``-SEECONSTRAINT`` ... and plain
  ``DMI-PROHIBITED``); ``DMI-ALLOWED``, ``DMI-UNSPECIFIED`` and no value pass. The packet is found where each
  format keeps it (JPEG APP1 ``http://ns.adobe.com/xap/1.0/`` and its Extended XMP parts, PNG iTXt
  ``XML:com.adobe.xmp``, WebP ``XMP `` chunk), in other formats by a bounded scan for ``<x:xmpmeta``. XML
  is parsed by the stdlib parser only when the packet has no DTD (XMP never has one: no entity expansion);
  a packet that does not parse is searched textually for a ``DataMining`` prohibited code, so broken XML
  cannot hide an opt-out.
- **c2pa**: the active manifest's training-and-data-mining assertion (``cawg.training-mining``, formerly
  ``c2pa.training-mining``), read with c2pa-python. ``cawg.ai_training``, ``cawg.ai_generative_training`` or
  ``cawg.data_mining`` (or their ``c2pa.`` forms) with ``use: notAllowed`` refuses, ``constrained`` too unless
  ``c2pa_constrained == "allow"``. The reader runs only when the bytes carry a manifest store (JPEG APP11
  JUMBF, PNG ``caBX``, WebP ``C2PA`` chunk, else a bounded scan for the ``c2pa`` JUMBF label), with remote
  manifest and OCSP fetching off: nothing is fetched.

  Trust: an assertion that reads is honoured whether or not its signer is on a trust list and whether or
  not the manifest validates (the refusal message says the validation state). Honouring a forged or stale
  opt-out only costs one image; ignoring a real one stores what its owner refused. An unreadable manifest
  (a reader error) cannot say "not allowed": the image passes and the verdict carries a ``c2pa_unreadable``
  note (the download puts it in the success row's ``error_message``), so such images can be counted and
  audited.

Cost on an image without either signal: one walk over the JPEG marker / PNG or WebP chunk headers (no
pixel data read), a few microseconds.
"""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from typing import Iterator

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"
PROHIBITED_PREFIX = "DMI-PROHIBITED"
TRAINING_MINING_LABELS = ("cawg.training-mining", "c2pa.training-mining")
TRAINING_ENTRIES = ("ai_training", "ai_generative_training", "data_mining")   # each as cawg.X and c2pa.X
C2PA_CONSTRAINED = ("deny", "allow")

_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"        # Extended XMP: a packet over 64 KiB
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
_SCAN_LIMIT = 8 << 20            # bytes searched for XMP or a C2PA label in formats without a walker
_PACKET_LIMIT = 1 << 20          # the largest XMP packet read (JPEG's are under 64 KiB)
_TEXT_MINING = re.compile(rb"DataMining.{0,300}?(DMI-PROHIBITED[A-Z-]*)", re.DOTALL | re.IGNORECASE)
_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
         "tiff": "image/tiff", "avif": "image/avif", "heic": "image/heic"}


@dataclass
class Containers:
    """What one walk over an image's container found: its XMP packets and whether it has a C2PA store."""
    kind: str | None                                   # "jpeg", "png", "webp", ... or None
    xmp: list[bytes] = field(default_factory=list)
    has_c2pa: bool = False

    @property
    def mime(self) -> str | None:
        return _MIME.get(self.kind or "")


@dataclass(frozen=True)
class ImageVerdict:
    """``reason`` (``opt_out_metadata`` / ``opt_out_c2pa``) and ``message`` when the image refuses; ``note``
    says what could not be read on an image that passes."""
    reason: str | None = None
    message: str = ""
    note: str = ""


PASS = ImageVerdict()


# -- finding the blocks ------------------------------------------------------------------------------------

def sniff(data: bytes) -> str | None:
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[4:8] == b"ftyp":
        return "avif" if head[8:12] in (b"avif", b"avis") else "heic"
    return None


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, payload start, payload end)`` of each marker segment before the first scan."""
    i, end = 2, len(data)
    while i + 4 <= end and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:                                 # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:       # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):                         # start of scan / end of image: no metadata after
            return
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            return
        yield marker, i + 4, min(end, i + 2 + length)
        i += 2 + length


def _walk_jpeg(data: bytes, found: Containers) -> None:
    """APP1 XMP packets (an Extended XMP's parts joined in offset order as one more packet) and APP11 JUMBF
    ``c2pa`` boxes."""
    extension: list[tuple[int, bytes]] = []
    for marker, start, stop in _jpeg_segments(data):
        if marker == 0xE1 and data.startswith(_JPEG_XMP, start):
            found.xmp.append(data[start + len(_JPEG_XMP):stop])
        elif marker == 0xE1 and data.startswith(_JPEG_XMP_EXTENSION, start):
            head = start + len(_JPEG_XMP_EXTENSION) + 32   # after the GUID: full length, offset, part
            extension.append((int.from_bytes(data[head + 4:head + 8], "big"), data[head + 8:stop]))
        elif marker == 0xEB and data.startswith(b"JP", start) and data.find(b"c2pa", start, stop) >= 0:
            found.has_c2pa = True
    if extension:
        found.xmp.append(b"".join(part for _, part in sorted(extension, key=lambda item: item[0])))


def _png_itxt_text(chunk: bytes) -> bytes | None:
    """The text of a PNG iTXt chunk keyed ``XML:com.adobe.xmp`` (inflated, bounded), else None."""
    keyword, _, rest = chunk.partition(b"\x00")
    if keyword != _PNG_XMP_KEYWORD or len(rest) < 2:
        return None
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if not compressed:
        return text
    try:
        return zlib.decompressobj().decompress(text, _PACKET_LIMIT)
    except zlib.error:
        return None


def _walk_png(data: bytes, found: Containers) -> None:
    i, end = len(_PNG_MAGIC), len(data)
    while i + 8 <= end:
        length = int.from_bytes(data[i:i + 4], "big")
        kind = data[i + 4:i + 8]
        start = i + 8
        if kind == b"iTXt":
            text = _png_itxt_text(data[start:min(end, start + length)])
            if text is not None:
                found.xmp.append(text)
        elif kind == b"caBX":
            found.has_c2pa = True
        elif kind == b"IEND":
            return
        i = start + length + 4                             # data, then the CRC


def _walk_webp(data: bytes, found: Containers) -> None:
    i, end = 12, min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while i + 8 <= end:
        kind = data[i:i + 4]
        length = int.from_bytes(data[i + 4:i + 8], "little")
        start = i + 8
        if kind == b"XMP ":
            found.xmp.append(data[start:min(end, start + length)])
        elif kind == b"C2PA":
            found.has_c2pa = True
        i = start + length + (length & 1)                  # chunks are padded to an even size


def _scan(data: bytes, found: Containers) -> None:
    """Formats without a walker here: a bounded search for an XMP packet and a C2PA store's JUMBF label."""
    start = data.find(b"<x:xmpmeta", 0, _SCAN_LIMIT)
    if start >= 0:
        stop = data.find(b"</x:xmpmeta>", start, start + _PACKET_LIMIT)
        found.xmp.append(data[start:stop + len(b"</x:xmpmeta>")] if stop >= 0 else data[start:start + _PACKET_LIMIT])
    found.has_c2pa = data.find(b"c2pa", 0, _SCAN_LIMIT) >= 0


def find_containers(data: bytes) -> Containers:
    """The image's XMP packets and whether it carries a C2PA manifest store, from its container's headers."""
    found = Containers(sniff(data))
    walker = {"jpeg": _walk_jpeg, "png": _walk_png, "webp": _walk_webp}.get(found.kind or "", _scan)
    walker(data, found)
    return found


# -- XMP plus:DataMining -----------------------------------------------------------------------------------

def data_mining_code(value: str) -> str:
    """``DMI-...`` from a bare code or its vocabulary URI, upper-cased."""
    value = value.strip()
    if value.lower().startswith(PLUS_VOCAB):
        value = value[len(PLUS_VOCAB):]
    return value.rsplit("/", 1)[-1].strip().upper()


def is_prohibited(code: str) -> bool:
    return code.startswith(PROHIBITED_PREFIX)


def _xml_values(packet: bytes) -> list[str] | None:
    """Every ``plus:DataMining`` value in an XMP packet; None when the packet is not XML we parse."""
    text = packet[:_PACKET_LIMIT].strip(b"\x00 \t\r\n")
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        return None                                        # never parsed: entity expansion
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    tag, resource = f"{{{PLUS_NS}}}DataMining", f"{{{RDF_NS}}}resource"
    values = []
    for element in root.iter():
        if tag in element.attrib:
            values.append(element.attrib[tag])
        if element.tag == tag:
            values.append(element.attrib.get(resource) or "".join(element.itertext()))
    return values


def xmp_prohibition(packet: bytes) -> str | None:
    """The ``DMI-PROHIBITED*`` code an XMP packet declares in ``plus:DataMining``, else None."""
    values = _xml_values(packet)
    if values is None:                                     # unparsable: search the text itself
        match = _TEXT_MINING.search(packet[:_PACKET_LIMIT])
        return match.group(1).decode("ascii").upper() if match else None
    for value in values:
        code = data_mining_code(value)
        if is_prohibited(code):
            return code
    return None


# -- C2PA training-and-data-mining -------------------------------------------------------------------------

class C2paUnreadable(Exception):
    """The bytes carry a C2PA store the reader cannot read."""


_local = threading.local()


def _c2pa_context():
    """A reader context per thread, with every network fetch off (remote manifests, OCSP)."""
    context = getattr(_local, "context", None)
    if context is None:
        import c2pa

        context = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
        _local.context = context
    return context


def read_active_manifest(data: bytes, mime: str | None) -> tuple[dict | None, str]:
    """The active manifest (None when there is none after all) and its validation state."""
    import c2pa

    try:
        with c2pa.Reader(mime, io.BytesIO(data), None, _c2pa_context()) as reader:
            return reader.get_active_manifest(), reader.get_validation_state() or "unknown"
    except c2pa.C2paError.ManifestNotFound:
        return None, ""
    except Exception as exc:  # noqa: BLE001 - the native reader's many error types all mean "cannot read"
        raise C2paUnreadable(f"{type(exc).__name__}: {exc}"[:200]) from exc


def _base_label(label: str) -> str:
    """``cawg.training-mining.v2`` -> ``cawg.training-mining``."""
    head, _, tail = label.rpartition(".")
    return head if head and re.fullmatch(r"v\d+", tail) else label


def training_refusal(manifest: dict, refused_uses: frozenset[str]) -> str | None:
    """``label entry=use`` of the first training/mining entry whose ``use`` is in ``refused_uses``, else None."""
    for assertion in manifest.get("assertions") or ():
        label = _base_label(str(assertion.get("label", "")))
        if label not in TRAINING_MINING_LABELS:
            continue
        entries = (assertion.get("data") or {}).get("entries") or {}
        for name, entry in entries.items():
            if name.split(".", 1)[-1] not in TRAINING_ENTRIES or not isinstance(entry, dict):
                continue
            if entry.get("use") in refused_uses:
                return f"{label} {name}={entry['use']}"
    return None


def c2pa_refusal(data: bytes, mime: str | None, c2pa_constrained: str = "deny") -> str | None:
    """The refusal message of the image's C2PA training/mining assertion, or None; ``C2paUnreadable``."""
    manifest, state = read_active_manifest(data, mime)
    if manifest is None:
        return None
    refused = frozenset({"notAllowed"} if c2pa_constrained == "allow" else {"notAllowed", "constrained"})
    found = training_refusal(manifest, refused)
    return f"{found} (manifest {state})" if found else None


# -- the verdict -------------------------------------------------------------------------------------------

def check_image_signals(data: bytes, signals: frozenset[str] | set[str], c2pa_constrained: str = "deny"
                        ) -> ImageVerdict:
    """Whether ``data`` refuses AI training by the chosen ``signals`` (``metadata``, ``c2pa``); see the module."""
    want_xmp, want_c2pa = "metadata" in signals, "c2pa" in signals
    if not (want_xmp or want_c2pa):
        return PASS
    found = find_containers(data)
    if want_xmp:
        for packet in found.xmp:
            code = xmp_prohibition(packet)
            if code:
                return ImageVerdict("opt_out_metadata", f"XMP plus:DataMining {code}")
    if want_c2pa and found.has_c2pa:
        try:
            message = c2pa_refusal(data, found.mime, c2pa_constrained)
        except C2paUnreadable as exc:
            return ImageVerdict(note=f"c2pa_unreadable: {exc}")
        if message:
            return ImageVerdict("opt_out_c2pa", message)
    return PASS
