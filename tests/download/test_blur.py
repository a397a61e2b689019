"""--blur-bbox-col: img2dataset's bbox_col boxes blurred before resizing; a malformed cell is bad_bbox."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from wit_pipeline.download.images import ImageChecks, load_resized
from wit_pipeline.download.reader import InputRow
from wit_pipeline.download.resize import BadBoxes, blur_boxes, parse_boxes

from .fake_session import jpeg, run_shard

CHECKS = ImageChecks(min_image_size=10, max_aspect_ratio=3.0, max_pixels=10**8)


def noise(size=(400, 300), seed=0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- the cell ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", [None, "", "  ", [], "[]"])
def test_an_empty_cell_has_no_boxes(cell):
    assert parse_boxes(cell) == ()


def test_boxes_come_from_a_list_or_its_json_text_and_are_clipped_to_the_image():
    boxes = [[0.1, 0.2, 0.3, 0.4], [-0.5, 0, 1.5, 1]]
    assert parse_boxes(boxes) == parse_boxes(json.dumps(boxes)) == ((0.1, 0.2, 0.3, 0.4), (0.0, 0.0, 1.0, 1.0))
    assert parse_boxes(np.array(boxes)) == parse_boxes(boxes)


@pytest.mark.parametrize("cell", ["not json", "{}", 3, [0.1, 0.2, 0.3, 0.4], [[0.1, 0.2, 0.3]],
                                  [["a", 0, 1, 1]], [[0, 0, float("nan"), 1]], [[0.5, 0, 0.2, 1]], [[0, 0.9, 1, 0.1]]])
def test_a_cell_that_is_not_a_list_of_boxes_is_bad(cell):
    with pytest.raises(BadBoxes):
        parse_boxes(cell)


# -- the blur ---------------------------------------------------------------------------------------------

def changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16)).max(axis=2) > 0


def test_blur_changes_the_boxed_area_and_leaves_the_rest_alone():
    image = noise()
    blurred = blur_boxes(image.copy(), ((0.25, 0.25, 0.5, 0.5),))       # pixels 100..200 x 75..150
    diff = changed(image, blurred)
    inside = np.asarray(blurred, np.float32)[90:135, 115:185]
    assert diff[90:135, 115:185].mean() > 0.95 and inside.std() < 0.5 * np.asarray(image, np.float32).std()
    # img2dataset grows the box by 10% of its longer side (10 px) and fades its edge over ~3 sigma (~10 px)
    assert not diff[:, 240:].any() and not diff[:, :60].any()
    assert not diff[185:, :].any() and not diff[:40, :].any()


@pytest.mark.parametrize("boxes", [((0.25, 0.25, 0.5, 0.5),), ((0.1, 0.1, 0.9, 0.9),),
                                   ((0.0, 0.0, 0.1, 0.1), (0.6, 0.6, 0.9, 0.8))])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # albumentations, inside img2dataset
def test_the_blur_matches_img2datasets_blurrer(boxes):
    blurrer = pytest.importorskip("img2dataset.blurrer")
    image = noise(seed=4).filter(ImageFilter.GaussianBlur(2))
    theirs = blurrer.BoundingBoxBlurrer()(np.asarray(image).copy(), [list(box) for box in boxes]).astype(np.int16)
    ours = np.asarray(blur_boxes(image.copy(), boxes), np.int16)
    assert np.abs(theirs - ours).mean() < 1.0 and np.abs(theirs - ours).max() <= 20


def test_several_boxes_are_blurred_and_a_zero_area_box_blurs_nothing():
    image = noise(seed=1)
    assert not changed(image, blur_boxes(image.copy(), ((0.5, 0.5, 0.5, 0.5),))).any()
    diff = changed(image, blur_boxes(image.copy(), ((0.0, 0.0, 0.1, 0.1), (0.8, 0.8, 1.0, 1.0))))
    assert diff[5:25, 5:35].all() and diff[260:295, 340:395].mean() > 0.95
    assert not diff[100:200, 120:280].any()


def test_the_blur_happens_before_resizing():
    image = noise(seed=2)
    body = png(image)
    plain, _ = load_resized(body, CHECKS, 200, "keep_ratio_largest")
    blurred, _ = load_resized(body, CHECKS, 200, "keep_ratio_largest", boxes=((0.5, 0.5, 1.0, 1.0),))
    expected = blur_boxes(image.copy(), ((0.5, 0.5, 1.0, 1.0),)).resize((200, 150), Image.Resampling.BOX)
    assert np.array_equal(np.asarray(blurred), np.asarray(expected))
    diff = changed(plain, blurred)
    assert diff[90:, 110:].mean() > 0.9 and not diff[:55, :].any()


# -- in a download ----------------------------------------------------------------------------------------

def test_a_download_blurs_each_rows_boxes_and_carries_the_column(tmp_path):
    body = png(noise(seed=3))
    rows = [InputRow(url="http://a/x.png", text="x", extra={"faces": [[0.0, 0.0, 0.5, 0.5]]}),
            InputRow(url="http://a/y.png", text="y", extra={"faces": []})]
    bodies = {"http://a/x.png": body, "http://a/y.png": body}
    status, members, _ = run_shard(tmp_path, bodies, rows, blur_bbox_col="faces", image_size=400,
                                   resize_mode="no")
    x, y = (members[status[url]["key"]] for url in bodies)
    decoded = [np.asarray(Image.open(io.BytesIO(m["jpg"])), np.float32) for m in (x, y)]
    assert decoded[0][:130, :180].std() < 0.6 * decoded[1][:130, :180].std()   # blurred top-left
    assert np.abs(decoded[0][200:, 250:] - decoded[1][200:, 250:]).max() == 0   # the rest untouched
    assert json.loads(x["json"])["faces"] == [[0.0, 0.0, 0.5, 0.5]]


def test_a_malformed_box_cell_is_bad_bbox_and_nothing_is_stored(tmp_path):
    rows = [InputRow(url="http://a/x.jpg", text="x", extra={"faces": "[[0.1, 0.2]]"})]
    status, members, _ = run_shard(tmp_path, {"http://a/x.jpg": jpeg(noise())}, rows, blur_bbox_col="faces")
    row = status["http://a/x.jpg"]
    assert row["status"] == "bad_bbox" and "--blur-bbox-col 'faces'" in row["error_message"]
    assert members == {}
