"""Clip-level augmentation for video mappers (SPEC §9): one augmentation for a whole clip.

Detectron2 augmentations are sampled per image. :class:`ClipAugmentationList` applies a list of
them to the T frames of a clip; an augmentation marked *by clip* draws its random parameters
once per clip, so every frame gets the same resize, flip, crop, rotation, colour factor, ...
(the config styles "choice_by_clip", "range_by_clip" and "flip_by_clip" of the original
Mask2Former-VIS map onto this; "choice", "range", "horizontal", "vertical" sample per frame).
"""

from typing import List, Sequence, Tuple, Union

import numpy as np

from detectron2.data import transforms as T

__all__ = [
    "ClipAugmentationList",
    "build_clip_augmentations",
    "video_cfg_value",
    "CLIP_COLOR_AUGMENTATIONS",
]

_RESIZE_STYLES = ("choice", "range", "choice_by_clip", "range_by_clip")
_FLIP_STYLES = ("none", "horizontal", "vertical", "flip_by_clip")


def _brightness():
    return T.RandomBrightness(0.9, 1.1)


def _contrast():
    return T.RandomContrast(0.9, 1.1)


def _saturation():
    return T.RandomSaturation(0.9, 1.1)


def _rotation():
    return T.RandomRotation(
        [-15, 15], expand=False, center=[(0.4, 0.4), (0.6, 0.6)], sample_style="range"
    )


# INPUT.AUGMENTATIONS name -> factory (the original's ranges)
CLIP_COLOR_AUGMENTATIONS = {
    "brightness": _brightness,
    "contrast": _contrast,
    "saturation": _saturation,
    "rotation": _rotation,
}


class ClipAugmentationList:
    """Apply Detectron2 augmentations to every frame of a clip.

    Args:
        augmentations: ``T.Augmentation`` (sampled once per clip) or ``(augmentation, by_clip)``
            pairs; ``by_clip=False`` samples the augmentation independently for every frame.

    A by-clip augmentation is sampled once by replaying its random draws (``np.random``, which
    Detectron2's augmentations use) for each frame: the sampled parameters are identical, while
    quantities computed from the image itself (the mean grey level of RandomContrast, the
    greyscale of RandomSaturation) are those of each frame.
    """

    def __init__(self, augmentations: Sequence[Union[T.Augmentation, Tuple[T.Augmentation, bool]]]):
        self.augs: List[Tuple[T.Augmentation, bool]] = [
            a if isinstance(a, tuple) else (a, True) for a in augmentations
        ]
        for aug, _ in self.augs:
            if not isinstance(aug, T.Augmentation):
                raise TypeError(f"expected a detectron2 Augmentation, got {type(aug).__name__}")

    def __call__(
        self, frames: Sequence[np.ndarray]
    ) -> Tuple[List[np.ndarray], List[T.TransformList]]:
        """Augment ``frames`` (T arrays [H, W, C]).

        Returns:
            (the augmented frames, the per-frame ``TransformList``s to apply to annotations).
        """
        inputs = [T.AugInput(f) for f in frames]
        transforms: List[list] = [[] for _ in frames]
        for aug, by_clip in self.augs:
            state = np.random.get_state() if by_clip else None
            for aug_input, tfms in zip(inputs, transforms):
                if state is not None:
                    np.random.set_state(state)
                tfms.append(aug(aug_input))
        return [i.image for i in inputs], [T.TransformList(t) for t in transforms]

    def __repr__(self):
        items = [f"{aug}{'' if by_clip else ' (per frame)'}" for aug, by_clip in self.augs]
        return f"ClipAugmentationList[{', '.join(items)}]"


def video_cfg_value(cfg, key: str):
    """``cfg.INPUT.<key>`` with a clear error when the video config keys were not added."""
    if key not in cfg.INPUT:
        raise KeyError(
            f"cfg.INPUT.{key} is missing: video mappers need the video config keys; call "
            "mask2former.add_maskformer2_video_config(cfg) before merging the config file."
        )
    return cfg.INPUT[key]


def build_clip_augmentations(cfg, is_train: bool) -> ClipAugmentationList:
    """Clip augmentations from cfg.INPUT.

    Training: [RandomCrop (CROP.ENABLED)] -> ResizeShortestEdge(MIN_SIZE_TRAIN, MAX_SIZE_TRAIN,
    MIN_SIZE_TRAIN_SAMPLING) -> [RandomFlip (RANDOM_FLIP)] -> INPUT.AUGMENTATIONS in order
    ("brightness", "contrast", "saturation": factor in [0.9, 1.1]; "rotation": [-15, 15] degrees
    around a centre in the middle 20% of the frame). The crop is applied to the original frames,
    as in Detectron2's DatasetMapper, and sampled once per clip; so are the colour and rotation
    augmentations. Test: ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST).
    """
    inp = cfg.INPUT
    if not is_train:
        return ClipAugmentationList(
            [T.ResizeShortestEdge(inp.MIN_SIZE_TEST, inp.MAX_SIZE_TEST, "choice")]
        )
    style = inp.MIN_SIZE_TRAIN_SAMPLING
    if style not in _RESIZE_STYLES:
        raise ValueError(
            f"INPUT.MIN_SIZE_TRAIN_SAMPLING must be one of {_RESIZE_STYLES}, got {style!r}"
        )
    flip = inp.RANDOM_FLIP
    if flip not in _FLIP_STYLES:
        raise ValueError(f"INPUT.RANDOM_FLIP must be one of {_FLIP_STYLES}, got {flip!r}")
    names = list(video_cfg_value(cfg, "AUGMENTATIONS"))
    unknown = [n for n in names if n not in CLIP_COLOR_AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"INPUT.AUGMENTATIONS has unknown entries {unknown}; allowed: "
            f"{sorted(CLIP_COLOR_AUGMENTATIONS)}"
        )
    augs: List[Tuple[T.Augmentation, bool]] = []
    if inp.CROP.ENABLED:
        augs.append((T.RandomCrop(inp.CROP.TYPE, inp.CROP.SIZE), True))
    resize_style = style.replace("_by_clip", "")
    augs.append(
        (
            T.ResizeShortestEdge(inp.MIN_SIZE_TRAIN, inp.MAX_SIZE_TRAIN, resize_style),
            style.endswith("_by_clip"),
        )
    )
    if flip != "none":
        augs.append(
            (
                T.RandomFlip(horizontal=flip != "vertical", vertical=flip == "vertical"),
                flip == "flip_by_clip",
            )
        )
    augs += [(CLIP_COLOR_AUGMENTATIONS[n](), True) for n in names]
    return ClipAugmentationList(augs)
