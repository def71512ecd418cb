import io
import json
import logging
import multiprocessing as mp

import cv2
import numpy as np
import pytest
from PIL import Image

from mask2former.data.robust_loading import (
    BadSampleError,
    RobustDatasetMapper,
    read_label_map,
    read_image,
    read_skip_log,
    record_skip,
    sanitize_annotations,
    set_skip_log,
    summarize_skip_log,
)


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)


def test_grayscale_rgba_palette_and_bgr(tmp_path, rgb):
    gray = rgb[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_image(str(tmp_path / "g.png"), "RGB")
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    assert all(np.array_equal(out[..., c], gray) for c in range(3))

    rgba = np.concatenate([rgb, np.full((12, 16, 1), 7, np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(read_image(str(tmp_path / "a.png"), "RGB"), rgb)
    assert np.array_equal(read_image(str(tmp_path / "a.png"), "BGR"), rgb[..., ::-1])

    pal = Image.fromarray(rgb, "RGB").quantize(colors=16)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    expect = np.asarray(pal.convert("RGB"))
    assert np.array_equal(read_image(str(tmp_path / "p.png"), "RGB"), expect)


def test_16bit_images_are_scaled_not_clipped(tmp_path):
    vals = np.array([[0, 257, 257 * 100], [257 * 200, 65535, 128]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), vals)
    out = read_image(str(tmp_path / "g16.png"), "RGB")
    expect = np.array([[0, 1, 100], [200, 255, 0]], dtype=np.uint8)
    assert np.array_equal(out[..., 0], expect) and np.array_equal(out[..., 2], expect)
    # label maps keep their raw 16-bit values (ADE20K-full has > 255 classes)
    raw = read_image(str(tmp_path / "g16.png"))
    assert raw.dtype == np.uint16 and np.array_equal(raw, vals)
    # 48-bit colour PNG (cv2 writes BGR)
    c = np.zeros((2, 2, 3), np.uint16)
    c[..., 2], c[..., 1], c[..., 0] = 257 * 10, 257 * 20, 257 * 30
    cv2.imwrite(str(tmp_path / "c16.png"), c)
    assert read_image(str(tmp_path / "c16.png"), "RGB")[0, 0].tolist() == [10, 20, 30]


def _jpeg_bytes(rgb):
    buf = io.BytesIO()
    Image.fromarray(np.kron(rgb, np.ones((8, 8, 1), np.uint8)), "RGB").save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["truncated_jpeg", "truncated_png", "random_bytes", "empty",
                                  "missing", "html"])
def test_unreadable_files_raise_bad_sample_naming_the_file(tmp_path, rgb, kind):
    path = tmp_path / f"{kind}.jpg"
    if kind == "truncated_jpeg":
        data = _jpeg_bytes(rgb)
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_png":
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[:-30])
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(1).bytes(2000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "html":
        path.write_bytes(b"<html><body>404 Not Found</body></html>")
    with pytest.raises(BadSampleError) as ei:
        read_image(str(path), "RGB")
    assert ei.value.file_name == str(path) and str(path) in str(ei.value)


def test_sanitize_annotations():
    annos = [
        {"segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "category_id": 1, "bbox": [1, 1, 4, 4]},
        {"segmentation": [[1, 1, 2, 2]], "category_id": 2},                       # 2 points
        {"segmentation": [[1, 1, 1, 1, 1, 1]], "category_id": 3},                 # zero area
        {"segmentation": [[-5, -5, 50, -5, 50, 50, -5, 50]], "category_id": 4},   # out of bounds
        {"segmentation": [[100, 100, 120, 100, 120, 120]], "category_id": 5},     # fully outside
        {"segmentation": [[1, 1, float("nan"), 1, 5, 5]], "category_id": 6},
        {"segmentation": {"size": [3, 3], "counts": "x"}, "category_id": 7},     # wrong RLE size
        {"segmentation": [[1, 1, 5, 1, 5, 5]], "bbox": [0, 0, float("inf"), 1], "category_id": 8},
        {"segmentation": [[1, 1, 5, 1, 5, 5], [0, 0, 1, 1]], "category_id": 9},   # one bad part
    ]
    kept, problems = sanitize_annotations(annos, height=10, width=20)
    assert [a["category_id"] for a in kept] == [1, 4, 9]
    assert kept[1]["segmentation"] == [[0, 0, 20, 0, 20, 10, 0, 10]]
    assert kept[2]["segmentation"] == [[1, 1, 5, 1, 5, 5]]
    assert annos[3]["segmentation"][0][0] == -5  # input not modified
    text = " | ".join(problems)
    for frag in ["polygon with 4 coordinates", "zero-area polygon", "clipped", "NaN/Inf",
                 "RLE of size", "non-finite bbox"]:
        assert frag in text, frag


class _FlakyMapper:
    def __init__(self, bad):
        self.bad = bad
        self.augmentations = ["aug"]

    def __call__(self, d):
        if d["file_name"] in self.bad:
            return read_image(d["file_name"], "RGB")  # raises BadSampleError
        return {"ok": d["file_name"]}


def test_robust_mapper_skips_logs_and_summarises(tmp_path, caplog):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    set_skip_log(str(tmp_path / "skipped.jsonl"))
    try:
        m = RobustDatasetMapper(_FlakyMapper({str(bad)}), summary_period=2)
        assert m.augmentations == ["aug"]
        with caplog.at_level(logging.WARNING):
            outs = [m({"file_name": f}) for f in ["a.jpg", str(bad), "b.jpg", str(bad)]]
        assert outs[0] == {"ok": "a.jpg"} and outs[1] is None and outs[3] is None
        assert f"Skipping sample {bad}: unreadable image" in caplog.text
        assert "2 train samples skipped so far" in caplog.text
        recs = read_skip_log()
        assert [r["file"] for r in recs] == [str(bad), str(bad)]
        assert f"{bad} (x2)" in summarize_skip_log(split="train")
        assert summarize_skip_log(split="test") == "No test samples were skipped."
    finally:
        set_skip_log(None)


def test_robust_mapper_sanitises_annotations_before_the_mapper():
    seen = []
    m = RobustDatasetMapper(lambda d: seen.append(d) or d)
    d = {"file_name": "x.jpg", "height": 10, "width": 10,
         "annotations": [{"segmentation": [[0, 0, 1, 1]], "category_id": 0},
                         {"segmentation": [[0, 0, 5, 0, 5, 5]], "category_id": 1}]}
    m(d)
    assert [a["category_id"] for a in seen[0]["annotations"]] == [1]
    assert len(d["annotations"]) == 2


def test_robust_mapper_stops_on_systematic_failure(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")

    def unreadable(d):
        return read_image(str(bad), "RGB")  # BadSampleError, a data fault, every time

    m = RobustDatasetMapper(unreadable, max_consecutive_failures=3)
    assert m({"file_name": "1"}) is None and m({"file_name": "2"}) is None
    with pytest.raises(RuntimeError, match="3 samples in a row failed.*dataset root"):
        m({"file_name": "3"})
    strict = RobustDatasetMapper(unreadable, skip=False)
    with pytest.raises(BadSampleError, match="unreadable image"):
        strict({"file_name": "4"})


@pytest.mark.parametrize("error", [TypeError("bad operand"), KeyError("pan_seg_file_name"),
                                   RuntimeError("shape mismatch"), AssertionError()])
def test_robust_mapper_lets_bugs_through_on_the_first_occurrence(error):
    """Only data faults are skipped: a mapper bug propagates at once, however many retries the
    consecutive-failure limit would allow."""
    def buggy(d):
        raise error

    m = RobustDatasetMapper(buggy, max_consecutive_failures=1000)
    with pytest.raises(type(error)):
        m({"file_name": "x.jpg"})
    assert m.n_skipped == 0


def test_label_map_of_another_size_is_a_data_fault(tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    label = tmp_path / "label.png"
    Image.fromarray(np.zeros((8, 12), np.uint8)).save(label)
    with pytest.raises(BadSampleError, match=r"image is 12x10 but its label map .* is 12x8") as e:
        read_label_map(str(label), image, "img.jpg")
    assert e.value.file_name == "img.jpg"
    assert read_label_map(str(label), image[:8], "img.jpg").shape == (8, 12)


def test_robust_mapper_sanitises_video_annotations_per_frame():
    seen = []
    m = RobustDatasetMapper(lambda d: seen.append(d) or d)
    good = {"segmentation": [[0, 0, 5, 0, 5, 5]], "category_id": 1, "id": 1}
    bad = {"segmentation": [[0, 0, 1, 1]], "category_id": 1, "id": 2}
    d = {"file_names": ["f0.jpg", "f1.jpg"], "height": 10, "width": 10,
         "annotations": [[good, bad], [good]]}
    m(d)
    assert [[a["id"] for a in frame] for frame in seen[0]["annotations"]] == [[1], [1]]


def _worker(path, i):
    set_skip_log(path)
    for j in range(50):
        record_skip(f"w{i}_{j}.jpg", "x" * 300)


def test_skip_log_is_safe_across_processes(tmp_path):
    path = str(tmp_path / "skips.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(path, i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) == 200
    assert len({json.loads(x)["file"] for x in lines}) == 200
