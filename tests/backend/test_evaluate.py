"""`coredino eval`: cluster metrics on known examples; the probe end to end on the real Kampala crop."""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np
import pytest
import torch
from osgeo import gdal

from coredino.encoders import ModelSpec, build_encoder
from coredino.errors import UserError
from coredino.evaluate.clusters import cluster_quality, nmi, overclustering_accuracy, patch_labels
from coredino.evaluate.commands import add_eval_parser
from coredino.evaluate.data import IGNORE, find_pairs, load, scene_of, split
from coredino.evaluate.evaluator import encode
from coredino.evaluate.probe import run_probe, soft_iou_loss

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- metrics


def test_perfect_clustering_scores_one():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    ids = np.array([5, 5, 3, 3, 0, 0, 0, 5])  # a relabelling of the classes
    assert overclustering_accuracy(ids, labels, ids, labels, k=6) == 1.0
    assert nmi(ids, labels) == pytest.approx(1.0)


def test_overclustering_maps_clusters_on_one_split_and_scores_the_other():
    train_labels = np.array([0, 0, 0, 1, 1, 1, 0])
    train_ids = np.array([0, 1, 1, 2, 3, 3, 1])  # 4 pure clusters for 2 classes, class 0 majority
    test_ids = np.array([0, 1, 2, 3, 3, 7])  # cluster 7 never seen on train: overall majority
    test_labels = np.array([0, 0, 1, 1, 0, 0])
    acc = overclustering_accuracy(train_ids, train_labels, test_ids, test_labels, k=8, n_classes=2)
    assert acc == pytest.approx(5 / 6)  # predicted 0 0 1 1 1 0: only the 5th is wrong
    assert nmi(np.zeros(6, int), test_labels) == pytest.approx(0.0)  # one cluster: no information


def test_soft_iou_loss_is_zero_for_a_perfect_prediction():
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    valid = torch.ones(2, 2)
    assert soft_iou_loss(torch.full((2, 2), -50.0) + 100 * target, target, valid) < 1e-3
    assert soft_iou_loss(torch.full((2, 2), 50.0) - 100 * target, target, valid) > 0.75  # 1 - 1/5


def test_patch_labels_take_the_majority_and_skip_unlabelled_patches():
    label = torch.zeros(4, 8, dtype=torch.uint8)
    label[:, 4:] = 1
    label[:2, 4:6] = IGNORE  # right patch: 12 of 16 labelled, all building
    label[:, :4] = IGNORE
    label[0, 0] = 0  # left patch: 1 of 16 labelled
    lab, ok = patch_labels(label, 4)
    assert lab.tolist() == [[0, 1]] and ok.tolist() == [[False, True]]


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def kampala(data):
    pairs = find_pairs(str(data / "kampala_0p30m_3857.tif"))
    assert [p.scene for p in pairs] == ["kampala"]
    return load(pairs[0], 0.3)


def test_labels_are_warped_onto_the_image_grid(kampala, data):
    # the crop is EPSG:3857; the engine reads it in UTM at 0.3 m and the mask follows the same grid
    assert kampala.rgb.shape[1:] == kampala.label.shape
    assert kampala.label.shape[0] % 32 == 0 and kampala.label.shape[1] % 32 == 0
    assert set(np.unique(kampala.label)) <= {0, 1, IGNORE}
    src = gdal.Open(str(data / "kampala_0p30m_3857_buildings.tif")).ReadAsArray()
    share = lambda a: (a == 1).sum() / ((a == 0) | (a == 1)).sum()  # noqa: E731
    assert share(kampala.label) == pytest.approx(share(src), abs=0.03)
    # buildings (roofs) and background differ in brightness in the real image: alignment check
    grey = kampala.rgb.mean(0)
    assert abs(grey[kampala.label == 1].mean() - grey[kampala.label == 0].mean()) > 0.02


def test_probe_and_clusters_run_end_to_end_on_kampala(kampala):
    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 19), torch.device("cpu"))
    maps = encode(encoder, [kampala])
    assert maps[0].features.shape[1:] == tuple(s // 16 for s in kampala.label.shape)
    result = run_probe(maps, maps, iters=5, seeds=1)
    assert 0.0 <= result["iou"] <= 1.0 and 0.0 <= result["train_iou"] <= 1.0
    quality = cluster_quality(maps, maps, encoder.patch, k=8)
    assert 0.0 <= quality["accuracy"] <= 1.0 and 0.0 <= quality["nmi"] <= 1.0
    assert quality["accuracy"] >= quality["majority_baseline"] - 1e-9  # same split: never worse


def test_scene_split_is_by_scene():
    pairs = find_pairs("/work/shared/data/labelled/oam_osm_buildings") \
        if os.path.isdir("/work/shared/data/labelled/oam_osm_buildings") else None
    if pairs is None:
        pytest.skip("development data set not present")
    train, test = split(pairs, ["kampala", "nairobi"], ["kathmandu"])
    assert {p.scene for p in train} == {"kampala_uganda", "nairobi_kenya"}
    assert {p.scene for p in test} == {"kathmandu_valley_nepal"}
    assert scene_of("x/kampala_uganda_patch1_0p30m_image.tif") == "kampala_uganda"
    with pytest.raises(UserError, match="scenes available"):
        split(pairs, ["lima"], ["kathmandu"])


def test_cli_eval_writes_the_table_for_random_baseline(data, tmp_path):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", "--weights", "random", "--data", str(data), "--train-scenes",
                              "kampala", "--test-scenes", "kampala", "--iters", "3", "--seeds", "1",
                              "--k", "4", "--calib-batches", "1", "-o", str(tmp_path)])
    assert args.run(args) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["random-init"]
    assert 0.0 <= result["rows"][0]["probe"]["iou"] <= 1.0
    assert "| random-init |" in (tmp_path / "eval.md").read_text()
    assert (tmp_path / "random-init-n-bn-calibrated.pt").is_file()
