"""`coredino learn`: a named class map from a few labelled examples, on the kept embeddings.

Examples (clicked points, a point/polygon vector file, similarity maps above a threshold) pick
cells of the map's ``_embeddings.tif``; a classifier (:mod:`.classifier`) trained on their
embeddings labels every cell. Outputs, all written atomically beside ``output``:

* ``output``: Byte COG, 1..N the classes (0 unclassified: below ``min_confidence``, 255 nodata),
  with class names (metadata, raster attribute table, .qml legend) and ``_areas.csv``;
* ``<stem>_confidence.tif``: the winning class's probability in percent (Byte, 255 nodata);
* ``<stem>_margin.tif``: the gap between the two most probable classes in percent: low where the
  classifier hesitates, i.e. where the next click helps most.

The result reports per-class cross-validated accuracy and the confusion matrix (grouped folds:
the cells of one polygon stay together). A saved classifier applies to other maps classified
with the same codebook (shared embedding basis); ``model`` applies one without training.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
from osgeo import gdal

from coredino_contract.classes import UNCLASSIFIED, class_color
from coredino_contract.naming import confidence_path, margin_path, style_path
from coredino_contract.params import LearnParams
from coredino_contract.results import ClassScore, LearnResult

from ..cog import AtomicCOG
from ..errors import UserError
from ..progress import Progress
from ..styling import ramp_qml
from .classifier import Classifier, cell_features, cross_validate, train
from .embeddings import EmbeddingFile, resolve
from .examples import Examples, add_points, add_similar, add_vector
from .rasters import cell_area, windows
from .reclassify import publish_named

NODATA = 255

# confidence: dark (unsure) to transparent (sure); margin: red where the classifier hesitates
_CONFIDENCE = [(0, "#d7191c", 230, "0 % (unsure)"), (50, "#fdae61", 140, "50 %"), (100, "#1a9641", 0, "100 %")]
_MARGIN = [(0, "#d7191c", 230, "0: hesitates, click here"), (25, "#fdae61", 120, "25"),
           (60, "#ffffbf", 0, "60: sure")]


def _examples(params: LearnParams, emb: EmbeddingFile, valid: np.ndarray) -> Examples:
    out = Examples()
    if params.points:
        add_points(out, emb.ds, valid, params.points)
    if params.examples:
        add_vector(out, emb.ds, valid, params.examples, params.class_field)
    for s in params.similar:
        add_similar(out, emb.ds, valid, s.name, s.path, s.threshold)
    return out


_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # the last embeddings file's features


def _features(emb: EmbeddingFile) -> tuple[np.ndarray, np.ndarray]:
    """(cell features (h, w, 64), valid (h, w)) of the whole grid (62 MB at 512 x 512 cells).

    The last file's are kept, keyed by path, size and modification time: in the click-learn-reclick
    loop the backend (one process) rereads nothing, and a rerun costs training, prediction and
    writing only.
    """
    stat = os.stat(emb.path)
    key = (os.path.realpath(emb.path), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        z, valid = emb.read(0, 0, emb.width, emb.height)
        _CACHE.clear()
        _CACHE[key] = (cell_features(z, valid), valid)
    return _CACHE[key]


def learn(params: LearnParams, progress: Optional[Progress] = None) -> LearnResult:
    """Train on the examples (or load ``params.model``), then write the maps of the module docstring."""
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    timings: dict[str, float] = {}
    emb = resolve(params.input)
    try:
        t = time.perf_counter()
        features, valid = _features(emb)
        timings["read"] = time.perf_counter() - t
        t = time.perf_counter()
        codebook_sha = emb.tags.get("CODEBOOK_SHA256")
        scores, matrix, examples = [], None, Examples()
        if params.model:
            model = Classifier.load(params.model)
            if model.basis_sha256 != emb.basis_id:
                raise UserError(f"{params.model} was trained on embeddings in another basis ("
                                f"{model.basis_sha256[:12]}) than {emb.path} ({emb.basis_id[:12]}): classify "
                                f"the raster with the same codebook and --embeddings (coredino 0.2 or later)")
        else:
            examples = _examples(params, emb, valid)
            names = list(dict.fromkeys(examples.names))
            if len(names) < 2:
                raise UserError(f"examples name {len(names)} class{'es' if len(names) != 1 else ''}"
                                f"{': ' + names[0] if names else ''}; give examples of at least two classes")
            y = np.array([names.index(n) for n in examples.names])
            groups = np.array(examples.example)
            zx = features[examples.rows, examples.cols]
            model = train(params.classifier, zx, y, names, emb.basis_id, codebook_sha)
            timings["train"] = time.perf_counter() - t
            t = time.perf_counter()
            matrix = cross_validate(params.classifier, zx, y, groups, len(names))
            timings["cross_validate"] = time.perf_counter() - t
            for c, name in enumerate(names):
                hits = None if matrix is None or matrix[c].sum() == 0 else float(matrix[c, c] / matrix[c].sum())
                scores.append(ClassScore(name, len(np.unique(groups[y == c])), int((y == c).sum()), hits))
        progress.update(0.3, "predicting")
        t = time.perf_counter()
        proba = model.predict_proba(features[valid])
        timings["predict"] = time.perf_counter() - t
        t = time.perf_counter()
        result = _write(params, emb, model, proba, valid)
        timings["write"] = time.perf_counter() - t
        if params.save_model:
            model.save(params.save_model, [class_color(i) for i in range(len(model.classes))])
            result.model = params.save_model
    finally:
        emb.close()
    result.scores, result.skipped = scores, examples.skipped
    if matrix is not None:
        result.confusion = matrix.tolist()
        result.accuracy = float(np.trace(matrix) / max(1, matrix.sum()))
    result.timings = {k: round(v, 3) for k, v in timings.items()}
    result.seconds = time.perf_counter() - start
    progress.update(1.0, "done")
    return result


def _write(params: LearnParams, emb: EmbeddingFile, model: Classifier, proba: np.ndarray,
           valid: np.ndarray) -> LearnResult:
    best = proba.max(1)
    second = np.partition(proba, -2, axis=1)[:, -2] if proba.shape[1] > 1 else np.zeros_like(best)
    values = np.full(valid.shape, NODATA, np.uint8)
    values[valid] = np.where(best >= params.min_confidence, proba.argmax(1) + 1, 0)
    counts = np.bincount(values.ravel(), minlength=256)
    tags = {key: emb.tags[key] for key in ("MODEL", "WEIGHTS_SHA256", "CODEBOOK", "CODEBOOK_SHA256", "K",
                                           "GSD", "PATCH_PX", "SOURCE") if key in emb.tags}
    tags.update(CLASSIFIER=model.kind, EMBEDDINGS=Path(emb.path).name)
    area = cell_area(emb.ds, emb.path)
    with AtomicCOG(params.output, emb.ds, gdal.GDT_Byte, NODATA, resampling="MODE") as out:
        _write_windows(out, values)
        extra = []
        if params.confidence:
            for what, path, score, ramp in (("confidence", confidence_path(params.output), best, _CONFIDENCE),
                                            ("margin", margin_path(params.output), best - second, _MARGIN)):
                extra.append(_percent_map(path, emb, valid, score, ramp, {**tags, "COREDINO_SCORE": what}))
        output, csv_path, rows = publish_named(out, [UNCLASSIFIED] + model.classes, counts, area, tags)
    confidence, margin = (extra + [None, None])[:2]
    return LearnResult(output, csv_path, confidence, margin, None, model.kind, rows)


def _write_windows(out: AtomicCOG, values: np.ndarray) -> None:
    for x, y, w, h in windows(values.shape[1], values.shape[0]):
        out.write(x, y, values[y:y + h, x:x + w])


def _percent_map(path: str, emb: EmbeddingFile, valid: np.ndarray, score: np.ndarray, ramp, tags) -> str:
    values = np.full(valid.shape, NODATA, np.uint8)
    values[valid] = np.clip(np.rint(score * 100), 0, 100).astype(np.uint8)
    with AtomicCOG(path, emb.ds, gdal.GDT_Byte, NODATA, resampling="AVERAGE") as out:
        _write_windows(out, values)
        out.sidecar(style_path(path)).write_text(ramp_qml(ramp), encoding="utf-8")
        return out.publish(tags)
