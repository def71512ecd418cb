"""build_model(cfg).state_dict() equals the original's listings key for key, shape for shape."""

import pytest

from helpers import LISTINGS, build_on_meta, cached_model, load_listing


def _layout(model):
    return {
        k: [list(v.shape), str(v.dtype).replace("torch.", "")]
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_state_dict_matches_listing(name):
    ref = load_listing(name)
    # the real-weight r50 model is shared with other tests; the others only need the layout
    rel = LISTINGS[name]
    model = cached_model(rel) if name == "coco_panoptic_r50" else build_on_meta(rel)
    got = _layout(model)
    want = ref["state_dict"]
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    assert (
        not missing and not unexpected
    ), f"{name}: missing {missing[:10]} ({len(missing)}), unexpected {unexpected[:10]} ({len(unexpected)})"
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, f"{name}: shape/dtype differ: {dict(list(wrong.items())[:10])}"
    assert list(got) == list(want), f"{name}: same keys but a different order"
    assert len(got) == ref["num_tensors"]
    assert sum(p.numel() for p in model.parameters()) == ref["num_params"]


def test_pixel_mean_std_not_in_state_dict(coco_r50_model):
    sd = coco_r50_model.state_dict()
    assert "pixel_mean" not in sd and "pixel_std" not in sd
    assert tuple(coco_r50_model.pixel_mean.shape) == (3, 1, 1)
    assert "criterion.empty_weight" in sd
    assert sd["criterion.empty_weight"][-1].item() == pytest.approx(0.1)
