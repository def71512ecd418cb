"""Draw a Mask2Former model's predictions: the demos' `VisualizationDemo` and its helpers.

Used by ``demo/demo.py``, ``demo/demo_video.py`` (:func:`draw_tracks`), ``tools/visualize_data.py``
and the quick starts.

The flow is Detectron2's :class:`~detectron2.engine.DefaultPredictor` (resize the shortest edge
to ``INPUT.MIN_SIZE_TEST``, convert to ``INPUT.FORMAT``, run the model in eval mode; weights
loaded safely by :class:`mask2former.engine.SafeDefaultPredictor`) followed by
Detectron2's :class:`~detectron2.utils.visualizer.Visualizer` (images) or
:class:`~detectron2.utils.video_visualizer.VideoVisualizer` (video frames).

Which result is drawn (``task="auto"``): the panoptic segmentation if the model produced one,
otherwise the instances, otherwise the semantic segmentation. Instances and panoptic segments
below the confidence threshold are removed before drawing (see :func:`filter_instances` and
:func:`filter_panoptic`).
"""
import logging
from typing import Dict, Iterator, List, Tuple

import numpy as np
import torch

from detectron2.data import MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.structures import Instances
from detectron2.utils.colormap import random_color
from detectron2.utils.video_visualizer import VideoVisualizer
from detectron2.utils.visualizer import ColorMode, VisImage, Visualizer
from ..engine.predictor import SafeDefaultPredictor  # .safetensors/.pth/.pkl, safe loading

logger = logging.getLogger(__name__)

TASKS = ("auto", "panoptic", "instance", "semantic")


def full_class_metadata(metadata: Metadata, num_classes: int) -> Metadata:
    """Metadata whose ``thing_classes`` / ``thing_colors`` index all ``num_classes`` classes.

    Mask2Former's panoptic and instance outputs use one contiguous id space over all classes
    (things and stuff), the one of ``stuff_classes``. Detectron2's Visualizer looks thing ids up in
    ``thing_classes``, which some metadata restrict to the thing classes. When ``stuff_classes``
    has exactly ``num_classes`` entries and ``thing_classes`` does not, a copy with thing names /
    colours taken from the stuff ones is returned; otherwise ``metadata`` itself.
    """
    stuff = metadata.get("stuff_classes", None)
    things = metadata.get("thing_classes", None)
    if stuff is None or len(stuff) != num_classes or (things is not None and len(things) == num_classes):
        return metadata
    values = metadata.as_dict()
    values["thing_classes"] = list(stuff)
    if metadata.get("stuff_colors", None) is not None:
        values["thing_colors"] = list(metadata.stuff_colors)
    else:
        values.pop("thing_colors", None)
    copy = Metadata(name=values.pop("name"))
    copy.set(**values)
    return copy


def filter_instances(instances: Instances, threshold: float) -> Instances:
    """Keep the instances whose ``scores`` are >= ``threshold``.

    Args:
        instances: predictions of one image with a ``scores`` field of shape [N].
        threshold: minimum score; 0 keeps everything.
    Returns:
        Instances: the kept instances (same fields, M <= N entries).
    """
    if threshold <= 0 or not instances.has("scores"):
        return instances
    return instances[instances.scores >= threshold]


def filter_panoptic(
    panoptic_seg: torch.Tensor, segments_info: List[Dict], threshold: float
) -> Tuple[torch.Tensor, List[Dict], bool]:
    """Remove the panoptic segments whose ``"score"`` is below ``threshold``.

    The pixels of a removed segment become 0 (unlabelled), the id Mask2Former uses for pixels
    that belong to no segment.

    Args:
        panoptic_seg: int tensor [H, W] of segment ids.
        segments_info: one dict per segment with "id", "category_id", "isthing" and, when the
            model reports it, "score".
        threshold: minimum score; 0 keeps everything.
    Returns:
        (panoptic_seg [H, W], segments_info, applied): ``applied`` is False when some segment
        has no "score" — then nothing is removed, because there is nothing to compare.
    """
    if threshold <= 0:
        return panoptic_seg, segments_info, True
    if any("score" not in s for s in segments_info):
        return panoptic_seg, segments_info, False
    kept = [s for s in segments_info if s["score"] >= threshold]
    dropped_ids = [s["id"] for s in segments_info if s["score"] < threshold]
    if dropped_ids:
        dropped = torch.isin(panoptic_seg, torch.as_tensor(dropped_ids, dtype=panoptic_seg.dtype))
        panoptic_seg = panoptic_seg.masked_fill(dropped, 0)
    return panoptic_seg, kept, True


def choose_task(predictions: Dict, task: str = "auto") -> str:
    """Pick which of the model outputs to draw.

    Args:
        predictions: one output dict of the model ("panoptic_seg", "instances", "sem_seg").
        task: one of :data:`TASKS`; "auto" prefers panoptic, then instance, then semantic.
    Returns:
        str: "panoptic", "instance" or "semantic".
    """
    keys = {"panoptic": "panoptic_seg", "instance": "instances", "semantic": "sem_seg"}
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task != "auto":
        if keys[task] not in predictions:
            raise KeyError(
                f"The model produced no {keys[task]!r} output (it gave {sorted(predictions)}). "
                f"Enable it with MODEL.MASK_FORMER.TEST.{task.upper()}_ON True in --opts."
            )
        return task
    for name in ("panoptic", "instance", "semantic"):
        if keys[name] in predictions:
            return name
    raise KeyError(f"The model output has none of {sorted(keys.values())}: {sorted(predictions)}")


def _count(task: str, payload) -> int:
    """Number of segments / instances / classes in a filtered payload of ``task``."""
    if task == "panoptic":
        return len(payload[1])
    if task == "instance":
        return len(payload)
    return int(torch.unique(payload).numel())


class VisualizationDemo:
    """Predict with a model built from ``cfg`` and draw the results.

    Args:
        cfg (CfgNode): a frozen or unfrozen config; ``MODEL.WEIGHTS`` is loaded (.pth,
            .safetensors or model-zoo .pkl; empty string: random initialisation).
            ``MODEL.DEVICE`` should be set by the caller.
        instance_mode (ColorMode): IMAGE, SEGMENTATION or IMAGE_BW (video: IMAGE or IMAGE_BW).
        confidence_threshold (float): instances / panoptic segments below it are not drawn.
        task (str): one of :data:`TASKS`.
    """

    def __init__(
        self,
        cfg,
        instance_mode: ColorMode = ColorMode.IMAGE,
        confidence_threshold: float = 0.5,
        task: str = "auto",
    ):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        dataset = cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "__unused"
        self.metadata = full_class_metadata(
            MetadataCatalog.get(dataset), cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
        )
        self.instance_mode = instance_mode
        self.confidence_threshold = float(confidence_threshold)
        self.task = task
        self.cpu_device = torch.device("cpu")
        self.predictor = SafeDefaultPredictor(cfg)
        self._warned_no_score = False
        self.last_drawn: Tuple[str, int] = ("", 0)  # (task, number of segments drawn)

    # ------------------------------------------------------------------ drawing helpers
    def _filtered(self, predictions: Dict, task: str):
        """Return the (filtered) payload of ``task`` on the CPU."""
        if task == "panoptic":
            panoptic_seg, segments_info = predictions["panoptic_seg"]
            panoptic_seg = panoptic_seg.to(self.cpu_device)
            panoptic_seg, segments_info, applied = filter_panoptic(
                panoptic_seg, segments_info, self.confidence_threshold
            )
            if not applied and not self._warned_no_score:
                logger.warning(
                    "The panoptic segments carry no 'score', so --confidence-threshold is not "
                    "applied to them (the model's OBJECT_MASK_THRESHOLD already filtered them)."
                )
                self._warned_no_score = True
            return panoptic_seg, segments_info
        if task == "instance":
            instances = predictions["instances"].to(self.cpu_device)
            return filter_instances(instances, self.confidence_threshold)
        return predictions["sem_seg"].argmax(dim=0).to(self.cpu_device)

    def draw(self, image_rgb: np.ndarray, predictions: Dict) -> Tuple[str, VisImage]:
        """Draw ``predictions`` over an RGB uint8 image [H, W, 3].

        Returns:
            (task drawn, VisImage)
        """
        task = choose_task(predictions, self.task)
        visualizer = Visualizer(image_rgb, self.metadata, instance_mode=self.instance_mode)
        payload = self._filtered(predictions, task)
        if task == "panoptic":
            vis = visualizer.draw_panoptic_seg(*payload)
        elif task == "instance":
            vis = visualizer.draw_instance_predictions(predictions=payload)
        else:
            vis = visualizer.draw_sem_seg(payload)
        self.last_drawn = (task, _count(task, payload))
        return task, vis

    # ------------------------------------------------------------------ public API
    def run_on_image(self, image: np.ndarray) -> Tuple[Dict, VisImage]:
        """Predict on one image and draw the result.

        Args:
            image: uint8 array [H, W, 3] in BGR order (as read by OpenCV / ``read_image(..., "BGR")``).
        Returns:
            (predictions dict of the model, VisImage with the drawing in RGB)
        """
        predictions = self.predictor(image)
        _, vis = self.draw(image[:, :, ::-1], predictions)
        return predictions, vis

    def run_on_video(self, video) -> Iterator[np.ndarray]:
        """Predict on every frame of an opened ``cv2.VideoCapture`` and yield drawn BGR frames.

        Instance colours are kept consistent across frames by Detectron2's VideoVisualizer.
        """
        mode = self.instance_mode
        if mode not in (ColorMode.IMAGE, ColorMode.IMAGE_BW):
            mode = ColorMode.IMAGE
        video_visualizer = VideoVisualizer(self.metadata, mode)
        while video.isOpened():
            ok, frame = video.read()
            if not ok:
                break
            predictions = self.predictor(frame)
            rgb = frame[:, :, ::-1]
            task = choose_task(predictions, self.task)
            payload = self._filtered(predictions, task)
            if task == "panoptic":
                vis = video_visualizer.draw_panoptic_seg_predictions(rgb, *payload)
            elif task == "instance":
                vis = video_visualizer.draw_instance_predictions(rgb, payload)
            else:
                vis = video_visualizer.draw_sem_seg(rgb, payload)
            yield np.ascontiguousarray(vis.get_image()[:, :, ::-1])


def track_colors(num_tracks, metadata, labels):
    """One RGB colour per track, fixed for the video: the class colour for the first track of a
    class (when the metadata has colours), random (seeded) colours for the others."""
    rng_state = np.random.get_state()
    np.random.seed(0)
    try:
        colors, used = [], set()
        class_colors = metadata.get("thing_colors", None)
        for i in range(num_tracks):
            label = int(labels[i])
            if class_colors is not None and label not in used and label < len(class_colors):
                colors.append(np.asarray(class_colors[label], dtype=float) / 255.0)
                used.add(label)
            else:
                colors.append(random_color(rgb=True, maximum=1))
        return colors
    finally:
        np.random.set_state(rng_state)


def draw_tracks(frames, predictions, metadata, threshold, show_scores: bool = True):
    """BGR frames with the tracks whose score >= ``threshold`` drawn (mask, class and, with
    ``show_scores``, score), each track in one colour for the whole video.

    Args:
        frames: list of T [H, W, 3] uint8 BGR frames.
        predictions: the video model's output: ``pred_scores`` [N], ``pred_labels`` [N],
            ``pred_masks`` N x (T, H, W) bool (ground truth in the same form draws alike).
    Returns:
        (list of T drawn BGR frames, indices of the tracks drawn)
    """
    scores = [float(s) for s in predictions["pred_scores"]]
    labels = [int(c) for c in predictions["pred_labels"]]
    keep = [i for i, s in enumerate(scores) if s >= threshold]
    names = metadata.get("thing_classes", None)
    colors = track_colors(len(scores), metadata, labels)
    drawn = []
    for t, frame in enumerate(frames):
        vis = Visualizer(frame[:, :, ::-1], metadata)
        for i in keep:
            mask = np.asarray(predictions["pred_masks"][i][t], dtype=bool)
            if not mask.any():
                continue  # the object is not in this frame
            name = names[labels[i]] if names and labels[i] < len(names) else str(labels[i])
            text = f"{name} {scores[i]:.2f}" if show_scores else name
            vis.draw_binary_mask(mask, color=colors[i], text=text)
        drawn.append(np.ascontiguousarray(vis.get_output().get_image()[:, :, ::-1]))
    return drawn, keep
