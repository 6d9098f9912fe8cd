"""The training loop: clean-teacher / degraded-student dense DINO on YOLO11 layers 0..layer.

One step: the teacher (EMA of the student, no gradients) embeds the clean crops; the student
embeds the degraded, distorted, masked views (and DINO-MC local crops); each student map is
brought back to the teacher's frame (inverse flip/rotation, bilinear resize to the teacher
grid); both go through the per-location heads; the loss is the cross-entropy between the
sharpened, centred teacher distribution and the student's at every visible location.

Every step's data and augmentations are a pure function of (seed, rank, step) and every
schedule a pure function of the step, so resuming from a checkpoint reproduces the
uninterrupted run exactly (same device and thread count).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch import nn

from ..device import autocast as engine_autocast
from ..encoders.base import ModelSpec
from ..encoders.calibrate import recalibrate_batchnorm
from ..encoders.weights import resolve_weights, sha256_file
from ..encoders.yolo import CoreDinoEncoder, build_yolo_backbone, load_coredino_state_dict, run_layers
from ..errors import UserError
from . import distributed as dist
from .augment import Views, align, make_views, teacher_region
from .checkpoint import (CHECKPOINT, export_backbone, load_checkpoint, remove_stale_temporaries,
                         save_checkpoint, set_rng_state)
from .config import RESUME_KEYS, TrainConfig
from .data import WindowSampler, step_rng, to_device
from .heads import build_head
from .loss import DenseDINOLoss
from .monitors import collapse_stats, collapse_warnings
from .schedules import cosine, linear_then_constant

LOG = "train_log.jsonl"
MAX_UPSAMPLE = 2.0  # with several teacher GSDs, a raster joins a GSD's sampler up to this upsampling
MONITORS = (("teacher_entropy", "H(t)"), ("batch_entropy", "H(mean)"), ("kl", "KL"),
            ("feature_std", "std"), ("cosine", "cos"))


class DenseModel(nn.Module):
    """YOLO11 layers 0..layer plus a per-location head; ``forward`` embeds and aligns many views.

    A single ``forward`` for all student views keeps DistributedDataParallel happy (one
    forward per backward).
    """

    def __init__(self, layers: nn.ModuleList, layer: int, head: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.ModuleList(list(layers)[: layer + 1])
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return run_layers(self.backbone, x)

    def forward(self, views: list[tuple[torch.Tensor, list, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(images, D4 transforms, teacher-grid side)] -> [(aligned features, logits)]."""
        out = []
        for images, transforms, side in views:
            feats = align(self.features(images), transforms, side)
            out.append((feats, self.head(feats)))
        return out


def feature_dim(layers: nn.ModuleList, layer: int) -> int:
    was_training = layers.training
    layers.eval()
    with torch.no_grad():
        dim = run_layers(nn.ModuleList(list(layers)[: layer + 1]), torch.zeros(1, 3, 64, 64)).shape[1]
    layers.train(was_training)
    return int(dim)


def _autocast(device: torch.device):
    """bf16 autocast on CUDA when supported (no loss scaling needed); full precision otherwise."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return engine_autocast(device)
    return torch.autocast("cpu", enabled=False)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> None:
        self.cfg, self.log = cfg, log
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.dist, self.device = dist.setup(cfg.device)
        self.out = Path(cfg.out)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temporaries(self.out):  # left by a run killed mid-save
                self.log(f"coredino: removed {stale.name}, an unfinished checkpoint of a killed run")
        # one sampler per teacher GSD; with several, rasters much coarser than a GSD are left out of it
        fit = MAX_UPSAMPLE if cfg.gsds else None
        self.samplers = [(g, WindowSampler(cfg.data, g, cfg.crop, cfg.min_valid, max_upsample=fit))
                         for g in [cfg.base_gsd, *cfg.gsds]]
        self.sampler = self.samplers[0][1]  # the base GSD: BatchNorm calibration before export
        for _, sampler in self.samplers:
            for w in sampler.warnings:
                self.log(f"coredino: warning: {w}")

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            layers = build_yolo_backbone(cfg.scale)
            if cfg.init:
                load_coredino_state_dict(layers, resolve_weights(cfg.init))
            self.student_layers = layers
            self._build_models(layers)
        decay, no_decay = [], []
        for name, p in self.student.named_parameters():
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        self.optimizer = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                                           lr=cfg.lr)
        self.model: nn.Module = self.student
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.student, device_ids=ids)
        self.step = 0
        self.history: list[dict] = []
        self.seconds = 0.0  # training time over all sessions (from checkpoints)
        if resume:
            self._resume()
        elif self.dist.main:
            (self.out / LOG).write_text("")
        if self.dist.main:
            (self.out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))

    def _build_models(self, layers: nn.ModuleList) -> None:
        """Student (layers + head), EMA teacher and loss of the dense DINO objective."""
        c = self.cfg
        head = build_head(c.head, feature_dim(layers, c.layer), c.out_dim, c.hidden_dim, c.bottleneck_dim)
        self.student = DenseModel(layers, c.layer, head)
        self.teacher_layers = copy.deepcopy(layers)
        self.teacher = DenseModel(self.teacher_layers, c.layer, copy.deepcopy(head))
        for m in (self.student_layers, self.teacher_layers, self.student, self.teacher):
            m.to(self.device)
        self.teacher.requires_grad_(False)
        self.student.train()
        self.teacher.train()  # BatchNorm on batch statistics, as the student
        self.out_dim = head.out_dim
        self.criterion = DenseDINOLoss(self.out_dim, c.student_temp, c.centre_momentum,
                                       c.centering).to(self.device)

    # ----------------------------------------------------------------------- state

    def state(self) -> dict:
        return {
            "config": self.cfg.to_dict(), "step": self.step, "seconds": self.seconds,
            "world_size": self.dist.world_size,
            "student_layers": self.student_layers.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self._model_state(),
        }

    def _model_state(self) -> dict:
        """The objective's own state beside the student layers and the optimizer."""
        return {"student_head": self.student.head.state_dict(),
                "teacher_layers": self.teacher_layers.state_dict(),
                "teacher_head": self.teacher.head.state_dict(),
                "loss": self.criterion.state_dict()}

    def _load_model_state(self, ckpt: dict) -> None:
        self.student.head.load_state_dict(ckpt["student_head"])
        self.teacher_layers.load_state_dict(ckpt["teacher_layers"])
        self.teacher.head.load_state_dict(ckpt["teacher_head"])
        self.criterion.load_state_dict(ckpt["loss"])

    def save(self) -> Optional[Path]:
        path = save_checkpoint(self.state(), self.out) if self.dist.main else None
        dist.barrier()
        return path

    def _resume(self) -> None:
        ckpt = load_checkpoint(self.out)
        if ckpt is None:
            self.log(f"coredino: no {CHECKPOINT} in {self.out}: starting from step 0")
            if self.dist.main:
                (self.out / LOG).write_text("")
            return
        old = ckpt["config"]
        old = {**TrainConfig.from_dict({**old, "data": ["-"]}).to_dict(), **old}  # options added later: defaults
        diffs = [f"{k} {old.get(k)!r} -> {getattr(self.cfg, k)!r}" for k in RESUME_KEYS
                 if old.get(k) != getattr(self.cfg, k)]
        if diffs:
            raise UserError(f"{self.out / CHECKPOINT} was written with other settings ({'; '.join(diffs)}); "
                            f"resume with the same options, or write to a new -o folder")
        if ckpt.get("world_size", 1) != self.dist.world_size:
            self.log(f"coredino: warning: checkpoint from {ckpt.get('world_size')} processes, resuming "
                     f"on {self.dist.world_size}: the data stream differs from an uninterrupted run")
        self.student_layers.load_state_dict(ckpt["student_layers"])
        self._load_model_state(ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.seconds = int(ckpt["step"]), float(ckpt.get("seconds", 0.0))
        set_rng_state(ckpt["rng"])
        if self.dist.main:  # drop log lines written after the checkpoint (the killed tail)
            path = self.out / LOG
            lines = path.read_text().splitlines() if path.exists() else []
            kept = [l for l in lines if l.strip() and json.loads(l).get("step", 0) <= self.step]
            path.write_text("".join(l + "\n" for l in kept))
        self.log(f"coredino: resumed from step {self.step} of {self.cfg.steps}")

    # ----------------------------------------------------------------------- data

    def views(self, step: int) -> Views:
        """The views of ``step`` for this rank (the same on every run)."""
        c = self.cfg
        rng = step_rng(c.seed, self.dist.rank, 0 if c.overfit else step)
        if len(self.samplers) == 1:
            return make_views(*self.sampler.batch(rng, c.batch_size), rng, c)
        gsd, sampler = self.samplers[int(rng.integers(0, len(self.samplers)))]
        scaled = dataclasses.replace(c, base_gsd=gsd, max_gsd=gsd * c.max_gsd / c.base_gsd)
        return make_views(*sampler.batch(rng, c.batch_size), rng, scaled)

    def _prefetch(self, start: int, stop: int) -> Iterator[Views]:
        q: queue.Queue = queue.Queue(maxsize=2)
        halt = threading.Event()

        def work() -> None:
            try:
                for s in range(start, stop):
                    item = self.views(s)
                    while not halt.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if halt.is_set():
                        return
            except BaseException as exc:  # surfaced in the training thread
                q.put(exc)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            for _ in range(start, stop):
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            halt.set()
            thread.join()

    # ----------------------------------------------------------------------- one step

    def schedules(self, step: int) -> dict:
        c = self.cfg
        return {
            "lr": cosine(step, c.steps, c.lr, c.min_lr, c.warmup),
            "weight_decay": cosine(step, c.steps, c.weight_decay, c.weight_decay_end),
            "momentum": cosine(step, c.steps, c.momentum_start, c.momentum_end),
            "teacher_temp": linear_then_constant(step, c.temp_warmup, c.teacher_temp_start, c.teacher_temp),
        }

    def scheduled(self, step: int) -> dict:
        """The schedules of ``step``, with the optimizer's learning rate and weight decay set."""
        sched = self.schedules(step)
        for group in self.optimizer.param_groups:
            group["lr"] = sched["lr"]
        self.optimizer.param_groups[0]["weight_decay"] = sched["weight_decay"]  # group 1: no decay
        return sched

    def optimise(self, losses: list[torch.Tensor], step: int) -> tuple[torch.Tensor, float]:
        """One optimizer step on the mean of ``losses``; returns the loss and the gradient norm."""
        c = self.cfg
        loss = torch.stack(losses).mean()
        if not torch.isfinite(loss):
            raise UserError(f"loss became {loss.item()} at step {step}; lower --lr or check the imagery")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(self.student.parameters(), c.clip_grad)) \
            if c.clip_grad > 0 else float("nan")
        if step < c.freeze_prototypes and hasattr(self.student.head, "prototypes"):
            self.student.head.prototypes.grad = None
        self.optimizer.step()
        return loss, grad_norm

    def train_step(self, views: Views, step: int, monitor: bool = False) -> dict:
        c, sched = self.cfg, self.scheduled(step)
        views = views.to(self.device)
        with _autocast(self.device):
            with torch.no_grad():
                t_logits = self.teacher.head(self.teacher.features(views.teacher))
            outs = self.model([(v.image, v.transforms, v.cells[2]) for v in views.students])
        probs = self.criterion.teacher_probs(t_logits, sched["teacher_temp"], views.cell_valid)
        probs_map = probs.permute(0, 3, 1, 2)
        losses = []
        for v, (_, logits) in zip(views.students, outs):
            target = teacher_region(probs_map, v).permute(0, 2, 3, 1)
            weight = teacher_region(views.cell_valid, v)
            if v.mask is not None and not c.loss_on_masked:
                weight = weight & ~v.mask
            losses.append(self.criterion(logits, target, weight)[0])
        loss, grad_norm = self.optimise(losses, step)
        with torch.no_grad():  # EMA teacher
            m = sched["momentum"]
            for ps, pt in zip(self.student.parameters(), self.teacher.parameters()):
                pt.mul_(m).add_(ps.detach(), alpha=1 - m)
        self.criterion.update_centre(t_logits, views.cell_valid)
        record = {"step": step + 1, "loss": loss.item(), "grad_norm": grad_norm, **sched,
                  "mode": views.students[0].mode,
                  "gsd": sum(views.students[0].gsd) / len(views.students[0].gsd)}
        if monitor:
            feats, logits = outs[0]
            record.update(collapse_stats(probs, logits.detach(), c.student_temp, feats.detach(),
                                         views.cell_valid))
        return record

    # ----------------------------------------------------------------------- loop

    def train(self, until: Optional[int] = None) -> dict:
        """Run to ``cfg.steps`` (or stop after step ``until``: a simulated kill); export at the end."""
        c = self.cfg
        stop = min(c.steps, until) if until else c.steps
        interval, t0, last_log = [], time.perf_counter(), time.perf_counter()
        with contextlib.closing(self._prefetch(self.step, stop)) as batches:
            for step, views in zip(range(self.step, stop), batches):
                self._one(step, views, interval)
                if self.step % c.log_every == 0 or self.step == c.steps or step == 0:
                    interval, last_log = self._log(interval, last_log)
                if self.step % c.checkpoint_every == 0 or self.step == stop:
                    self.save()
        result = {"step": self.step, "steps": c.steps, "seconds": self.seconds,
                  "images_per_s": self.step * c.batch_size * self.dist.world_size / max(self.seconds, 1e-9),
                  "wall_s": time.perf_counter() - t0}
        if self.step >= c.steps and self.dist.main:
            if c.export:
                result["export"] = self.export()
            if c.plot:
                from .plot import plot_curves
                result["plot"] = str(plot_curves(self.out / LOG, self.out / "training_curves.png"))
        dist.barrier()
        return result

    def _one(self, step: int, views: Views, interval: list[float]) -> None:
        c = self.cfg
        t_step = time.perf_counter()
        monitor = (step + 1) % c.log_every == 0 or step + 1 == c.steps or step == 0
        rec = self.train_step(views, step, monitor)
        self.step = step + 1
        self.seconds += time.perf_counter() - t_step
        interval.append(rec["loss"])
        self.history.append(rec)

    def _log(self, interval: list[float], last_log: float) -> tuple[list[float], float]:
        """Write the last step's record (with monitors) to the JSON-lines log and the console."""
        c, rec = self.cfg, self.history[-1]
        now = time.perf_counter()
        rec["loss_mean"] = sum(interval) / len(interval)
        rec["images_per_s"] = len(interval) * c.batch_size * self.dist.world_size / (now - last_log)
        rec["elapsed_s"] = round(self.seconds, 2)
        rec["warnings"] = collapse_warnings(rec) if self.step > 1 and "log_k" in rec else []
        if self.dist.main:
            with open(self.out / LOG, "a") as f:
                f.write(json.dumps(rec) + "\n")
            monitors = " ".join(f"{label} {rec[key]:.3f}" for key, label in MONITORS if key in rec)
            self.log(f"step {self.step}/{c.steps} loss {rec['loss_mean']:.4f} {monitors} "
                     f"lr {rec['lr']:.2e} {rec['images_per_s']:.1f} img/s")
            for w in rec["warnings"]:
                self.log(f"coredino: warning: step {self.step}: {w}")
        return [], now

    # ----------------------------------------------------------------------- export

    def calibrated(self, layers: nn.ModuleList) -> nn.ModuleList:
        """A copy of ``layers`` (0-22) with BatchNorm statistics recalibrated on clean crops
        (``--calib-batches 0``: the running statistics of training, kept as they are)."""
        copy_ = copy.deepcopy(layers).to(self.device)
        if not self.cfg.calib_batches:
            return copy_
        batches = self.sampler.clean_batches(self.cfg.calib_batches, self.cfg.batch_size, self.cfg.seed)
        recalibrate_batchnorm(copy_, to_device(batches, self.device))
        return copy_

    def export(self) -> dict:
        """Student (and teacher) backbones in the core-dino format, BN recalibrated, checked strictly."""
        c = self.cfg
        info = {"scale": c.scale, "layer": c.layer, "steps": self.step, "train_seconds": round(self.seconds, 1),
                "calibration": {"rasters": [d["path"] for d in self.sampler.describe()], "gsd": c.base_gsd,
                                "crop": c.crop, "batches": c.calib_batches, "batch_size": c.batch_size,
                                "seed": c.seed},
                "config": c.to_dict()}
        exports = [("student", self.student_layers)]
        if self.teacher_layers is not None:
            exports.append(("teacher", self.teacher_layers))
        for name, layers in exports:
            path = export_backbone(self.calibrated(layers), self.out / f"coredino-{c.scale}-{name}.pt")
            encoder = CoreDinoEncoder(ModelSpec("core-dino", c.scale, str(path), c.layer))  # strict load
            with torch.no_grad():
                probe = encoder(torch.full((1, 3, 64, 64), 0.5))
            if not torch.isfinite(probe).all():
                raise UserError(f"{path}: exported weights give non-finite features")
            info[name] = {"path": str(path), "sha256": sha256_file(path)}
        (self.out / "export.json").write_text(json.dumps(info, indent=2))
        self.log(f"coredino: exported {info['student']['path']} (BatchNorm " + (
            f"recalibrated on {c.calib_batches} clean batches)" if c.calib_batches else
            "statistics of training, not recalibrated)"))
        return info

    def close(self) -> None:
        for _, sampler in self.samplers:
            sampler.close()
