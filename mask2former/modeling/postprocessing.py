"""Inference post-processing of MaskFormer outputs (SPEC §5), as pure vectorised functions.

`video_instance_inference` post-processes one clip of the video model (SPEC §9).

All functions work on the final prediction of one image: ``mask_cls`` [Q, K+1] class logits
(the last class is "no object") and ``mask_pred`` [Q, H, W] mask logits at output resolution.
Optional ``mask_prob`` arguments accept ``mask_pred.sigmoid()`` when the caller already has it,
so that running several tasks on one image computes it once.

Memory layout: the functions accept [Q, H, W] tensors of any strides and work on the
pixel-major view [H*W, Q] (a free view when the tensor is channels-last-like, i.e.
``mask_pred.permute(1, 2, 0)`` is contiguous, which is what the meta-architecture produces:
bilinear upsampling, the per-pixel reductions and the semantic product are several times faster
in that layout on CPU). Other layouts are copied into it once. Outputs keep that layout where
they are per-pixel maps (``sem_seg`` [K, H, W] and ``pred_masks`` [R, H, W] may be pixel-major
strided views; call ``.contiguous()`` if you need query-major storage).

Instance boxes: the original emitted all-zero boxes; here ``pred_boxes`` are the tight boxes
of the predicted binary masks (XYXY, ``x1 = last column + 1`` as Detectron2's
``BitMasks.get_bounding_boxes``; all zeros for an empty mask).
"""

from typing import Collection, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from detectron2.structures import Boxes, Instances

__all__ = [
    "crop_and_resize",
    "semantic_inference",
    "panoptic_inference",
    "instance_inference",
    "masks_to_boxes",
    "video_instance_inference",
]


_CHUNK = 32  # queries processed together: bounds the [H*W, chunk] temporaries


def _pixel_major(masks: torch.Tensor) -> torch.Tensor:
    """[Q, H, W] → [H*W, Q]: a view for pixel-major storage, otherwise a copy."""
    q, h, w = masks.shape
    return masks.permute(1, 2, 0).reshape(h * w, q)


def _batch_of_one(x: torch.Tensor) -> torch.Tensor:
    """``x[None]`` with the new dimension's stride set to ``x.numel()``: PyTorch infers the
    memory format (e.g. channels-last for convolution and interpolation kernels) from the
    strides, and ``x[None]`` would give the leading dimension a misleading one."""
    return x.as_strided((1, *x.shape), (max(x.numel(), 1), *x.stride()))


def _as_uint8(masks: torch.Tensor) -> torch.Tensor:
    """Bool masks as uint8 without a copy (a dtype view). The JIT tracer used by fvcore's FLOP
    counter and ONNX export cannot record dtype views, so a traced call converts instead."""
    if torch.jit.is_tracing():
        return masks.to(torch.uint8)
    return masks.view(torch.uint8)


def _count_true(masks: torch.Tensor, dim: int) -> torch.Tensor:
    """Number of True entries of a bool tensor along ``dim`` (int32, no int32 copy)."""
    return _as_uint8(masks).sum(dim, dtype=torch.int32)


def _class_lookup(ids: Collection[int], num_classes: int, device) -> torch.Tensor:
    """Bool table [num_classes + 1]: True for the given contiguous class ids."""
    table = torch.zeros(num_classes + 1, dtype=torch.bool, device=device)
    ids = [int(i) for i in ids]
    if ids:
        table[torch.as_tensor(ids, dtype=torch.long, device=device)] = True
    return table


def crop_and_resize(
    result: torch.Tensor, image_size: Tuple[int, int], output_height: int, output_width: int
) -> torch.Tensor:
    """Crop a padded per-pixel prediction to the image and resize it to the output size.

    Same values as Detectron2's ``sem_seg_postprocess`` (bilinear, align_corners=False), but the
    resize is skipped when the crop already has the output size: bilinear resampling at scale 1
    is exactly the identity, and skipping it saves a full pass over [C, H, W]. The result is
    compact, in the input's layout (query-major or pixel-major; a copy of the crop only when
    the input was padded).

    Args:
        result: [C, H_pad, W_pad]; image_size: (h, w) of the unpadded image;
        output_height, output_width: wanted size.
    Returns:
        [C, output_height, output_width]
    """
    h, w = int(image_size[0]), int(image_size[1])
    result = result[:, :h, :w]
    # compact, in the input's layout (pixel-major stays pixel-major)
    result = _keep_pixel_major(result) if result.stride(0) == 1 else result.contiguous()
    if (h, w) == (int(output_height), int(output_width)):
        return result
    return F.interpolate(
        _batch_of_one(result), size=(output_height, output_width), mode="bilinear",
        align_corners=False,
    )[0]


def _keep_pixel_major(x: torch.Tensor) -> torch.Tensor:
    """A compact copy of a pixel-major [C, H, W] view (e.g. a crop) in the same layout."""
    if x.permute(1, 2, 0).is_contiguous():
        return x
    return x.permute(1, 2, 0).contiguous().permute(2, 0, 1)


def semantic_inference(
    mask_cls: torch.Tensor, mask_pred: torch.Tensor, mask_prob: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Per-class scores ``sum_q softmax(cls_q)[:K] * sigmoid(mask_q)``.

    Args:
        mask_cls: [Q, K+1] logits; mask_pred: [Q, H, W] logits.
        mask_prob: optional precomputed ``mask_pred.sigmoid()``.
    Returns:
        [K, H, W] scores (pixel-major strides when ``mask_pred`` is pixel-major).
    """
    probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    masks = mask_pred.sigmoid() if mask_prob is None else mask_prob
    # the product over queries as a 1x1 convolution: oneDNN runs it several times faster than
    # a [K, Q] x [Q, H*W] matmul on CPU; the result keeps the layout of ``masks``
    weight = probs.t().to(masks.dtype).contiguous()[:, :, None, None]  # [K, Q, 1, 1]
    return F.conv2d(_batch_of_one(masks), weight)[0]


def panoptic_inference(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    *,
    num_classes: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    thing_ids: Collection[int],
    mask_prob: Optional[torch.Tensor] = None,
    segment_within_mask: bool = True
) -> Tuple[torch.Tensor, List[Dict]]:
    """Panoptic segmentation from query predictions.

    Queries whose best class is not "no object" and whose score exceeds
    ``object_mask_threshold`` are kept; each pixel goes to the kept query with the largest
    ``score * sigmoid(mask)``. A kept query makes a segment from its pixels with sigmoid >= 0.5
    when its assigned area, its own area (sigmoid >= 0.5) and that intersection are all
    non-empty and assigned / own area >= ``overlap_threshold``. Segments are numbered 1, 2, ...
    in query order; all queries of one stuff class share the first one's id.

    With ``segment_within_mask=False`` (MaskFormer v1) a segment is *every* pixel its query
    wins, whatever its sigmoid there (so only the pixels of rejected queries stay void), and the
    intersection condition is dropped.

    Args:
        mask_cls: [Q, K+1] logits; mask_pred: [Q, H, W] logits.
        num_classes: K. thing_ids: contiguous ids of the thing classes.
        mask_prob: optional precomputed ``mask_pred.sigmoid()``.
        segment_within_mask: Mask2Former's rule (True) or MaskFormer v1's (False), see above.
    Returns:
        (int32 [H, W] segment ids, 0 = void; list of {"id", "isthing", "category_id",
        "score"}), where "score" is the class probability of the query that opened the segment
        (not in the original's output; evaluators ignore it, the demo filters on it).
    """
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    probs = mask_pred.sigmoid() if mask_prob is None else mask_prob
    h, w = probs.shape[-2:]
    panoptic_seg = torch.zeros((h, w), dtype=torch.int32, device=probs.device)
    if not bool(keep.any()):
        return panoptic_seg, []

    cur_scores, cur_classes = scores[keep], labels[keep]
    n = cur_classes.shape[0]
    # Running argmax over the kept queries of score * sigmoid (first maximum wins, as argmax),
    # a chunk of queries at a time on the pixel-major view: no [n, H, W] temporaries.
    probs_pq = _pixel_major(probs)  # [H*W, Q]
    kept_queries = keep.nonzero().flatten()
    original_area = torch.empty(n, dtype=torch.int32, device=probs.device)
    owner = best = own_prob = None  # kept-query index, its score * sigmoid, its sigmoid
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        masks = probs_pq.index_select(1, kept_queries[start:stop])  # [H*W, c]
        chunk_best, chunk_owner = (masks * cur_scores[start:stop]).max(1)
        chunk_prob = masks.gather(1, chunk_owner[:, None])[:, 0]
        original_area[start:stop] = _count_true(masks >= 0.5, 0)
        if best is None:
            owner, best, own_prob = chunk_owner, chunk_best, chunk_prob
            continue
        better = chunk_best > best
        best = torch.where(better, chunk_best, best)
        owner = torch.where(better, chunk_owner + start, owner)
        own_prob = torch.where(better, chunk_prob, own_prob)
    owner, own_prob = owner.view(h, w), own_prob.view(h, w)
    if segment_within_mask:
        # owner where the pixel is inside its owner's mask, n (void) elsewhere
        owner_inside = torch.where(own_prob >= 0.5, owner, n)
    else:
        owner_inside = owner
    mask_area = torch.bincount(owner.flatten(), minlength=n)
    final_area = torch.bincount(owner_inside.flatten(), minlength=n + 1)[:n]
    # the original compares the float ratio `mask_area / original_area` with the threshold
    ratio_ok = (mask_area.double() / original_area.double().clamp_min(1)) >= overlap_threshold
    valid = (mask_area > 0) & (original_area > 0) & (final_area > 0) & ratio_ok

    is_thing = _class_lookup(thing_ids, num_classes, probs.device)[cur_classes]
    kept_idx = valid.nonzero().flatten()
    if kept_idx.numel() == 0:
        return panoptic_seg, []
    # Segment key: one per thing query, one per stuff class; ids follow first appearance.
    kept_classes = cur_classes[kept_idx]
    keys = torch.where(is_thing[kept_idx], -1 - kept_idx, kept_classes)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    order = torch.arange(kept_idx.numel(), device=keys.device)
    first = torch.full((uniq.numel(),), kept_idx.numel(), dtype=order.dtype, device=keys.device)
    first = first.scatter_reduce(0, inverse, order, reduce="amin")
    rank = torch.empty_like(first)
    rank[first.argsort()] = torch.arange(first.numel(), device=first.device)  # id - 1 per key
    segment_of_kept = rank[inverse] + 1  # [num kept] segment id
    id_table = torch.zeros(n + 1, dtype=torch.int32, device=probs.device)
    id_table[kept_idx] = segment_of_kept.to(torch.int32)  # id_table[n] = 0: void
    panoptic_seg = id_table[owner_inside]

    # one entry per segment, in id order: the kept query that opened it
    first_kept = kept_idx[first[first.argsort()]]
    segments_info = [
        {"id": i + 1, "isthing": bool(t), "category_id": int(c), "score": float(sc)}
        for i, (t, c, sc) in enumerate(
            zip(
                is_thing[first_kept].tolist(),
                cur_classes[first_kept].tolist(),
                cur_scores[first_kept].tolist(),
            )
        )
    ]
    return panoptic_seg, segments_info


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes of binary masks [N, H, W] → [N, 4] float (zeros for empty masks)."""
    return _boxes_from_projections(masks.any(2), masks.any(1))


def _boxes_from_projections(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Boxes from per-mask occupied rows [N, H] and columns [N, W] (bool) → [N, 4] float."""
    n, h = rows.shape
    w = cols.shape[1]
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=rows.device)
    nonempty = cols.any(1)
    x_idx = torch.arange(w, device=rows.device)
    y_idx = torch.arange(h, device=rows.device)
    x0 = torch.where(cols, x_idx, w).amin(1)
    x1 = torch.where(cols, x_idx, -1).amax(1) + 1
    y0 = torch.where(rows, y_idx, h).amin(1)
    y1 = torch.where(rows, y_idx, -1).amax(1) + 1
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return boxes * nonempty[:, None]


def instance_inference(
    mask_cls: torch.Tensor,
    mask_pred: torch.Tensor,
    *,
    num_classes: int,
    test_topk_per_image: int,
    panoptic_on: bool,
    thing_ids: Collection[int],
    mask_prob: Optional[torch.Tensor] = None
) -> Instances:
    """Instance segmentation from query predictions (no NMS, no score threshold).

    The top ``test_topk_per_image`` (query, class) pairs by class probability (no-object
    excluded) are taken, so one query may give several classes; with ``panoptic_on`` only thing
    classes are kept. Masks are ``mask_pred > 0``; the score is the class probability times the
    mean sigmoid inside the mask.

    Args:
        mask_cls: [Q, K+1] logits; mask_pred: [Q, H, W] logits.
        num_classes: K; test_topk_per_image: number of pairs kept;
        panoptic_on: keep only ``thing_ids`` classes.
        mask_prob: optional precomputed ``mask_pred.sigmoid()``.
    Returns:
        Instances of image size (H, W) with ``pred_masks`` (bool [R, H, W], a pixel-major
        strided view), ``pred_boxes``
        (boxes of the masks), ``scores`` [R] and ``pred_classes`` [R] int64.
    """
    image_size = tuple(mask_pred.shape[-2:])
    scores = F.softmax(mask_cls, dim=-1)[:, :-1]
    k = min(test_topk_per_image, scores.numel())
    scores_per_image, topk = scores.flatten().topk(k, sorted=False)
    labels_per_image = topk % num_classes
    query_idx = torch.div(topk, num_classes, rounding_mode="floor")
    if panoptic_on:
        keep = _class_lookup(thing_ids, num_classes, mask_cls.device)[labels_per_image]
        scores_per_image = scores_per_image[keep]
        labels_per_image = labels_per_image[keep]
        query_idx = query_idx[keep]

    # One column per kept pair (a query may appear with several classes) of the pixel-major
    # view [H*W, R]: gathering float columns is fast, and the per-mask sums over pixels are
    # matrix-vector products (the areas are exact below 2**24 pixels, as the original's float sums).
    h, w = image_size
    logits = _pixel_major(mask_pred).index_select(1, query_idx)  # [H*W, R]
    binary = logits > 0
    if mask_prob is None:
        prob = logits.sigmoid_()
    else:
        prob = _pixel_major(mask_prob).index_select(1, query_idx)
    del logits
    acc_dtype = torch.promote_types(prob.dtype, torch.float32)  # as the original's float masks
    prob = prob.to(acc_dtype)
    inside = binary.to(acc_dtype)
    ones = torch.ones((1, h * w), dtype=acc_dtype, device=prob.device)
    area = (ones @ inside)[0]
    mask_scores = (ones @ prob.mul_(inside))[0] / (area + 1e-6)
    del prob, inside
    occupied = _as_uint8(binary).view(h, w, -1)
    rows, cols = occupied.amax(1).t().bool(), occupied.amax(0).t().bool()  # [R, H], [R, W]
    boxes = _boxes_from_projections(rows, cols)

    result = Instances(image_size)
    result.pred_masks = binary.view(h, w, -1).permute(2, 0, 1)  # [R, H, W], pixel-major
    result.pred_boxes = Boxes(boxes)
    result.scores = scores_per_image * mask_scores
    result.pred_classes = labels_per_image
    return result


# Elements of the float temporaries [k, frames, H_pad, W_pad] that `video_instance_inference`
# upsamples at once (long clips are processed in chunks of frames).
_VIDEO_CHUNK_ELEMENTS = 1 << 25


def video_instance_inference(
    scores: torch.Tensor,
    mask_logits: torch.Tensor,
    padded_size: Tuple[int, int],
    image_size: Tuple[int, int],
    output_height: int,
    output_width: int,
    topk: int = 10,
) -> Dict:
    """Clip inference of Mask2Former-VIS (SPEC §9).

    The ``topk`` best (query, class) pairs over the whole [Q, K] score matrix (a query may
    appear with several classes); each kept query's mask logits are upsampled bilinearly to the
    padded input size, cropped to the image size, resized to the output size and thresholded
    at logit > 0. Only the kept queries are upsampled, frame chunk by frame chunk (the same
    values as upsampling every query, bounded memory).

    Args:
        scores: [Q, K] class probabilities without the no-object column.
        mask_logits: [Q, T, h, w] mask logits of the clip's T frames.
        padded_size: (H_pad, W_pad) of the padded input frames.
        image_size: (h, w) of the frames before padding.
        output_height, output_width: wanted output size.
        topk: number of (query, class) pairs kept (the original: 10).
    Returns:
        {"image_size": (output_height, output_width), "pred_scores": [k] floats (descending),
        "pred_labels": [k] ints, "pred_masks": k bool CPU tensors [T, output_height,
        output_width]} with k = min(topk, Q*K).
    """
    q, num_classes = scores.shape
    k = min(int(topk), q * num_classes)
    top_scores, top_idx = scores.flatten().topk(k, sorted=True)
    labels = top_idx % num_classes
    queries = torch.div(top_idx, num_classes, rounding_mode="floor")
    selected = mask_logits[queries]  # [k, T, h, w]
    t = selected.shape[1]
    h, w = int(image_size[0]), int(image_size[1])
    out_h, out_w = int(output_height), int(output_width)
    padded = (int(padded_size[0]), int(padded_size[1]))
    masks = torch.zeros((k, t, out_h, out_w), dtype=torch.bool)
    step = max(1, _VIDEO_CHUNK_ELEMENTS // max(1, k * padded[0] * padded[1]))
    for t0 in range(0, t, step):
        chunk = F.interpolate(
            selected[:, t0 : t0 + step], size=padded, mode="bilinear", align_corners=False
        )[:, :, :h, :w]
        if (h, w) != (out_h, out_w):
            chunk = F.interpolate(chunk, size=(out_h, out_w), mode="bilinear", align_corners=False)
        masks[:, t0 : t0 + step] = (chunk > 0).cpu()
    return {
        "image_size": (out_h, out_w),
        "pred_scores": top_scores.tolist(),
        "pred_labels": labels.tolist(),
        "pred_masks": list(masks.unbind(0)),
    }
