"""Image and text signatures, and the vectorised MinHash against datasketch's own."""

from __future__ import annotations

import io

import numpy as np
import pytest
from datasketch import MinHash
from PIL import Image

from dedup.index import MinHasher, identity_hash
from dedup.signatures import (
    CODE_BITS,
    BadImage,
    decode_canvas,
    eval_image_signature,
    image_signature,
    jaccard,
    text_signature,
)
from dedup.synthetic import distinct_image, jpeg_bytes, letterbox, transformed_copy


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_signature_is_a_deterministic_set_of_small_integers():
    data = jpeg_bytes(distinct_image(1))
    first, second = image_signature(data), image_signature(data)
    assert first.dtype == np.uint32 and np.array_equal(first, second)
    assert len(first) > 100 and np.all(np.diff(first.astype(np.int64)) > 0)
    assert int(first.max()) < 1 << CODE_BITS


def test_a_copy_stays_similar_and_another_image_does_not():
    picture = distinct_image(2)
    original = image_signature(jpeg_bytes(picture, 95))
    copy = image_signature(transformed_copy(picture, seed=3))
    other = image_signature(jpeg_bytes(distinct_image(4)))
    assert jaccard(original, copy) > 0.15
    assert jaccard(original, other) < 0.06


def test_letterbox_bars_are_trimmed():
    picture = distinct_image(5, size=(400, 220))
    original = image_signature(jpeg_bytes(picture, 95))
    padded = image_signature(jpeg_bytes(letterbox(picture), 95))
    assert jaccard(original, padded) > 0.4            # distinct images stay under ~0.05


def test_png_jpeg_and_grayscale_inputs():
    picture = distinct_image(6)
    assert jaccard(image_signature(png_bytes(picture)), image_signature(jpeg_bytes(picture, 95))) > 0.6
    rgba = picture.convert("RGBA")
    assert jaccard(image_signature(png_bytes(rgba)), image_signature(png_bytes(picture))) > 0.9
    grey = image_signature(jpeg_bytes(picture.convert("L")))
    assert len(grey) > 50                              # luma elements survive, chroma ones are gone


def test_eval_signature_keeps_crop_stable_elements():
    data = jpeg_bytes(distinct_image(7), 95)
    stable, plain = eval_image_signature(data), image_signature(data)
    # kept = in at least 2 of the 5 signings (as is, and cropped 5% at each corner)
    assert len(stable) > 50
    assert len(np.intersect1d(stable, plain)) > 0.5 * len(stable)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0 truncated", b"\x89PNG\r\n\x1a\n"])
def test_unreadable_images_raise_bad_image(data):
    with pytest.raises(BadImage) as raised:
        decode_canvas(data)
    assert " at 0x" not in str(raised.value)      # the same input gives the same reason in the report


def test_flat_image_has_an_empty_signature():
    assert len(image_signature(jpeg_bytes(Image.new("RGB", (300, 200), (40, 90, 200))))) == 0


def test_text_signature():
    a = text_signature("A red circle on a blue background, photographed at noon")
    b = text_signature("a red circle on a BLUE background photographed at noon!")
    c = text_signature("an entirely different caption about mountains")
    assert jaccard(a, b) == 1.0 and jaccard(a, c) < 0.1
    assert len(text_signature("cat")) == 0 and len(text_signature(None)) == 0


def test_vectorised_minhash_equals_datasketch():
    codes = image_signature(jpeg_bytes(distinct_image(8)))
    reference = MinHash(num_perm=128, seed=1, hashfunc=identity_hash)
    reference.update_batch(codes.tolist())
    ours = MinHasher(128, 1)
    assert np.array_equal(ours.hashvalues(codes), reference.hashvalues)
    assert ours.minhash(codes).jaccard(reference) == 1.0
    # repeats do not change a MinHash
    assert np.array_equal(ours.hashvalues(np.concatenate([codes, codes[:50]])), reference.hashvalues)
