#!/usr/bin/env python
"""Plot a Detectron2 run's ``metrics.json``: losses, learning rate and evaluation metrics.

Usage::

    python tools/plot_metrics.py output/quickstart/train/metrics.json --output output/quickstart/plots
    python tools/plot_metrics.py runA/ runB/ --output compare/      # several runs, one curve each

Writes ``losses.png`` (total loss and the final-layer loss terms; ``--aux-losses`` adds the
deep-supervision terms), ``lr.png`` and, when the run was evaluated, ``eval_metrics.png`` (one
panel per evaluator: PQ / AP / mIoU ...). A resumed run appends to ``metrics.json``; the last value
logged for an iteration wins. Lines that are not JSON (e.g. a line cut by a kill) are skipped.
"""
import argparse
import json
import logging
import math
import os
import re
import sys
from collections import defaultdict
from typing import Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

logger = logging.getLogger("plot_metrics")

Series = Tuple[np.ndarray, np.ndarray]  # (iterations [N], values [N]) sorted by iteration
AUX_LOSS = re.compile(r"^loss_.*_\d+$")
# Headline metrics drawn by default (key after the "<evaluator>/" prefix).
MAIN_EVAL = ("PQ", "PQ_th", "PQ_st", "SQ", "RQ", "AP", "AP50", "AP75", "mIoU", "fwIoU", "pACC")


def load_metrics(path: str) -> Dict[str, Series]:
    """Read a Detectron2 ``metrics.json`` (one JSON dict per line) into per-key series.

    Args:
        path: the file, or a run folder that contains ``metrics.json``.
    Returns:
        dict key -> (iterations, values); non-numeric and non-finite values are dropped.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: give a metrics.json or a run's OUTPUT_DIR")
    latest: Dict[str, Dict[int, float]] = defaultdict(dict)
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning(f"{path}:{lineno}: not a JSON line, skipped")
                continue
            if not isinstance(record, dict) or "iteration" not in record:
                continue
            it = int(record["iteration"])
            for key, value in record.items():
                if key == "iteration" or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)) and math.isfinite(value):
                    latest[key][it] = float(value)
    series = {}
    for key, by_iter in latest.items():
        iters = np.array(sorted(by_iter), dtype=np.int64)
        series[key] = (iters, np.array([by_iter[i] for i in iters], dtype=np.float64))
    return series


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (window <= 1: unchanged)."""
    if window <= 1 or len(values) < 2:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


def loss_keys(series: Dict[str, Series], aux: bool) -> List[str]:
    keys = [k for k in series if k == "total_loss" or k.startswith("loss_")]
    if not aux:
        keys = [k for k in keys if not AUX_LOSS.match(k)]
    return sorted(keys, key=lambda k: (k != "total_loss", AUX_LOSS.match(k) is not None, k))


def eval_keys(series: Dict[str, Series], all_metrics: bool) -> Dict[str, List[str]]:
    """Evaluation metrics grouped by evaluator prefix, e.g. {"panoptic_seg": [".../PQ", ...]}."""
    groups: Dict[str, List[str]] = defaultdict(list)
    for key in sorted(series):
        if "/" not in key:
            continue
        prefix, name = key.rsplit("/", 1)
        if all_metrics or name in MAIN_EVAL:
            groups[prefix].append(key)
    return dict(groups)


def _label(run: str, key: str, n_runs: int) -> str:
    return key if n_runs == 1 else f"{run}: {key}"


def plot_losses(runs: Dict[str, Dict[str, Series]], out: str, aux=False, window=1, log=False):
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = 0
    for run, series in runs.items():
        for key in loss_keys(series, aux):
            iters, values = series[key]
            style = {"linewidth": 2.0} if key == "total_loss" else {"linewidth": 1.0}
            if AUX_LOSS.match(key):
                style = {"linewidth": 0.6, "alpha": 0.4}
            ax.plot(iters, smooth(values, window), label=_label(run, key, len(runs)), **style)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if log:
        ax.set_yscale("log")
    ax.set_title("Training losses" + (f" (moving average over {window} points)" if window > 1 else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_lr(runs: Dict[str, Dict[str, Series]], out: str):
    fig, ax = plt.subplots(figsize=(8, 4))
    drawn = 0
    for run, series in runs.items():
        if "lr" in series:
            ax.plot(*series["lr"], label=_label(run, "lr", len(runs)))
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_eval(runs: Dict[str, Dict[str, Series]], out: str, all_metrics=False):
    groups: Dict[str, List[Tuple[str, str]]] = defaultdict(list)
    for run, series in runs.items():
        for prefix, keys in eval_keys(series, all_metrics).items():
            groups[prefix].extend((run, k) for k in keys)
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.5), squeeze=False)
    for ax, (prefix, items) in zip(axes[0], sorted(groups.items())):
        if len(runs) == 1 and all(len(runs[r][k][0]) == 1 for r, k in items):
            # a single evaluation (e.g. at the end of training): bars with their values
            names = [k.rsplit("/", 1)[1] for _, k in items]
            values = [float(runs[r][k][1][0]) for r, k in items]
            bars = ax.bar(names, values, color="tab:blue")
            ax.bar_label(bars, fmt="%.1f", fontsize="small")
            it = int(runs[items[0][0]][items[0][1]][0][0])
            ax.set_title(f"{prefix} (iteration {it})")
            ax.grid(True, axis="y", alpha=0.3)
            continue
        for run, key in items:
            iters, values = runs[run][key]
            name = key.rsplit("/", 1)[1]
            ax.plot(iters, values, marker="o", label=_label(run, name, len(runs)))
            ax.annotate(f"{values[-1]:.1f}", (iters[-1], values[-1]), fontsize="small",
                        xytext=(4, 0), textcoords="offset points")
        ax.set_title(prefix)
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Evaluation metrics")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="metrics.json files or run folders containing one")
    parser.add_argument("--output", help="folder for the PNGs (default: folder of the first run)")
    parser.add_argument("--smooth", type=int, default=1, help="moving average window for losses")
    parser.add_argument("--aux-losses", action="store_true", help="also draw loss_*_<i> terms")
    parser.add_argument("--log-y", action="store_true", help="logarithmic loss axis")
    parser.add_argument("--all-metrics", action="store_true", help="draw every eval metric")
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = get_parser().parse_args(argv)
    runs = {}
    for path in args.runs:
        name = os.path.basename(os.path.dirname(os.path.abspath(path))) if path.endswith(
            ".json") else os.path.basename(os.path.normpath(path))
        if name in runs:
            name = path
        try:
            runs[name] = load_metrics(path)
        except FileNotFoundError as e:
            logger.error(str(e))
            return 1
    if not any(runs.values()):
        logger.error("No metrics found in " + ", ".join(args.runs))
        return 1
    first = args.runs[0]
    out_dir = args.output or (first if os.path.isdir(first) else os.path.dirname(first) or ".")
    os.makedirs(out_dir, exist_ok=True)
    written = [
        plot_losses(runs, os.path.join(out_dir, "losses.png"), args.aux_losses, args.smooth, args.log_y),
        plot_lr(runs, os.path.join(out_dir, "lr.png")),
        plot_eval(runs, os.path.join(out_dir, "eval_metrics.png"), args.all_metrics),
    ]
    for path in written:
        if path:
            print(f"wrote {path}")
    if not any(written):
        logger.error("The metrics contain no losses, lr or evaluation results to plot.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
