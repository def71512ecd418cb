#!/usr/bin/env python
"""Check this project's models against reference outputs of the original implementations.

usage (from the repository root):
    python tools/parity_check.py FIXTURE CONFIG [IMAGE]

FIXTURE  reference outputs of the original code with the weights of
         ``mask2former.utils.testing.deterministic_init_``: a compact fixture of the repository
         (``tests/fixtures/parity_*.npz``) or a full-size one (``parity_*.pt``).
CONFIG   this project's config for the same model, e.g. configs/coco/panoptic/r50.yaml.
IMAGE    the image the fixture was made from (default: the one it names, else
         datasets/samples/coco_panoptic_sample/input_images/000000439180.jpg).

The fixture's ``opts`` are merged on top of CONFIG, the model gets the deterministic weights and
runs on IMAGE at its own size. Its head outputs (class and mask logits, the first auxiliary
masks, the backbone maps when the fixture has them) and its post-processed outputs (semantic
argmax and sampled values, panoptic map and segments, instances) are compared with the fixture:
relative error <= 1e-4 (fp16-stored outputs: 2e-3), maps >= 99.9 % pixels equal, segments and
classes equal; instances sorted by score. As in the fixtures, the post-processing runs on mask
logits centred per query (and, for MaskFormer v1, on the no-object logit lowered by the
fixture's ``no_object_shift``). A compact fixture is compared after the same reduction
(``mask2former.utils.parity.reduce_fixture``) was applied to this project's outputs.

Video fixtures (they hold ``num_frames``; Mask2Former-VIS) need
``mask2former.add_maskformer2_video_config``: the clip is cut from IMAGE as the fixture says and
the model is called as ``model([{"image": [T frames], "height", "width"}])``; its top-k tracks
are compared as a set.

One line per check, then a one-line summary; exit status 0 only when every output agrees.
Tests call :func:`run` (a list of (name, agrees, detail)).
"""

import argparse
import hashlib
import inspect
import os
import sys
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from mask2former.utils.parity import (  # noqa: E402
    ReductionSpec,
    compare,
    fixture_kind,
    load_fixture,
    reduce_fixture,
    summary,
)
from mask2former.utils.testing import deterministic_init_  # noqa: E402

SAMPLE_IMAGES = os.path.join(REPO, "datasets", "samples", "coco_panoptic_sample", "input_images")
DEFAULT_IMAGE = os.path.join(SAMPLE_IMAGES, "000000439180.jpg")

Check = Tuple[str, bool, str]


# --------------------------------------------------------------------------- set-up


def make_cfg(fixture: Dict[str, Any], config: str):
    """This project's config for ``fixture``: CONFIG, then the fixture's opts, on the CPU."""
    from detectron2.config import get_cfg

    from mask2former import add_maskformer2_config

    if not os.path.isfile(config):
        raise FileNotFoundError(f"config file {config!r} not found")
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    opts = [str(o) for o in fixture.get("opts", [])]
    if fixture_kind(fixture) == "video":
        try:
            from mask2former import add_maskformer2_video_config
        except ImportError as e:
            raise RuntimeError(
                "this is a video (Mask2Former-VIS) fixture: it needs "
                "mask2former.add_maskformer2_video_config and the video model") from e
        add_maskformer2_video_config(cfg)
        opts += ["INPUT.SAMPLING_FRAME_NUM", str(fixture["num_frames"])]
    cfg.merge_from_file(config)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *opts])
    return cfg


def build_model(fixture: Dict[str, Any], config: str):
    """(cfg, model): the model of ``config`` + the fixture's opts, in eval mode, holding the
    deterministic weights the fixture was made with."""
    from detectron2.modeling import build_model as d2_build_model

    cfg = make_cfg(fixture, config)
    return cfg, deterministic_init_(d2_build_model(cfg).eval())


def default_image(fixture: Dict[str, Any]) -> str:
    """The image a fixture was made from: the one a compact fixture records, else the COCO
    sample named by a video fixture's clip, else 000000439180.jpg."""
    source = fixture.get("source") or {}
    if source.get("image"):
        return os.path.join(REPO, source["image"])
    clip = fixture.get("clip")
    if isinstance(clip, str) and ".jpg" in clip:
        return os.path.join(SAMPLE_IMAGES, clip.split(":")[0].strip())
    return DEFAULT_IMAGE


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _read_rgb(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image {path!r} not found")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _to_chw(img: np.ndarray, input_format: str) -> torch.Tensor:
    if input_format == "BGR":
        img = img[:, :, ::-1]
    return torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


# --------------------------------------------------------------------------- running the model


class _HeadRecorder:
    """Hooks on the model's head (and backbone) during one inference call.

    Records the raw head outputs (asking for the auxiliary predictions when the head's forward
    takes ``return_aux``) and the backbone maps, then hands post-processing the mask logits centred
    per query over all their other dims and, for MaskFormer v1, the no-object logit lowered by
    ``no_object_shift`` (how the fixtures' post-processed outputs were made).
    """

    def __init__(self, model, no_object_shift: float, record_backbone: bool):
        self.head_calls: List[Dict[str, Any]] = []
        self.features: Optional[Dict[str, torch.Tensor]] = None
        self.shift = float(no_object_shift)
        head = model.sem_seg_head
        self.head_signature = inspect.signature(head.forward)
        self.handles = [head.register_forward_hook(self._after_head)]
        if "return_aux" in self.head_signature.parameters:
            self.handles.append(head.register_forward_pre_hook(self._ask_aux, with_kwargs=True))
        if record_backbone:
            self.handles.append(model.backbone.register_forward_hook(self._after_backbone))

    def _ask_aux(self, module, args, kwargs):
        bound = self.head_signature.bind(*args, **kwargs)
        bound.arguments["return_aux"] = True
        return bound.args, bound.kwargs

    def _after_backbone(self, module, inputs, outputs):
        self.features = dict(outputs)

    def _after_head(self, module, inputs, outputs):
        self.head_calls.append(outputs)
        pm = outputs["pred_masks"]
        changed = dict(outputs)
        changed["pred_masks"] = pm - pm.mean(dim=tuple(range(2, pm.dim())), keepdim=True)
        if self.shift:
            pl = outputs["pred_logits"].clone()
            pl[..., -1] -= self.shift
            changed["pred_logits"] = pl
        return changed

    def remove(self):
        for h in self.handles:
            h.remove()


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def model_outputs(fixture: Dict[str, Any], cfg, model, image: str) -> Dict[str, Any]:
    """Run ``model`` as the fixture was made; its outputs in the full fixture layout (flat)."""
    img = _read_rgb(image)
    video = fixture_kind(fixture) == "video"
    if video:
        (dy, dx), (ch, cw) = fixture["clip_shift"], fixture["clip_crop"]
        frames = [img[dy * t: dy * t + ch, dx * t: dx * t + cw] for t in range(fixture["num_frames"])]
        if any(f.shape[:2] != (ch, cw) for f in frames):
            raise ValueError(f"{image}: too small for the fixture's clip ({fixture.get('clip')})")
        tensors = [_to_chw(f, cfg.INPUT.FORMAT) for f in frames]
        h, w = ch, cw
        inputs = [{"image": tensors, "height": h, "width": w}]
    else:
        tensor = _to_chw(img, cfg.INPUT.FORMAT)
        h, w = tensor.shape[1:]
        inputs = [{"image": tensor, "height": h, "width": w}]

    wants_backbone = any(k.startswith("backbone.") for k in fixture)
    rec = _HeadRecorder(model, fixture.get("no_object_shift", 0.0), wants_backbone)
    try:
        with torch.no_grad():
            result = model(inputs)
    finally:
        rec.remove()
    if len(rec.head_calls) != 1:
        raise RuntimeError(f"the model's sem_seg_head ran {len(rec.head_calls)} times during one "
                           f"inference; the parity check compares the outputs of a single call")

    out: Dict[str, Any] = {}
    head = rec.head_calls[0]
    out["pred_logits"] = _numpy(head["pred_logits"].float())
    out["pred_masks"] = _numpy(head["pred_masks"].float())
    aux = head.get("aux_outputs") or []
    if aux:
        out["aux0_pred_masks"] = _numpy(aux[0]["pred_masks"].half())
    if rec.features is not None:
        for k in (k.split(".", 1)[1].split("@")[0] for k in fixture if k.startswith("backbone.")):
            if k in rec.features:
                out[f"backbone.{k}"] = _numpy(rec.features[k].half())

    if video:
        res = result[0] if isinstance(result, (list, tuple)) else result
        out["inference.image_size"] = [int(s) for s in res["image_size"]]
        out["inference.pred_scores"] = np.asarray(
            [float(s) for s in res["pred_scores"]], dtype=np.float32)
        out["inference.pred_labels"] = np.asarray([int(x) for x in res["pred_labels"]], np.int64)
        masks = [torch.as_tensor(m).bool() for m in res["pred_masks"]]
        out["inference.pred_masks"] = (_numpy(torch.stack(masks)) if masks
                                       else np.zeros((0, fixture["num_frames"], h, w), bool))
        return out

    res = result[0]
    if "sem_seg" in res:
        sem = res["sem_seg"]
        out["sem_seg_argmax"] = _numpy(sem.argmax(0).to(torch.int16))
        if "sem_seg_sample_index" in fixture:
            index = torch.as_tensor(np.asarray(fixture["sem_seg_sample_index"]))
            out["sem_seg_sample_index"] = np.asarray(fixture["sem_seg_sample_index"])
            out["sem_seg_sample"] = _numpy(sem.flatten(1)[:, index].float())
    if "panoptic_seg" in res:
        seg, info = res["panoptic_seg"]
        out["panoptic_seg"] = _numpy(seg.to(torch.int32))
        out["segments_info"] = [
            {"id": int(d["id"]), "isthing": bool(d["isthing"]), "category_id": int(d["category_id"])}
            for d in info]
    if "instances" in res:
        inst = res["instances"]
        out["instances.scores"] = _numpy(inst.scores.float())
        out["instances.pred_classes"] = _numpy(inst.pred_classes.long())
        out["instances.pred_masks"] = _numpy(inst.pred_masks.bool())
    return out


def run(fixture: Union[str, Dict[str, Any]], config: str, image: Optional[str] = None, *,
        model=None) -> List[Check]:
    """Compare this project's model with ``fixture`` (a path or a `load_fixture` dict).

    ``model``: an already built model of ``config`` + the fixture's opts (e.g. one whose weights a
    test changed); by default `build_model` builds one with the deterministic weights.
    Returns one (name, agrees, detail) per compared output.
    """
    fx = load_fixture(fixture) if isinstance(fixture, str) else fixture
    if model is None:
        cfg, model = build_model(fx, config)
    else:
        cfg = make_cfg(fx, config)
    image = image or default_image(fx)
    checks: List[Check] = []
    source = fx.get("source") or {}
    if source.get("image_sha256"):
        same = _sha256(image) == source["image_sha256"]
        checks.append(("input image", same, os.path.basename(image) + (
            "" if same else f" differs from the image the fixture was made from "
                            f"({source.get('image')})")))
    got = model_outputs(fx, cfg, model, image)
    if "reduction" in fx:  # compact fixture: our outputs through the same reduction
        got = reduce_fixture(got, ReductionSpec.from_json(fx["reduction"]))
    return checks + compare(got, fx)


def report(name: str, checks: List[Check]) -> int:
    """Print one line per check and the summary; 0 when every check agrees, else 1."""
    for n, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {n}: {detail}")
    print(summary(name, checks))
    return 0 if checks and all(ok for _, ok, _ in checks) else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Compare this project's model with reference outputs of the original "
                    "implementation (see the module docstring).")
    p.add_argument("fixture", help="parity fixture: compact .npz or full-size .pt")
    p.add_argument("config", help="this project's config file for the same model")
    p.add_argument("image", nargs="?", default=None,
                   help="the image the fixture was made from (default: the one it names)")
    args = p.parse_args(argv)
    for what, path in (("fixture", args.fixture), ("config", args.config), ("image", args.image)):
        if path is not None and not os.path.isfile(path):
            p.error(f"{what} {path!r} not found")
    checks = run(args.fixture, args.config, args.image)
    return report(os.path.basename(args.fixture), checks)


if __name__ == "__main__":
    sys.exit(main())
