"""--blocklist-hashes: the list file, exact and PDQ matches, and what a blocklisted row leaves behind."""

from __future__ import annotations

import hashlib
import io
import os
import random

import numpy as np
import pdqhash
import pytest
from PIL import Image

from wit_pipeline.download.blocklist import (
    PDQ_MAX_SIDE,
    load_blocklist,
    parse_blocklist,
    pdq_bits,
    pdq_hex,
)
from wit_pipeline.download.images import ImageChecks, load_resized
from wit_pipeline.download.reader import InputRow
from wit_pipeline.errors import UserError
from wit_pipeline.sampleweb.draw import draw_shape

from .fake_session import jpeg, run_shard


def picture(seed: int, size=(480, 384)) -> Image.Image:
    return draw_shape("star" if seed % 2 else "circle", "red", "blue", size, seed)


def noise(seed: int, size=(320, 240)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def write_list(tmp_path, text: str) -> str:
    path = tmp_path / "blocklist.txt"
    path.write_text(text)
    return str(path)


# -- the file ---------------------------------------------------------------------------------------------

def test_each_hash_keeps_its_line_number_past_comments_and_blank_lines():
    sha, md5, pdq = "ab" * 32, "cd" * 16, "0f" * 32
    blocklist = parse_blocklist(f"# a list\n\nsha256:{sha.upper()}\n  md5:{md5}  # inline note\npdq:{pdq}\n", "x")
    assert blocklist.sha256 == {sha: 3}
    assert blocklist.md5 == {md5: 4}
    assert blocklist.pdq_lines.tolist() == [5] and pdq_hex(np.unpackbits(np.frombuffer(bytes.fromhex(pdq), np.uint8)
                                                                         )) == pdq


@pytest.mark.parametrize("line,message", [
    ("sha1:" + "ab" * 20, r"expected sha256:HEX, md5:HEX or pdq:HEX"),
    ("ab" * 32, r"expected sha256:HEX, md5:HEX or pdq:HEX"),
    ("sha256:" + "ab" * 31, r"a sha256 hash is 64 hex digits"),
    ("md5:" + "zz" * 16, r"a md5 hash is 32 hex digits"),
    ("pdq:" + "ab" * 33, r"a pdq hash is 64 hex digits"),
])
def test_a_malformed_line_is_one_user_error_naming_file_and_line(tmp_path, line, message):
    path = write_list(tmp_path, f"# ok\nmd5:{'00' * 16}\n{line}\n")
    with pytest.raises(UserError, match=rf"--blocklist-hashes {path}:3: {message}") as caught:
        load_blocklist(path)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_user_error_naming_the_flag(tmp_path):
    with pytest.raises(UserError, match=r"^--blocklist-hashes: .*nope\.txt"):
        load_blocklist(str(tmp_path / "nope.txt"))


# -- matching ---------------------------------------------------------------------------------------------

def test_sha256_and_md5_lines_match_the_downloaded_bytes():
    body = b"some image bytes"
    blocklist = parse_blocklist(f"sha256:{hashlib.sha256(body).hexdigest()}\nmd5:{hashlib.md5(b'other').hexdigest()}",
                                "x")
    assert blocklist.match_bytes(body) == 1
    assert blocklist.match_bytes(b"other") == 2
    assert blocklist.match_bytes(b"neither") is None


def test_pdq_hex_is_pdqhashs_bits_in_order_most_significant_first():
    bits, _quality = pdqhash.compute(np.asarray(picture(1)))
    assert pdq_hex(bits) == f"{int(''.join(str(int(b)) for b in bits), 2):064x}"
    assert pdq_hex(picture(1)) == pdq_hex(bits)


def test_a_reencoded_resized_copy_matches_within_31_and_a_different_image_does_not():
    original = picture(3)
    blocklist = parse_blocklist(f"# PDQ of the original\npdq:{pdq_hex(original)}\n", "x")
    copy = Image.open(io.BytesIO(jpeg(original.resize((300, 240)), quality=60)))
    assert blocklist.match_pdq(pdq_bits(copy.convert("RGB"))) == 2
    assert blocklist.match_pdq(pdq_bits(noise(4))) is None


def test_pdq_matches_up_to_the_max_distance_and_the_closest_line_wins():
    bits = pdqhash.compute(np.asarray(picture(5)))[0].astype(np.uint8)
    far, near = bits.copy(), bits.copy()
    far[:20] ^= 1
    near[:5] ^= 1
    blocklist = parse_blocklist(f"pdq:{pdq_hex(far)}\npdq:{pdq_hex(near)}\n", "x", max_distance=20)
    assert blocklist.match_pdq(bits) == 2
    only_far = parse_blocklist(f"pdq:{pdq_hex(far)}\n", "x", max_distance=20)
    assert only_far.match_pdq(bits) == 1
    assert parse_blocklist(f"pdq:{pdq_hex(far)}\n", "x", max_distance=19).match_pdq(bits) is None


def test_pdq_matching_over_ten_thousand_lines_finds_the_closest_line_as_a_bit_by_bit_count_does():
    rng = random.Random(0)
    hashes = [rng.getrandbits(256) for _ in range(10_000)]
    bits = pdqhash.compute(np.asarray(picture(6)))[0]
    image = int("".join(str(int(bit)) for bit in bits), 2)
    hashes[7_000] = image ^ (0b1011 << 100)         # 3 bits away: the line to find
    hashes[9_000] = image ^ (0b11111 << 40)         # 5 bits away: matches too, but is farther
    blocklist = parse_blocklist("\n".join(f"pdq:{value:064x}" for value in hashes), "x")
    closest = min(range(len(hashes)), key=lambda i: (bin(hashes[i] ^ image).count("1"), i))
    assert blocklist.match_pdq(bits) == closest + 1 == 7_001


# -- a blocklisted row ------------------------------------------------------------------------------------

def test_blocklisted_rows_leave_no_tar_member_and_their_status_row_says_only_the_line(tmp_path):
    plain, exact, copy_source = jpeg(picture(7)), jpeg(picture(8)), picture(9)
    by_md5 = jpeg(picture(10))
    copy = jpeg(copy_source.resize((240, 192)), quality=70)
    blocklist = write_list(tmp_path, f"sha256:{hashlib.sha256(exact).hexdigest()}\n"
                                     f"md5:{hashlib.md5(by_md5).hexdigest()}\npdq:{pdq_hex(copy_source)}\n")
    bodies = {"http://a/plain.jpg": plain, "http://a/exact.jpg": exact, "http://a/md5.jpg": by_md5,
              "http://a/copy.jpg": copy}
    status, members, out = run_shard(tmp_path, bodies, blocklist_hashes=blocklist)
    assert status["http://a/plain.jpg"]["status"] == "success"
    expected = {"http://a/exact.jpg": "line 1", "http://a/md5.jpg": "line 2", "http://a/copy.jpg": "line 3"}
    for url, message in expected.items():
        row = status[url]
        assert (row["status"], row["error_message"]) == ("blocklisted", message)
        assert all(row[name] is None for name in ("sha256", "original_width", "width", "height", "exif"))
        assert row["key"] not in members
    assert list(members) == [status["http://a/plain.jpg"]["key"]]
    written = b"".join(open(os.path.join(out, name), "rb").read() for name in os.listdir(out))
    for body in (exact, by_md5, copy):
        assert hashlib.sha256(body).hexdigest().encode() not in written and body[-200:] not in written


def test_a_blocklisted_image_is_refused_before_verify_hash_can_name_its_sha256(tmp_path):
    body = jpeg(picture(11))
    blocklist = write_list(tmp_path, f"sha256:{hashlib.sha256(body).hexdigest()}\n")
    rows = [InputRow(url="http://a/x.jpg", text="x", extra={"expected": "00" * 32})]
    status, members, _ = run_shard(tmp_path, {"http://a/x.jpg": body}, rows, blocklist_hashes=blocklist,
                                   verify_hash="expected")
    assert status["http://a/x.jpg"]["status"] == "blocklisted" and not members



def photo_like(seed: int, size=(1600, 1200)) -> Image.Image:
    """Structure at several scales (PDQ quality 100), unlike the flat drawings."""
    rng = np.random.default_rng(seed)
    layers = [np.asarray(Image.fromarray(rng.integers(0, 256, (k * 3 // 4 + 1, k, 3), dtype=np.uint8))
                         .resize(size, Image.Resampling.BICUBIC), np.float32) * weight
              for k, weight in ((4, 0.4), (8, 0.3), (16, 0.2), (64, 0.1))]
    return Image.fromarray(sum(layers).clip(0, 255).astype(np.uint8))


def test_the_pdq_check_sees_a_jpeg_decoded_at_least_512_a_side_whatever_the_output_size():
    seen = []
    body = jpeg(photo_like(12))
    load_resized(body, ImageChecks(10, 3.0, 10**8), 64, "border", inspect=lambda image: seen.append(image.size),
                 inspect_side=PDQ_MAX_SIDE)
    assert seen and max(seen[0]) >= PDQ_MAX_SIDE and max(seen[0]) < 1600     # a draft decode, large enough
    plain, _ = load_resized(body, ImageChecks(10, 3.0, 10**8), 64, "border")
    assert plain.size == (64, 64)


def test_a_large_photos_reencoded_copy_is_blocklisted_at_a_small_output_size(tmp_path):
    original = photo_like(13)
    copy = jpeg(original.resize((1200, 900), Image.Resampling.LANCZOS), quality=75)
    blocklist = write_list(tmp_path, f"pdq:{pdq_hex(original)}\n")
    status, members, _ = run_shard(tmp_path, {"http://a/copy.jpg": copy}, blocklist_hashes=blocklist,
                                   image_size=64)
    assert status["http://a/copy.jpg"]["status"] == "blocklisted" and not members


def test_a_resume_tells_an_edited_blocklist_from_the_one_the_shards_were_checked_against(tmp_path):
    from wit_pipeline.download.pipeline import DownloadOptions

    listed = tmp_path / "blocklist.txt"
    listed.write_text(f"sha256:{'a' * 64}\n")
    options = DownloadOptions(input="in.parquet", out=str(tmp_path / "out"), blocklist_hashes=str(listed))
    before = options.output_settings()["blocklist_hashes"]
    listed.write_text(f"sha256:{'a' * 64}\nsha256:{'b' * 64}\n")
    after = options.output_settings()["blocklist_hashes"]
    assert before != after and before.startswith(str(listed))
