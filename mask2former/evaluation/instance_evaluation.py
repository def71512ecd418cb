"""COCO mask AP for datasets whose contiguous class ids cover things *and* stuff.

Panoptic-derived instance datasets (COCO / ADE20K / Mapillary panoptic, the synthetic set) map
thing dataset ids to their index in the full class list, so the thing contiguous ids are not
``0..T-1`` (for ADE20K they are scattered in ``0..149``). Detectron2's :class:`COCOEvaluator`
assumes ``0..T-1`` and asserts on it. :class:`InstanceSegEvaluator` converts predicted
contiguous ids back to dataset ids itself and then lets COCOEvaluator evaluate with the ids
untouched, so it relies only on COCOEvaluator's public behaviour (not on the signature of
``_evaluate_predictions_on_coco``, which differs across Detectron2 versions).
"""

import copy

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.evaluation import COCOEvaluator

__all__ = ["InstanceSegEvaluator"]


class InstanceSegEvaluator(COCOEvaluator):
    """COCOEvaluator for instance predictions whose ``pred_classes`` are contiguous ids of a
    panoptic class list (``metadata.thing_dataset_id_to_contiguous_id`` values, any subset of
    ``0..K-1``). Arguments are those of :class:`COCOEvaluator`.

    The ground truth comes from ``metadata.json_file`` (COCO instance JSON with dataset
    category ids). Per-category AP is reported with the class names of that JSON.
    """

    def __init__(self, dataset_name, *args, **kwargs):
        global_meta = MetadataCatalog.get(dataset_name)
        if not hasattr(global_meta, "thing_dataset_id_to_contiguous_id"):
            raise ValueError(
                f"InstanceSegEvaluator needs 'thing_dataset_id_to_contiguous_id' in the metadata "
                f"of '{dataset_name}'; use COCOEvaluator for plain COCO-format datasets."
            )
        if not hasattr(global_meta, "json_file"):
            records = DatasetCatalog.get(dataset_name)
            if not records or "annotations" not in records[0]:
                raise ValueError(
                    f"InstanceSegEvaluator: dataset '{dataset_name}' has no 'json_file' metadata "
                    "(COCO instance annotations of its thing classes) and its records carry no "
                    "instance 'annotations' to convert, so mask AP cannot be computed. Disable "
                    "MODEL.MASK_FORMER.TEST.INSTANCE_ON or provide the instance JSON."
                )
        super().__init__(dataset_name, *args, **kwargs)
        self._contiguous_to_dataset_id = {
            v: k for k, v in global_meta.thing_dataset_id_to_contiguous_id.items()
        }
        # A private metadata without the id map: COCOEvaluator then keeps our dataset ids.
        fields = {
            k: copy.copy(v)
            for k, v in global_meta.as_dict().items()
            if k not in ("name", "thing_dataset_id_to_contiguous_id", "thing_classes")
        }
        cat_ids = sorted(self._coco_api.getCatIds())
        fields["thing_classes"] = [c["name"] for c in self._coco_api.loadCats(cat_ids)]
        self._metadata = Metadata(name=dataset_name).set(**fields)

    def process(self, inputs, outputs):
        start = len(self._predictions)
        super().process(inputs, outputs)
        for prediction in self._predictions[start:]:
            for result in prediction.get("instances", []):
                cid = result["category_id"]
                if cid not in self._contiguous_to_dataset_id:
                    raise ValueError(
                        f"Predicted class {cid} is not a thing class of this dataset (thing "
                        f"contiguous ids: {sorted(self._contiguous_to_dataset_id)}). Instance "
                        "predictions must only use thing classes."
                    )
                result["category_id"] = self._contiguous_to_dataset_id[cid]
