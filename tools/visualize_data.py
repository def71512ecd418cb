#!/usr/bin/env python
"""Draw the ground truth of a registered dataset, as stored or as the training loader sees it.

Examples::

    # annotations as registered (panoptic if the dataset has it, else instances, else semantic)
    python tools/visualize_data.py --dataset synthetic_panoptic_val --output-dir out/gt --num 8
    # what training sees after the config's dataset mapper (crops, flips, LSJ ...)
    python tools/visualize_data.py --config-file configs/quickstart/synthetic_panoptic.yaml \\
        --source dataloader --output-dir out/train_batches --num 8

Datasets are looked up in Detectron2's DatasetCatalog after ``import mask2former`` (roots under
$DETECTRON2_DATASETS, default ``datasets/``).
"""
import argparse
import logging
import os
import sys

import numpy as np
import torch
import tqdm
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    import mask2former  # noqa: F401
except ModuleNotFoundError as e:  # running from a checkout without `pip install -e .`
    if e.name != "mask2former":
        raise
    sys.path.insert(0, ROOT)
from mask2former.config import add_maskformer2_config, merge_config_checked  # noqa: E402

from detectron2.config import get_cfg  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.data import detection_utils as utils  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from detectron2.utils.visualizer import Visualizer  # noqa: E402
from mask2former.utils.visualizer import full_class_metadata  # noqa: E402

logger = logging.getLogger("visualize_data")
KINDS = ("auto", "panoptic", "instance", "semantic")


def choose_kind(record: dict, kind: str = "auto") -> str:
    """Which annotation of a dataset dict to draw ("panoptic", "instance" or "semantic")."""
    available = {
        "panoptic": "pan_seg_file_name" in record and "segments_info" in record,
        "instance": bool(record.get("annotations")),
        "semantic": "sem_seg_file_name" in record,
    }
    if kind != "auto":
        if not available[kind]:
            have = [k for k, v in available.items() if v] or ["nothing"]
            raise KeyError(
                f"{record.get('file_name')}: no {kind} annotation (it has: {', '.join(have)}); "
                "use --kind auto or another kind"
            )
        return kind
    for name in ("panoptic", "instance", "semantic"):
        if available[name]:
            return name
    return "none"


def draw_record(record: dict, metadata, kind: str = "auto", scale: float = 1.0) -> np.ndarray:
    """Draw one Detectron2 dataset dict's ground truth over its image.

    Returns:
        np.ndarray: RGB uint8 image [H*scale, W*scale, 3].
    """
    image = utils.read_image(record["file_name"], format="RGB")
    kind = choose_kind(record, kind)
    vis = Visualizer(image, metadata, scale=scale)
    if kind == "panoptic":
        from panopticapi.utils import rgb2id

        pan = rgb2id(np.asarray(Image.open(record["pan_seg_file_name"]).convert("RGB")))
        out = vis.draw_panoptic_seg(torch.from_numpy(pan.astype(np.int64)), record["segments_info"], area_threshold=0, alpha=0.5)
    elif kind == "instance":
        only_instances = {k: v for k, v in record.items() if k not in ("sem_seg_file_name", "pan_seg_file_name")}
        out = vis.draw_dataset_dict(only_instances)
    elif kind == "semantic":
        sem = np.asarray(Image.open(record["sem_seg_file_name"]), dtype=np.int64)
        out = vis.draw_sem_seg(sem, area_threshold=0, alpha=0.5)
    else:
        out = vis.output
    return out.get_image()


def draw_training_sample(sample: dict, metadata, input_format: str, scale: float = 1.0) -> np.ndarray:
    """Draw one mapped training sample ("image" CHW tensor, "instances" with gt_masks/gt_classes).

    Class ids of the masks are looked up in ``metadata.thing_classes`` (use
    :func:`full_class_metadata` for Mask2Former's all-classes id space).
    """
    image = utils.convert_image_to_rgb(sample["image"].permute(1, 2, 0).cpu().numpy(), input_format)
    vis = Visualizer(image, metadata, scale=scale)
    instances = sample.get("instances")
    if instances is not None and len(instances) > 0:
        masks = instances.gt_masks
        masks = masks.tensor if hasattr(masks, "tensor") else masks
        names = metadata.get("thing_classes", None)
        classes = instances.gt_classes.tolist()
        labels = [names[c] if names and c < len(names) else str(c) for c in classes]
        out = vis.overlay_instances(masks=masks.cpu().numpy().astype(bool), labels=labels, alpha=0.5)
    elif "sem_seg" in sample:
        out = vis.draw_sem_seg(sample["sem_seg"].cpu().numpy(), area_threshold=0, alpha=0.5)
    else:
        out = vis.output
    return out.get_image()


def get_parser():
    parser = argparse.ArgumentParser(description="Draw a registered dataset's ground truth")
    parser.add_argument("--config-file", metavar="FILE", help="config giving the datasets / mapper")
    parser.add_argument("--dataset", help="dataset name (default: first of DATASETS.TRAIN)")
    parser.add_argument("--source", choices=["annotation", "dataloader"], default="annotation",
                        help="stored annotations, or samples from the config's training loader")
    parser.add_argument("--kind", choices=KINDS, default="auto", help="annotation to draw")
    parser.add_argument("--output-dir", required=True, help="folder for the PNGs")
    parser.add_argument("--num", type=int, default=16, help="number of images (0: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="resize the drawings")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def setup_cfg(args):
    cfg = get_cfg()
    add_maskformer2_config(cfg)
    merge_config_checked(cfg, args.config_file, args.opts)
    if args.dataset:
        cfg.DATASETS.TRAIN = (args.dataset,)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.freeze()
    return cfg


def _metadata(name: str, cfg, from_config: bool):
    meta = MetadataCatalog.get(name)
    stuff = meta.get("stuff_classes", None)
    num = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES if from_config else (len(stuff) if stuff else 0)
    return full_class_metadata(meta, num)


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="visualize_data")
    if not args.config_file and not args.dataset:
        logger.error("Give --dataset NAME or a --config-file (its DATASETS.TRAIN[0] is drawn).")
        return 2
    if args.source == "dataloader" and not args.config_file:
        logger.error("--source dataloader needs --config-file (it decides the dataset mapper).")
        return 2
    if args.source == "dataloader" and args.num <= 0:
        logger.error("--source dataloader is endless: give --num N > 0.")
        return 2
    cfg = setup_cfg(args)
    name = cfg.DATASETS.TRAIN[0] if len(cfg.DATASETS.TRAIN) else None
    if name is None or name not in DatasetCatalog.list():
        logger.error(
            f"Dataset {name!r} is not registered. Registered names containing its first word: "
            f"{[n for n in DatasetCatalog.list() if name and n.startswith(name.split('_')[0])]}. "
            "Check $DETECTRON2_DATASETS (default ./datasets) and datasets/README.md."
        )
        return 2
    os.makedirs(args.output_dir, exist_ok=True)
    metadata = _metadata(name, cfg, from_config=bool(args.config_file))
    count = 0
    if args.source == "annotation":
        records = DatasetCatalog.get(name)
        if args.num > 0:
            records = records[: args.num]
        for record in tqdm.tqdm(records, desc=f"drawing {name}", unit="img"):
            image = draw_record(record, metadata, args.kind, args.scale)
            stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
            Image.fromarray(image).save(os.path.join(args.output_dir, stem + ".png"))
            count += 1
    else:
        from mask2former.engine import Trainer  # the loader (and mapper) training uses

        loader = Trainer.build_train_loader(cfg)
        bar = tqdm.tqdm(total=args.num or None, desc=f"drawing {name} (dataloader)", unit="img")
        for batch in loader:
            for sample in batch:
                image = draw_training_sample(sample, metadata, cfg.INPUT.FORMAT, args.scale)
                stem = os.path.splitext(os.path.basename(sample.get("file_name", "sample")))[0]
                Image.fromarray(image).save(os.path.join(args.output_dir, f"{count:04d}_{stem}.png"))
                count += 1
                bar.update(1)
                if args.num and count >= args.num:
                    break
            if args.num and count >= args.num:
                break
        bar.close()
    print(f"wrote {count} image(s) to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
