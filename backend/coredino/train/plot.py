"""Loss and collapse-monitor curves from the JSON-lines training log, as one PNG."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def read_log(path: str | os.PathLike) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(log_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = read_log(log_path)
    steps = [r["step"] for r in recs]

    def series(key: str) -> list[float]:
        return [r.get(key, math.nan) for r in recs]

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0, 0]
    ax.plot(steps, series("loss_mean"), c="tab:blue", label="loss (mean over log interval)")
    ax.set_ylabel("loss", color="tab:blue")
    distill = any("cosine" in r for r in recs)  # distillation: no EMA teacher, no KL
    if not distill:
        twin = ax.twinx()
        twin.plot(steps, series("kl"), c="tab:orange", alpha=0.8, label="KL(teacher || student)")
        twin.set_ylabel("KL (nats)", color="tab:orange")
    ax.set_title("distillation loss (1 - cosine to the prior)" if distill else
                 "dense DINO loss (left) and KL(teacher || student) (right)")
    ax = axes[0, 1]
    if recs and "log_k" in recs[0]:
        log_k = recs[0]["log_k"]
        ax.plot(steps, series("teacher_entropy"), label="per-token teacher entropy")
        ax.plot(steps, series("batch_entropy"), label="entropy of batch-mean teacher")
        ax.axhline(log_k, ls="--", c="grey", lw=1, label=f"log K = {log_k:.2f} (uniform)")
        ax.axhline(0.0, ls=":", c="grey", lw=1)
        ax.set_title("collapse monitors (nats)")
        ax.legend(fontsize=8)
    else:  # distillation: no prototypes; the student's GSD per logged step instead
        ax.plot(steps, series("gsd"), ".", c="tab:brown")
        ax.set_yscale("log")
        ax.set_title("student GSD of the logged step (m)")
    ax = axes[0, 2]
    if distill:  # agreement with the prior, and of one place seen in two contexts
        ax.plot(steps, series("cosine"), c="tab:green", label="student projection vs prior")
        context = [(r["step"], r["context_cos"]) for r in recs if "context_cos" in r]
        if context:
            ax.plot(*zip(*context), ".", c="tab:purple", ms=3, label="centre alone vs whole view")
            ax.legend(fontsize=8)
        ax.set_title("mean cosine")
    else:
        ax.plot(steps, series("feature_std"), c="tab:green")
        ax.set_title("feature std across batch (x sqrt C; 0 = collapsed)")
    ax.set_ylim(bottom=0)
    ax = axes[1, 0]
    ax.plot(steps, series("lr"), c="tab:red")
    ax.set_title("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax = axes[1, 1]
    ax.plot(steps, series("teacher_temp"), label="teacher temperature")
    ax.plot(steps, [(1 - m) * 10 for m in series("momentum")], label="(1 - EMA momentum) x 10")
    ax.plot(steps, series("weight_decay"), label="weight decay")
    ax.set_title("schedules")
    ax.legend(fontsize=8)
    ax = axes[1, 2]
    ax.plot(steps, series("images_per_s"), c="tab:purple")
    ax.set_ylim(bottom=0)
    ax.set_title("throughput (teacher crops / s)")
    for a in axes.ravel():
        a.set_xlabel("step")
        a.grid(alpha=0.3)
    warned = [r["step"] for r in recs if r.get("warnings")]
    for s in warned:
        axes[0, 1].axvline(s, c="red", alpha=0.2)
    fig.suptitle(title or f"coredino train: {Path(log_path).parent.name}"
                 + (f" ({len(warned)} collapse warnings, red)" if warned else ""))
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
