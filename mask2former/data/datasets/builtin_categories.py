"""Class lists (names, ids, colours, thing flags) of the datasets registered by this project.

Provenance (see also datasets/README.md):
* COCO panoptic (133) and COCO things: taken from Detectron2's ``builtin_meta.COCO_CATEGORIES``
  (identical to panopticapi's ``panoptic_coco_categories.json``; a test checks this).
* ADE20K-150 names: Detectron2's ``ADE20K_SEM_SEG_CATEGORIES`` (the released models' order).
  Thing flags: the 100 ADE20K instance classes below. Colours: the standard ADE20K palette
  (the one the original Mask2Former registers for ADE20K, also as the ``stuff_colors`` of
  Detectron2's ``ade20k_sem_seg_*``; visualisation only).
* ADE20K instance (100 classes): ids are 0-based ADE20K-150 indices, written from knowledge
  of the released ``ade20k_instance_*.json`` files (each id is checked against the ADE-150 name).
* Mapillary Vistas v1.2 (65 classes + "unlabeled"): names, colours and instance flags written
  from knowledge of the dataset's ``config_v1.2.json`` (37 thing classes).
* COCO-Stuff (171 classes): the 80 COCO things + 91 COCO-Stuff stuff names. Thing colours from
  COCO; stuff colours are generated deterministically (visualisation only, not the originals).
* ADE20K-full (847 classes): names, ADE20K dataset ids and contiguous train ids of the original
  MaskFormer's ``ADE20K_SEM_SEG_FULL_CATEGORIES``, kept as data in
  ``ade20k_full_categories.json`` beside this module (copied from the project's spec folder,
  ``spec/original/ade20k_full_categories.json``). Colours are generated (visualisation only).
"""

import colorsys
import json
import os
from typing import List

from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES, COCO_CATEGORIES

__all__ = [
    "COCO_PANOPTIC_CATEGORIES",
    "ADE20K_150_CATEGORIES",
    "ADE20K_INSTANCE_CATEGORIES",
    "MAPILLARY_VISTAS_CATEGORIES",
    "COCO_STUFF_171_CATEGORIES",
    "ADE20K_FULL_NUM_CLASSES",
    "ADE20K_FULL_CATEGORIES",
    "generated_colors",
]


def generated_colors(n: int, seed: int = 0) -> List[List[int]]:
    """``n`` distinct, deterministic RGB colours (golden-ratio hue walk)."""
    out = []
    for i in range(n):
        h = (seed * 0.1 + i * 0.618033988749895) % 1.0
        s = 0.55 + 0.35 * ((i * 7) % 3) / 2
        v = 0.6 + 0.35 * ((i * 5) % 4) / 3
        out.append([int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v)])
    return out


COCO_PANOPTIC_CATEGORIES = [dict(c) for c in COCO_CATEGORIES]

# fmt: off
_ADE20K_PALETTE = [
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80],
    [140, 140, 140], [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7],
    [150, 5, 61], [120, 120, 70], [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4],
    [255, 51, 7], [204, 70, 3], [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255],
    [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220], [255, 9, 92], [112, 9, 255],
    [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71], [255, 41, 10], [7, 255, 255],
    [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8], [0, 255, 20],
    [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
    [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0],
    [153, 255, 0], [0, 0, 255], [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255],
    [11, 200, 200], [255, 82, 0], [0, 255, 245], [0, 61, 255], [0, 255, 112], [0, 255, 133],
    [255, 0, 0], [255, 163, 0], [255, 102, 0], [194, 255, 0], [0, 143, 255], [51, 255, 0],
    [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255], [173, 255, 0], [0, 255, 153],
    [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194],
    [0, 255, 82], [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255],
    [0, 255, 163], [255, 153, 0], [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255],
    [163, 255, 0], [255, 235, 0], [8, 184, 170], [133, 0, 255], [0, 255, 92], [184, 0, 255],
    [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112], [92, 255, 0], [0, 224, 255],
    [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255], [71, 255, 0], [255, 0, 163],
    [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235], [245, 0, 255],
    [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255],
    [255, 255, 0], [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0],
    [173, 0, 255], [0, 245, 255], [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255],
    [184, 255, 0], [0, 133, 255], [255, 214, 0], [25, 194, 194], [102, 255, 0], [92, 0, 255],
]

# (0-based ADE20K-150 id, name) of the 100 ADE20K instance classes, in contiguous order.
_ADE20K_INSTANCE = [
    (7, "bed"), (8, "windowpane"), (10, "cabinet"), (12, "person"), (14, "door"), (15, "table"),
    (18, "curtain"), (19, "chair"), (20, "car"), (22, "painting"), (23, "sofa"), (24, "shelf"),
    (27, "mirror"), (30, "armchair"), (31, "seat"), (32, "fence"), (33, "desk"), (35, "wardrobe"),
    (36, "lamp"), (37, "bathtub"), (38, "railing"), (39, "cushion"), (41, "box"), (42, "column"),
    (43, "signboard"), (44, "chest of drawers"), (45, "counter"), (47, "sink"), (49, "fireplace"),
    (50, "refrigerator"), (53, "stairs"), (55, "case"), (56, "pool table"), (57, "pillow"),
    (58, "screen door"), (62, "bookcase"), (64, "coffee table"), (65, "toilet"), (66, "flower"),
    (67, "book"), (69, "bench"), (70, "countertop"), (71, "stove"), (72, "palm"),
    (73, "kitchen island"), (74, "computer"), (75, "swivel chair"), (76, "boat"),
    (78, "arcade machine"), (80, "bus"), (81, "towel"), (82, "light"), (83, "truck"),
    (85, "chandelier"), (86, "awning"), (87, "streetlight"), (88, "booth"),
    (89, "television receiver"), (90, "airplane"), (92, "apparel"), (93, "pole"),
    (95, "bannister"), (97, "ottoman"), (98, "bottle"), (102, "van"), (103, "ship"),
    (104, "fountain"), (107, "washer"), (108, "plaything"), (110, "stool"), (111, "barrel"),
    (112, "basket"), (115, "bag"), (116, "minibike"), (118, "oven"), (119, "ball"), (120, "food"),
    (121, "step"), (123, "trade name"), (124, "microwave"), (125, "pot"), (126, "animal"),
    (127, "bicycle"), (129, "dishwasher"), (130, "screen"), (132, "sculpture"), (133, "hood"),
    (134, "sconce"), (135, "vase"), (136, "traffic light"), (137, "tray"), (138, "ashcan"),
    (139, "fan"), (142, "plate"), (143, "monitor"), (144, "bulletin board"), (146, "radiator"),
    (147, "glass"), (148, "clock"), (149, "flag"),
]

# Mapillary Vistas v1.2: (name, readable, colour, has instances). Contiguous id = list index;
# panoptic category id = index + 1; index 65 ("unlabeled") is the ignore label.
_MAPILLARY = [
    ("animal--bird", "Bird", [165, 42, 42], 1),
    ("animal--ground-animal", "Ground Animal", [0, 192, 0], 1),
    ("construction--barrier--curb", "Curb", [196, 196, 196], 0),
    ("construction--barrier--fence", "Fence", [190, 153, 153], 0),
    ("construction--barrier--guard-rail", "Guard Rail", [180, 165, 180], 0),
    ("construction--barrier--other-barrier", "Barrier", [90, 120, 150], 0),
    ("construction--barrier--wall", "Wall", [102, 102, 156], 0),
    ("construction--flat--bike-lane", "Bike Lane", [128, 64, 255], 0),
    ("construction--flat--crosswalk-plain", "Crosswalk - Plain", [140, 140, 200], 1),
    ("construction--flat--curb-cut", "Curb Cut", [170, 170, 170], 0),
    ("construction--flat--parking", "Parking", [250, 170, 160], 0),
    ("construction--flat--pedestrian-area", "Pedestrian Area", [96, 96, 96], 0),
    ("construction--flat--rail-track", "Rail Track", [230, 150, 140], 0),
    ("construction--flat--road", "Road", [128, 64, 128], 0),
    ("construction--flat--service-lane", "Service Lane", [110, 110, 110], 0),
    ("construction--flat--sidewalk", "Sidewalk", [244, 35, 232], 0),
    ("construction--structure--bridge", "Bridge", [150, 100, 100], 0),
    ("construction--structure--building", "Building", [70, 70, 70], 0),
    ("construction--structure--tunnel", "Tunnel", [150, 120, 90], 0),
    ("human--person", "Person", [220, 20, 60], 1),
    ("human--rider--bicyclist", "Bicyclist", [255, 0, 0], 1),
    ("human--rider--motorcyclist", "Motorcyclist", [255, 0, 100], 1),
    ("human--rider--other-rider", "Other Rider", [255, 0, 200], 1),
    ("marking--crosswalk-zebra", "Lane Marking - Crosswalk", [200, 128, 128], 1),
    ("marking--general", "Lane Marking - General", [255, 255, 255], 0),
    ("nature--mountain", "Mountain", [64, 170, 64], 0),
    ("nature--sand", "Sand", [230, 160, 50], 0),
    ("nature--sky", "Sky", [70, 130, 180], 0),
    ("nature--snow", "Snow", [190, 255, 255], 0),
    ("nature--terrain", "Terrain", [152, 251, 152], 0),
    ("nature--vegetation", "Vegetation", [107, 142, 35], 0),
    ("nature--water", "Water", [0, 170, 30], 0),
    ("object--banner", "Banner", [255, 255, 128], 1),
    ("object--bench", "Bench", [250, 0, 30], 1),
    ("object--bike-rack", "Bike Rack", [100, 140, 180], 1),
    ("object--billboard", "Billboard", [220, 220, 220], 1),
    ("object--catch-basin", "Catch Basin", [220, 128, 128], 1),
    ("object--cctv-camera", "CCTV Camera", [222, 40, 40], 1),
    ("object--fire-hydrant", "Fire Hydrant", [100, 170, 30], 1),
    ("object--junction-box", "Junction Box", [40, 40, 40], 1),
    ("object--mailbox", "Mailbox", [33, 33, 33], 1),
    ("object--manhole", "Manhole", [100, 128, 160], 1),
    ("object--phone-booth", "Phone Booth", [142, 0, 0], 1),
    ("object--pothole", "Pothole", [70, 100, 150], 0),
    ("object--street-light", "Street Light", [210, 170, 100], 1),
    ("object--support--pole", "Pole", [153, 153, 153], 1),
    ("object--support--traffic-sign-frame", "Traffic Sign Frame", [128, 128, 128], 1),
    ("object--support--utility-pole", "Utility Pole", [0, 0, 80], 1),
    ("object--traffic-light", "Traffic Light", [250, 170, 30], 1),
    ("object--traffic-sign--back", "Traffic Sign (Back)", [192, 192, 192], 1),
    ("object--traffic-sign--front", "Traffic Sign (Front)", [220, 220, 0], 1),
    ("object--trash-can", "Trash Can", [140, 140, 20], 1),
    ("object--vehicle--bicycle", "Bicycle", [119, 11, 32], 1),
    ("object--vehicle--boat", "Boat", [150, 0, 255], 1),
    ("object--vehicle--bus", "Bus", [0, 60, 100], 1),
    ("object--vehicle--car", "Car", [0, 0, 142], 1),
    ("object--vehicle--caravan", "Caravan", [0, 0, 90], 1),
    ("object--vehicle--motorcycle", "Motorcycle", [0, 0, 230], 1),
    ("object--vehicle--on-rails", "On Rails", [0, 80, 100], 0),
    ("object--vehicle--other-vehicle", "Other Vehicle", [128, 64, 64], 1),
    ("object--vehicle--trailer", "Trailer", [0, 0, 110], 1),
    ("object--vehicle--truck", "Truck", [0, 0, 70], 1),
    ("object--vehicle--wheeled-slow", "Wheeled Slow", [0, 0, 192], 1),
    ("void--car-mount", "Car Mount", [32, 32, 32], 0),
    ("void--ego-vehicle", "Ego Vehicle", [120, 10, 10], 0),
]

# COCO-Stuff stuff classes, dataset ids 92..182 in order.
_COCO_STUFF_NAMES = [
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds",
    "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other",
    "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves",
    "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
]
# fmt: on

_ADE_THING_IDS = {i for i, _ in _ADE20K_INSTANCE}

ADE20K_150_CATEGORIES = [
    {"id": i, "name": name.strip(), "isthing": int(i in _ADE_THING_IDS), "color": color}
    for i, (name, color) in enumerate(zip(ADE20K_SEM_SEG_CATEGORIES, _ADE20K_PALETTE))
]

ADE20K_INSTANCE_CATEGORIES = [
    {"id": i, "name": name, "isthing": 1, "color": _ADE20K_PALETTE[i]}
    for i, name in _ADE20K_INSTANCE
]

MAPILLARY_VISTAS_CATEGORIES = [
    {"id": i + 1, "name": readable, "full_name": name, "isthing": thing, "color": color}
    for i, (name, readable, color, thing) in enumerate(_MAPILLARY)
]

_coco_things = [c for c in COCO_CATEGORIES if c["isthing"]]
COCO_STUFF_171_CATEGORIES = [
    {"id": c["id"], "name": c["name"], "isthing": 1, "color": c["color"]} for c in _coco_things
] + [
    {"id": 92 + i, "name": name, "isthing": 0, "color": color}
    for i, (name, color) in enumerate(zip(_COCO_STUFF_NAMES, generated_colors(91, seed=3)))
]

ADE20K_FULL_NUM_CLASSES = 847
_ADE20K_FULL_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "ade20k_full_categories.json")


def _load_ade20k_full_categories(path: str = _ADE20K_FULL_FILE) -> List[dict]:
    """The 847 ADE20K-full classes as ``{"name", "id", "trainId"}`` in train-id order."""
    try:
        with open(path) as f:
            cats = json.load(f)
    except OSError as e:
        raise FileNotFoundError(
            f"{path} (the ADE20K-full class list, package data of mask2former) is missing: "
            "reinstall the package or restore the file from the repository"
        ) from e
    if len(cats) != ADE20K_FULL_NUM_CLASSES or [c["trainId"] for c in cats] != list(
        range(ADE20K_FULL_NUM_CLASSES)
    ):
        raise ValueError(f"{path}: expected {ADE20K_FULL_NUM_CLASSES} classes with trainId 0..846")
    return [{"name": c["name"], "id": int(c["id"]), "trainId": int(c["trainId"])} for c in cats]


ADE20K_FULL_CATEGORIES = _load_ade20k_full_categories()
