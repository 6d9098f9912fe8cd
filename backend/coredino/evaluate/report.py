"""The evaluation report: one JSON with every number, one page of markdown with the table."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .rotation import HEADLINE

LABELS = {"conv_iou": "conv IoU", "linear_iou": "linear IoU", "similarity_auc": "similarity AUC",
          "cluster_nmi": "cluster NMI", "conv_accuracy": "conv acc", "linear_accuracy": "linear acc",
          "cluster_accuracy": "cluster acc", "conv_miou": "conv mIoU", "linear_miou": "linear mIoU"}


def _cell(m: dict) -> str:
    return f"{m['mean']:.3f} ± {m['fold_std']:.3f}" if m and np.isfinite(m["mean"]) else "–"


def decision(rows: list[dict], candidate: str, against: list[str]) -> dict:
    """Does ``candidate`` beat each model of ``against`` by more than the spread?

    Paired (the rule): per headline metric, the candidate's fold mean minus the other's on the
    same fold; the margin is the mean of these differences over folds and metrics, the spread the
    mean over metrics of their std over folds. Both models see the same folds, so how hard a fold
    is (most of each model's own spread) cancels out. Unpaired (reported beside it): the
    difference of the rotating-evaluation means against the larger of the two models' spreads.
    """
    by = {r["name"]: r for r in rows}
    if candidate not in by:
        return {}
    cand = by[candidate]
    out = {}
    for name in against:
        if name in by and name != candidate:
            other = by[name]
            margin = cand["headline"]["mean"] - other["headline"]["mean"]
            spread = max(cand["headline"]["spread"], other["headline"]["spread"])
            result = {"margin": round(margin, 4), "spread": round(spread, 4), "unpaired_wins": margin > spread}
            paired = _paired(cand, other)
            if paired:
                result.update(paired_margin=round(paired[0], 4), paired_spread=round(paired[1], 4),
                              folds_better=paired[2], folds=paired[3])
            result["wins"] = paired[0] > paired[1] if paired else margin > spread
            out[name] = result
    return out


def _paired(a: dict, b: dict) -> Optional[tuple[float, float, int, int]]:
    """(mean paired difference, mean spread of the differences, fold-metrics better, fold-metrics)."""
    means, spreads, better, total = [], [], 0, 0
    for task, metrics in a.get("tasks", {}).items():
        for m in HEADLINE[task.split("@")[0]]:
            fa = metrics.get(m, {}).get("folds", {})
            fb = b.get("tasks", {}).get(task, {}).get(m, {}).get("folds", {})
            diffs = [float(np.mean(fa[g]) - np.mean(fb[g])) for g in fa if g in fb]
            if diffs:
                means.append(float(np.mean(diffs)))
                spreads.append(float(np.std(diffs)))
                better += sum(d > 0 for d in diffs)
                total += len(diffs)
    return (float(np.mean(means)), float(np.mean(spreads)), better, total) if means else None


def _verdict(name: str, v: dict) -> str:
    text = f"vs {name}: "
    if "paired_margin" in v:
        text += (f"paired margin {v['paired_margin']:+.3f}, spread {v['paired_spread']:.3f}, better in "
                 f"{v['folds_better']}/{v['folds']} fold-metrics; ")
    text += f"unpaired margin {v['margin']:+.3f}, spread {v['spread']:.3f}"
    return text + f" -> {'wins' if v['wins'] else 'does not win'}"


def markdown(report: dict) -> str:
    p = report["params"]
    rows = report["rows"]
    tasks = [t for t in p["tasks"]]
    head = ["model"] + [f"{t}: {LABELS[m]}" for t in tasks for m in HEADLINE[t.split("@")[0]]] + \
        ["**mean**", "context agreement"]
    lines = ["# Rotating evaluation of frozen encoders", "",
             f"core-dino:{p['scale']} layer {p['layer']} features, 8 px cells; {p['seeds']} seeds; "
             f"data `{p['data']}`. Every number: mean over held-out folds (and seeds) ± spread "
             f"(std over folds of the per-fold means). Command: `{p['command']}`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['name']}"]
        for t in tasks:
            for m in HEADLINE[t.split("@")[0]]:
                cells.append(_cell(r["tasks"].get(t, {}).get(m)))
        cells.append(f"**{r['headline']['mean']:.3f}** ± {r['headline']['spread']:.3f}")
        context = r.get("context")
        cells.append(f"{_cell(context)} (lowest {context['min']:.3f})" if context and np.isfinite(context["min"])
                     else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Folds: buildings: one city held out at a time (Kampala, Kathmandu, Nairobi; 2 patches "
              "each; probes train on the other two cities), at 0.30 m and at 0.15 m (same footprints, "
              "resampled to UTM); Dubai land cover: one tile held out at a time (6 tiles x 9 parts, "
              f"centre {p['dubai_crop']} px crop of each part, 5 classes). "
              "Majority-class accuracy (everything the commonest class): " + ", ".join(
                  f"{t} {rows[0]['tasks'][t]['majority_accuracy']['mean']:.3f}" for t in tasks
                  if rows and t in rows[0]['tasks']) + ".", "",
              "Metrics: *linear*: softmax regression (50 L-BFGS iterations) on up to 10,000 standardised training cells; *conv*: "
              "3x3 conv (16) + BN + ReLU + 1x1 conv, 100 AdamW steps of 8 random 16x16-cell windows; "
              "*cluster*: K-means (k = 32, cosine, 10 iterations) on up to 10,000 of the training folds' cells, clusters mapped to their "
              "majority class there, accuracy / NMI on the held-out fold; *similarity AUC*: the product's "
              "query rule (`explore/similar.py`) from 10 building + 5 background clicks on a held-out "
              "image (features centred on the image), ROC AUC of buildings vs background over its other "
              "cells, 5 click sets per image and seed. The mean column is the rotating-evaluation mean "
              "(mean of the headline metrics; spread = mean of their spreads). *Context agreement*: "
              "the mean cosine between the features of the same cells encoded in two tiles of 384 px "
              "offset by 128 px (tile borders left out), on every building image of at least 512 px, "
              "± the spread over cities, and the lowest pair (`evaluate/context.py`): below 1, a "
              "tile's content shifts its features and the map changes palette at tile borders."]
    if report.get("decision"):
        lines += ["", f"Decision for `{report['candidate']}` (wins: paired margin larger than the paired "
                  f"spread; unpaired figures beside): " + "; ".join(_verdict(k, v) for k, v in report["decision"].items())]
        gate = report.get("context_gate")
        cand = next((r for r in rows if r["name"] == report["candidate"]), None)
        if gate and cand and cand.get("context"):
            lowest = cand["context"]["min"]
            lines.append(f"Lowest context agreement of `{report['candidate']}`: {lowest:.3f} (gate: every "
                         f"tile pair at least {gate}) -> {'passes' if lowest >= gate else 'fails'}.")
    extra = [(t, m) for t in tasks for m in ("conv_miou", "linear_miou") if t == "dubai"]
    if extra:
        lines += ["", "| model | " + " | ".join(f"{t}: {LABELS[m]}" for t, m in extra) + " | seconds |",
                  "|---|" + "---|" * (len(extra) + 1)]
        for r in rows:
            secs = sum(v.get("seconds", {}).get("total", 0) for v in r["tasks"].values())
            lines.append(f"| {r['name']} | " + " | ".join(_cell(r["tasks"].get(t, {}).get(m)) for t, m in extra)
                         + f" | {secs:.0f} |")
    return "\n".join(lines) + "\n"
