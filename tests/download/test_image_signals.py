"""Opt-outs inside the image: XMP plus:DataMining in each container, C2PA training-and-data-mining assertions."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from wit_pipeline.consent import SIGNALS
from wit_pipeline.download import image_signals
from wit_pipeline.download.image_signals import check_image_signals, find_containers
from wit_pipeline.download.reader import InputRow
from wit_pipeline.sampleweb import signed_images
from wit_pipeline.sampleweb.draw import draw_shape

from .fake_session import run_shard

ALL = frozenset(SIGNALS)
PROHIBITED = ("DMI-PROHIBITED", "DMI-PROHIBITED-AIMLTRAINING", "DMI-PROHIBITED-GENAIMLTRAINING",
              "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING")


def encoded(fmt: str, size=(240, 200)) -> bytes:
    buffer = io.BytesIO()
    draw_shape("square", "green", "white", size, 1).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def plain_jpeg() -> bytes:
    return encoded("JPEG")


@pytest.fixture(scope="module")
def c2pa_images(plain_jpeg) -> dict[str, bytes]:
    """Signed once per module (about 0.1 s each)."""
    make = signed_images.jpeg_with_c2pa_training_mining
    return {
        "not_allowed": make(plain_jpeg, {"cawg.ai_training": "notAllowed", "cawg.data_mining": "allowed"}),
        "generative": make(plain_jpeg, {"cawg.ai_generative_training": "notAllowed"}),
        "allowed": make(plain_jpeg, {"cawg.ai_training": "allowed", "cawg.ai_inference": "notAllowed"}),
        "constrained": make(plain_jpeg, {"cawg.data_mining": "constrained"}),
        "legacy": make(plain_jpeg, {"c2pa.ai_training": "notAllowed"}, label="c2pa.training-mining"),
    }


# -- XMP --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", PROHIBITED)
@pytest.mark.parametrize("form", ["code", "uri", "element", "element-uri"])
def test_every_prohibited_data_mining_value_refuses_in_every_form(plain_jpeg, value, form):
    text = f"http://ns.useplus.org/ldf/vocab/{value}" if form.endswith("uri") else value
    body = signed_images.jpeg_with_xmp_data_mining(plain_jpeg, text, as_element=form.startswith("element"))
    verdict = check_image_signals(body, ALL)
    assert (verdict.reason, verdict.message) == ("opt_out_metadata", f"XMP plus:DataMining {value}")


@pytest.mark.parametrize("value", ["DMI-ALLOWED", "DMI-UNSPECIFIED", "http://ns.useplus.org/ldf/vocab/DMI-ALLOWED",
                                   ""])
def test_allowed_or_unspecified_data_mining_passes(plain_jpeg, value):
    assert check_image_signals(signed_images.jpeg_with_xmp_data_mining(plain_jpeg, value), ALL).reason is None


def test_xmp_is_found_in_png_itxt_plain_or_deflated_and_in_webp():
    png = encoded("PNG")
    for body in (signed_images.png_with_xmp(png, "DMI-PROHIBITED-AIMLTRAINING"),
                 signed_images.png_with_xmp(png, "DMI-PROHIBITED-AIMLTRAINING", compressed=True),
                 signed_images.webp_with_xmp(encoded("WEBP"), "DMI-PROHIBITED-AIMLTRAINING")):
        assert check_image_signals(body, ALL).reason == "opt_out_metadata"
        Image.open(io.BytesIO(body)).load()                  # still an image that decodes


def test_a_prohibition_in_extended_xmp_parts_is_found(plain_jpeg):
    """A JPEG XMP packet over 64 KiB continues in Extended XMP APP1 segments (GUID, full length, offset, part)."""
    packet = signed_images.xmp_packet("DMI-PROHIBITED-AIMLTRAINING")
    cut = len(packet) // 2
    segments = b""
    for offset, part in ((cut, packet[cut:]), (0, packet[:cut])):          # parts may come in any order
        payload = (b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + len(packet).to_bytes(4, "big")
                   + offset.to_bytes(4, "big") + part)
        segments += b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    body = plain_jpeg[:2] + segments + plain_jpeg[2:]
    assert check_image_signals(body, ALL).reason == "opt_out_metadata"


def test_xmp_in_other_formats_is_found_by_the_bounded_scan():
    gif = encoded("GIF") + signed_images.xmp_packet("DMI-PROHIBITED")
    assert find_containers(gif).kind == "gif"
    assert check_image_signals(gif, ALL).reason == "opt_out_metadata"


def test_a_packet_with_a_dtd_is_never_parsed_but_its_prohibition_still_counts(plain_jpeg):
    bomb = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>').encode()
    assert image_signals.xmp_prohibition(bomb) is None
    packet = signed_images.xmp_packet("DMI-PROHIBITED-GENAIMLTRAINING")
    assert image_signals.xmp_prohibition(b"<!DOCTYPE x>" + packet) == "DMI-PROHIBITED-GENAIMLTRAINING"
    assert image_signals.xmp_prohibition(packet.replace(b"</x:xmpmeta>", b"")) == "DMI-PROHIBITED-GENAIMLTRAINING"


def test_the_metadata_signal_switched_off_passes(plain_jpeg):
    body = signed_images.jpeg_with_xmp_data_mining(plain_jpeg, "DMI-PROHIBITED")
    assert check_image_signals(body, ALL - {"metadata"}).reason is None


# -- C2PA -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,reason,message", [
    ("not_allowed", "opt_out_c2pa", "cawg.training-mining cawg.ai_training=notAllowed"),
    ("generative", "opt_out_c2pa", "cawg.training-mining cawg.ai_generative_training=notAllowed"),
    ("legacy", "opt_out_c2pa", "c2pa.training-mining c2pa.ai_training=notAllowed"),
    ("allowed", None, ""),                  # ai_inference is not a training use
])
def test_c2pa_training_mining_not_allowed_refuses(c2pa_images, name, reason, message):
    verdict = check_image_signals(c2pa_images[name], ALL)
    assert verdict.reason == reason and verdict.message.startswith(message)
    assert verdict.note == ""


def test_c2pa_constrained_refuses_unless_allowed(c2pa_images):
    assert check_image_signals(c2pa_images["constrained"], ALL, "deny").reason == "opt_out_c2pa"
    assert check_image_signals(c2pa_images["constrained"], ALL, "allow").reason is None
    assert check_image_signals(c2pa_images["not_allowed"], ALL, "allow").reason == "opt_out_c2pa"


def test_an_unreadable_manifest_passes_with_a_note(c2pa_images):
    broken = bytearray(c2pa_images["not_allowed"])
    broken[200:260] = bytes(60)                              # inside the APP11 JUMBF boxes
    verdict = check_image_signals(bytes(broken), ALL)
    assert verdict.reason is None and verdict.note.startswith("c2pa_unreadable: ")


def test_the_c2pa_signal_switched_off_passes(c2pa_images):
    assert check_image_signals(c2pa_images["not_allowed"], ALL - {"c2pa"}).reason is None


def test_the_c2pa_reader_runs_only_on_images_carrying_a_manifest(plain_jpeg, c2pa_images, monkeypatch):
    calls = []
    real = image_signals.read_active_manifest
    monkeypatch.setattr(image_signals, "read_active_manifest", lambda *a: calls.append(1) or real(*a))
    for body in (plain_jpeg, encoded("PNG"), encoded("WEBP")):
        assert check_image_signals(body, ALL).reason is None
    assert calls == []
    check_image_signals(c2pa_images["allowed"], ALL)
    assert calls == [1]


# -- in a download ----------------------------------------------------------------------------------------

def test_refused_images_leave_no_tar_member_and_their_rows_say_why(tmp_path, plain_jpeg, c2pa_images):
    bodies = {"http://a/plain.jpg": plain_jpeg,
              "http://a/xmp.jpg": signed_images.jpeg_with_xmp_data_mining(plain_jpeg, "DMI-PROHIBITED"),
              "http://a/c2pa.jpg": c2pa_images["not_allowed"]}
    rows = [InputRow(url=url, text="t", extra={"site": "a"}) for url in bodies]
    status, members, _ = run_shard(tmp_path, bodies, rows)
    assert status["http://a/plain.jpg"]["status"] == "success"
    assert status["http://a/xmp.jpg"]["status"] == "opt_out_metadata"
    assert status["http://a/c2pa.jpg"]["status"] == "opt_out_c2pa"
    for url in ("http://a/xmp.jpg", "http://a/c2pa.jpg"):
        assert status[url]["sha256"] is None and status[url]["site"] == "a"
    assert list(members) == [status["http://a/plain.jpg"]["key"]]


def test_with_the_signals_off_the_same_images_are_stored(tmp_path, plain_jpeg, c2pa_images):
    bodies = {"http://a/xmp.jpg": signed_images.jpeg_with_xmp_data_mining(plain_jpeg, "DMI-PROHIBITED"),
              "http://a/c2pa.jpg": c2pa_images["constrained"]}
    status, members, _ = run_shard(tmp_path, bodies, opt_out_signals="none")
    assert {row["status"] for row in status.values()} == {"success"} and len(members) == 2
    status, members, _ = run_shard(tmp_path, bodies, c2pa_constrained="allow")
    assert status["http://a/c2pa.jpg"]["status"] == "success"


def test_an_unreadable_manifest_is_stored_and_noted_in_the_status_row(tmp_path, c2pa_images):
    broken = bytearray(c2pa_images["not_allowed"])
    broken[200:260] = bytes(60)
    status, members, _ = run_shard(tmp_path, {"http://a/broken.jpg": bytes(broken)})
    row = status["http://a/broken.jpg"]
    assert row["status"] == "success" and row["error_message"].startswith("c2pa_unreadable: ")
    assert len(members) == 1
