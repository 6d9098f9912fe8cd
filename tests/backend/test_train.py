"""`coredino train` with real torch / ultralytics / GDAL on the shipped real crops (CPU, scale n)."""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coredino.encoders import ModelSpec, build_encoder
from coredino.encoders.yolo import build_yolo_backbone
from coredino.errors import UserError
from coredino.raster import open_raster_source
from coredino.train.augment import align, d4, d4_inverse, make_views
from coredino.train.commands import add_train_parser
from coredino.train.config import TrainConfig
from coredino.train.data import WindowSampler, step_rng
from coredino.train.masking import block_mask
from coredino.train.monitors import collapse_stats, collapse_warnings
from coredino.train.trainer import Trainer

torch.set_num_threads(1)  # 2 threads spin-wait badly when the 2 cores are shared

SMALL = dict(scale="n", batch_size=2, crop=128, layer=19, out_dim=256, hidden_dim=128,
             bottleneck_dim=64, log_every=1, calib_batches=1, device="cpu", plot=False, export=False)


@pytest.fixture(scope="module")
def rasters(demo_raster, data) -> list[str]:
    return [str(demo_raster), str(data / "caranavi_collar_0p25m.tif")]


def _quiet(_message: str) -> None:
    pass


def test_loss_decreases_when_overfitting_one_batch(rasters, tmp_path):
    # one fixed batch and augmentation, fixed teacher temperature: the student fits the teacher
    cfg = TrainConfig(data=rasters, out=str(tmp_path), steps=10, lr=3e-3, warmup_steps=0, overfit=True,
                      teacher_temp_start=0.04, teacher_temp=0.04, **SMALL)
    trainer = Trainer(cfg, log=_quiet)
    trainer.train()
    losses = [h["loss"] for h in trainer.history]
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.9 * losses[0], losses
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11))
    for key in ("teacher_entropy", "batch_entropy", "kl", "feature_std", "lr", "momentum", "teacher_temp"):
        assert np.isfinite(log[-1][key]), key


def _state(trainer: Trainer) -> dict:
    return {**{f"s.{k}": v for k, v in trainer.student_layers.state_dict().items()},
            **{f"t.{k}": v for k, v in trainer.teacher_layers.state_dict().items()},
            **{f"sh.{k}": v for k, v in trainer.student.head.state_dict().items()},
            **{f"th.{k}": v for k, v in trainer.teacher.head.state_dict().items()},
            "centre": trainer.criterion.centre}


def test_resume_after_kill_matches_uninterrupted_run(rasters, tmp_path):
    common = dict(data=rasters, steps=4, checkpoint_every=2, lr=2e-3, **SMALL)
    straight = Trainer(TrainConfig(out=str(tmp_path / "a"), **common), log=_quiet)
    straight.train()

    killed = Trainer(TrainConfig(out=str(tmp_path / "b"), **common), log=_quiet)
    killed.train(until=2)  # "killed" after the step-2 checkpoint
    assert killed.step == 2
    del killed
    resumed = Trainer(TrainConfig(out=str(tmp_path / "b"), **common), resume=True, log=_quiet)
    assert resumed.step == 2
    resumed.train()

    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert not changed, changed[:5]
    log = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    # the weights did train (the comparison is not trivially between two untouched models)
    fresh = TrainConfig(out=str(tmp_path / "c"), **common)
    untouched = Trainer(fresh, log=_quiet)
    assert any(not torch.equal(v, untouched.student_layers.state_dict()[k[2:]])
               for k, v in a.items() if k.startswith("s.") and v.is_floating_point())


def test_resume_refuses_other_settings(rasters, tmp_path):
    Trainer(TrainConfig(data=rasters, out=str(tmp_path), steps=2, **SMALL), log=_quiet).train(until=1)
    with pytest.raises(UserError, match="other settings"):
        Trainer(TrainConfig(data=rasters, out=str(tmp_path), steps=3, **SMALL), resume=True, log=_quiet)


def test_cli_train_exports_weights_the_engine_loads_strictly(rasters, demo_raster, tmp_path):
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    out = tmp_path / "run"
    argv = ["train", *rasters, "-o", str(out), "--scale", "n", "--steps", "2", "--batch-size", "2",
            "--crop", "128", "--out-dim", "128", "--hidden-dim", "64", "--calib-batches", "1",
            "--log-every", "1", "--device", "cpu"]
    args = parser.parse_args(argv)
    assert args.run(args) == 0
    weights = out / "coredino-n-student.pt"
    for name in ("checkpoint.pt", "train_log.jsonl", "training_curves.png", "export.json",
                 "coredino-n-teacher.pt"):
        assert (out / name).is_file(), name
    state = torch.load(weights, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    fresh = build_yolo_backbone("n").state_dict()
    assert set(state) == {f"layers.{k}" for k in fresh}
    # BatchNorm statistics were recalibrated on clean imagery (not the init's 0 / 1)
    bn = next(k for k in fresh if k.endswith("running_mean"))
    assert not torch.equal(state[f"layers.{bn}"], fresh[bn])

    encoder = build_encoder(ModelSpec("core-dino", "n", str(weights), 19), torch.device("cpu"))
    src = open_raster_source(str(demo_raster), 0.3)
    rgb, _ = src.read(0, 0, 128, 128)
    src.close()
    with torch.no_grad():
        feats = encoder(torch.from_numpy(rgb)[None])
    assert feats.shape == (1, 128, 8, 8) and torch.isfinite(feats).all() and feats.std() > 0

    args = parser.parse_args(argv)  # the same folder again, without --resume: refused
    with pytest.raises(UserError, match="--resume"):
        args.run(args)


def test_identity_head_sinkhorn_and_local_crops_run(rasters, tmp_path):
    cfg = TrainConfig(data=rasters, out=str(tmp_path), steps=2, head="identity", centering="sinkhorn",
                      local_crops=2, local_min=64, local_max=96, **SMALL)
    trainer = Trainer(cfg, log=_quiet)
    views = trainer.views(0)
    assert len(views.students) == 3
    assert {v.image.shape[-1] for v in views.students[1:]} <= {32, 64, 96}
    trainer.train()
    assert all(np.isfinite(h["loss"]) for h in trainer.history)
    assert trainer.history[-1]["log_k"] == pytest.approx(np.log(128))  # identity: K = channels


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_d4_inverse_undoes_every_transform(k, flip):
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert torch.equal(d4_inverse(d4(x, k, flip), k, flip), x)
    if k or flip:
        assert not torch.equal(d4(x, k, flip), x)


def test_flipped_student_map_is_aligned_back_onto_the_teacher(rasters):
    """With an exactly equivariant 'encoder' (patch means), the aligned student map equals the
    teacher's: the flip / rotation applied to the student view is undone on its feature map."""
    cfg = TrainConfig(data=rasters, out="unused", batch_size=4, crop=128, max_gsd=0.3, base_gsd=0.3,
                      jitter_prob=0, blur_prob=0, noise_prob=0, jpeg_prob=0, mask_prob=0,
                      down_up_prob=1.0)
    sampler = WindowSampler(rasters, cfg.base_gsd, cfg.crop)
    try:
        images, valid = sampler.batch(step_rng(0, 0, 0), cfg.batch_size)
    finally:
        sampler.close()
    seen = set()
    for step in range(6):
        views = make_views(images, valid, step_rng(0, 0, step, 1), cfg)
        student = views.students[0]
        seen.update(student.transforms)
        encode = lambda x: F.avg_pool2d(x, cfg.stride)  # noqa: E731 - commutes with D4
        teacher_map = encode(views.teacher)
        aligned = align(encode(student.image), student.transforms, cfg.crop // cfg.stride)
        torch.testing.assert_close(aligned, teacher_map, atol=1e-5, rtol=0)
        unaligned = encode(student.image)
        for i, (k, flip) in enumerate(student.transforms):
            if k or flip:  # without the inverse the maps disagree: the check has teeth
                assert not torch.allclose(unaligned[i], teacher_map[i], atol=1e-3)
    assert any(k or flip for k, flip in seen)


# ----------------------------------------------------------------------------- masking


@pytest.mark.parametrize("h,w", [(8, 8), (16, 16), (5, 7), (2, 2), (32, 20)])
def test_block_mask_ratio_within_bounds(h, w):
    rng = np.random.default_rng(0)
    ratios = [block_mask(h, w, rng, 0.15, 0.4).mean() for _ in range(200)]
    assert min(ratios) >= 0.15 - 1e-9 and max(ratios) <= 0.4 + 1e-9
    if h * w >= 16:
        assert np.std(ratios) > 0  # the target ratio is random


def test_masked_positions_are_dropped_from_student_and_loss(rasters):
    cfg = TrainConfig(data=rasters, out="unused", batch_size=2, crop=128, mask_prob=1.0,
                      jitter_prob=0, blur_prob=0, noise_prob=0, jpeg_prob=0, geometric=False,
                      max_gsd=0.3, down_up_prob=1.0)
    sampler = WindowSampler(rasters, cfg.base_gsd, cfg.crop)
    try:
        images, valid = sampler.batch(step_rng(0, 0, 3), 2)
    finally:
        sampler.close()
    view = make_views(images, valid, step_rng(0, 0, 3, 1), cfg).students[0]
    ratio = view.mask.float().mean(dim=(1, 2))
    assert ((ratio >= 0.15) & (ratio <= 0.4)).all()
    pix = view.mask.repeat_interleave(cfg.stride, 1).repeat_interleave(cfg.stride, 2)
    img = view.image
    for i in range(2):
        masked = img[i][:, pix[i]]  # one constant fill colour (the image mean) per image
        assert torch.allclose(masked, masked[:, :1].expand_as(masked))
        # no degradation or distortion configured: visible pixels are the clean ones
        torch.testing.assert_close(img[i][:, ~pix[i]], images[i][:, ~pix[i]])


# ----------------------------------------------------------------------------- monitors


def test_collapse_monitor_flags_collapsed_distributions():
    k, n = 512, 300
    one_prototype = torch.zeros(n, k)
    one_prototype[:, 7] = 1.0
    warnings = collapse_warnings(collapse_stats(one_prototype))
    assert any("same prototype" in w for w in warnings)

    uniform = torch.full((n, k), 1.0 / k)
    warnings = collapse_warnings(collapse_stats(uniform))
    assert any("uniform" in w for w in warnings)

    constant = torch.ones(4, 16, 5, 5)
    stats = collapse_stats(F.softmax(torch.randn(n, k) / 0.1, -1), features=constant)
    assert any("constant" in w for w in collapse_warnings(stats))

    gen = torch.Generator().manual_seed(0)
    healthy = F.softmax(torch.randn(n, k, generator=gen) / 0.2, -1)  # sharp, varied prototypes
    stats = collapse_stats(healthy, features=torch.randn(4, 16, 5, 5, generator=gen))
    assert collapse_warnings(stats) == []
    assert 0 < stats["teacher_entropy"] < stats["batch_entropy"] <= np.log(k) + 1e-6


# ----------------------------------------------------------------------------- stage 1: the prior


def test_mobilenetv2_prior_loads_its_imagenet_weights_and_is_dense(demo_raster):
    from coredino.train.prior import PRIOR_DIM, MobileNetV2Prior
    prior = MobileNetV2Prior()
    src = open_raster_source(str(demo_raster), 0.3, pad_to=128)
    rgb, _ = src.read(0, 0, 128, 128)
    src.close()
    x = torch.from_numpy(rgb)[None]
    grids = prior.grids(x, (8, 16))
    assert grids[8].shape == (1, PRIOR_DIM, 16, 16) and grids[16].shape == (1, PRIOR_DIM, 8, 8)
    # each part is unit length at every cell of its native grid (stride 8: 32 ch, stride 16: 96 ch)
    assert torch.allclose(grids[8][:, :32].norm(dim=1), torch.ones(1, 16, 16), atol=1e-4)
    assert torch.allclose(grids[16][:, 32:].norm(dim=1), torch.ones(1, 8, 8), atol=1e-4)
    prior.train()  # stays frozen: BatchNorm keeps its ImageNet statistics
    assert not prior.training and torch.equal(prior(x, 16), grids[16])
    # ImageNet features are not colour: a flat grey image differs from real imagery everywhere
    flat = prior(torch.full_like(x, 0.5), 16)
    assert float(torch.cosine_similarity(flat, grids[16], dim=1).mean()) < 0.9


def test_sampler_leaves_out_rasters_far_coarser_than_its_gsd(rasters, data):
    naip = str(data / "naip_rgbn_5m.tif")
    fine = WindowSampler([*rasters, naip], 0.6, 128, max_upsample=2.0)
    assert naip not in fine.paths and len(fine.paths) == 2
    coarse = WindowSampler([*rasters, naip], 4.8, 128, max_upsample=2.0)
    assert coarse.paths == [naip]  # the 0.25 m crops are under 128 px at 4.8 m
    with pytest.raises(UserError, match="without upsampling"):
        WindowSampler([naip], 0.3, 128, max_upsample=2.0)
    for s in (fine, coarse):
        s.close()


def test_distillation_fits_the_prior_and_exports_engine_weights(rasters, data, tmp_path):
    from coredino.train.distill import DistillTrainer
    cfg = TrainConfig(data=[*rasters, str(data / "naip_rgbn_5m.tif")], out=str(tmp_path), steps=8,
                      lr=3e-3, warmup_steps=0, overfit=True, objective="distill", gsds=[4.8],
                      **{**SMALL, "export": True, "calib_batches": 1})
    trainer = DistillTrainer(cfg, log=_quiet)
    result = trainer.train()
    trainer.close()
    cos = [h["cosine"] for h in trainer.history]
    assert cos[-1] > cos[0] + 0.05, cos  # the student's projection moves towards the prior
    assert "teacher" not in result["export"]  # no EMA teacher in stage 1
    weights = result["export"]["student"]["path"]
    encoder = build_encoder(ModelSpec("core-dino", "n", weights, 16), torch.device("cpu"))
    assert encoder(torch.rand(1, 3, 64, 64)).shape == (1, 64, 8, 8)
    # stage 2 starts from the stage-1 student
    stage2 = TrainConfig(data=rasters, out=str(tmp_path / "s2"), steps=1, init=weights, **SMALL)
    Trainer(stage2, log=_quiet).train()


def test_jitter_strength_zero_keeps_the_colours(rasters, tmp_path):
    from coredino.train.augment import photometric
    src = open_raster_source(rasters[0], 0.3, pad_to=64)
    rgb, _ = src.read(0, 0, 64, 64)
    src.close()
    x = torch.from_numpy(rgb)
    only_jitter = dict(jitter_prob=1.0, blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0)
    keep = TrainConfig(data=rasters, out=str(tmp_path), jitter_strength=0.0, **only_jitter)
    assert torch.allclose(photometric(x, np.random.default_rng(0), keep), x, atol=1e-5)
    strong = TrainConfig(data=rasters, out=str(tmp_path), jitter_strength=0.4, **only_jitter)
    assert (photometric(x, np.random.default_rng(0), strong) - x).abs().mean() > 0.01
    with pytest.raises(UserError, match="jitter-strength"):
        TrainConfig(data=rasters, out=str(tmp_path), jitter_strength=1.5)


def test_context_window_pulls_one_location_seen_in_two_contexts_together(rasters, tmp_path):
    from coredino.train.distill import DistillTrainer, context_margin
    assert context_margin(192, 0.0) == 0 and context_margin(192, 0.6) == 32 and context_margin(256, 0.5) == 64
    assert all(context_margin(c, w) % 32 == 0 and c - 2 * context_margin(c, w) >= 64
               for c in (96, 128, 192, 256) for w in (0.2, 0.5, 0.9))
    cfg = TrainConfig(data=rasters, out=str(tmp_path), steps=8, lr=3e-3, warmup_steps=0, overfit=True,
                      objective="distill", context_window=0.6, down_up_prob=1.0,
                      **{**SMALL, "crop": 128, "export": False})
    trainer = DistillTrainer(cfg, log=_quiet)
    trainer.train()
    trainer.close()
    agreement = [h["context_cos"] for h in trainer.history]
    assert len(agreement) == 8 and agreement[-1] > agreement[0], agreement  # the two contexts converge
    from coredino.train.plot import plot_curves  # the distillation curves: cosine and context panels
    assert plot_curves(tmp_path / "train_log.jsonl", tmp_path / "curves.png").stat().st_size > 10_000
    with pytest.raises(UserError, match="context-window"):
        TrainConfig(data=rasters, out=str(tmp_path), context_window=1.0)
