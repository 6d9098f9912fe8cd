"""Parameter dataclasses: what every door sends the engine, one per job kind, with their rules.

``validate()`` checks what can be checked without opening a file; the engine calls it through
:func:`coredino.runners.run`, so a bad value gets the same one-line error from every door.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from .errors import UserError

MODEL_FAMILIES = ("core-dino", "dinov2", "dinov2-processor")
CORE_DINO_SCALES = ("n", "s", "m", "l", "x")
CORE_DINO_LAYERS = (16, 19, 22)  # YOLO11 layers with strides 8, 16, 32
DEFAULT_LAYER = 19
METRICS = ("cosine", "l2")
RUNTIMES = ("auto", "torch", "onnx")  # encoder runtimes (auto: ONNX Runtime on a CPU, torch on a GPU)
PRECISIONS = ("fp32", "bf16", "int8")  # fp32 exact; bf16 runs on torch, int8 on ONNX Runtime
_EXAMPLES = "core-dino:x, core-dino:n@16, dinov2:facebook/dinov2-with-registers-base"


@dataclass(frozen=True)
class ModelSpec:
    """Which encoder to build.

    family:  ``core-dino``, ``dinov2`` or ``dinov2-processor`` (DINOv2 behind the Hugging Face
             processor's resize and crop: the geocentroids notebook's geometry).
    variant: core-dino: YOLO11 scale (n, s, m, l, x); dinov2(-processor): HF hub id or local folder.
    weights: core-dino: local path, http(s) URL, ``hf://owner/repo/file`` or ``random`` (seeded
             random init); dinov2: unused (the variant names the weights).
    layer:   core-dino feature layer (16, 19 or 22: strides 8, 16, 32); dinov2: None.
    """

    family: str = "core-dino"
    variant: str = "n"
    weights: str = "random"
    layer: Optional[int] = DEFAULT_LAYER

    @property
    def id(self) -> str:
        """``core-dino:n@16`` / ``dinov2:facebook/dinov2-base``: how outputs and codebooks name it."""
        return model_id(self.family, self.variant, self.layer)

    def validate(self) -> None:
        if self.family not in MODEL_FAMILIES:
            raise UserError(f"unknown model family {self.family!r}; known: {', '.join(MODEL_FAMILIES)} "
                            f"(e.g. {_EXAMPLES})")
        if not self.variant:
            raise UserError(f"model {self.id!r} names no variant; use family:variant, e.g. {_EXAMPLES}")
        if self.family == "core-dino":
            if self.variant not in CORE_DINO_SCALES:
                raise UserError(f"unknown YOLO11 scale {self.variant!r}; use one of "
                                f"{', '.join(CORE_DINO_SCALES)} (e.g. core-dino:n)")
            if self.layer not in CORE_DINO_LAYERS:
                raise UserError(f"core-dino layer {self.layer} is not a feature layer; use one of "
                                f"{', '.join(map(str, CORE_DINO_LAYERS))}")


def model_id(family: str, variant: str, layer: Optional[int]) -> str:
    return f"{family}:{variant}" + (f"@{layer}" if layer is not None else "")


def parse_model(text: str, weights: str = "random", layer: Optional[int] = None) -> ModelSpec:
    """``core-dino:x``, ``core-dino:n@16``, ``dinov2:facebook/dinov2-base``, ``dinov2:/a/folder``.

    ``layer`` applies to core-dino when the text names none (default 19); an ``@layer`` in the
    text wins. The result is validated.
    """
    family, _, variant = text.strip().partition(":")
    family, variant = family.strip().lower(), variant.strip()
    if family == "core-dino":
        variant, at, layer_text = variant.partition("@")
        if at:
            try:
                layer = int(layer_text)
            except ValueError:
                raise UserError(f"model {text!r}: {layer_text!r} is not a layer number; use e.g. "
                                f"core-dino:n@16") from None
        layer = DEFAULT_LAYER if layer is None else layer
    else:
        layer = None
    spec = ModelSpec(family, variant, weights or "random", layer)
    spec.validate()
    return spec


def _finite_positive(value: Optional[float], what: str) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise UserError(f"{what} must be a positive number, not {value!r}")


def _at_least(value: Optional[int], low: int, what: str) -> None:
    if value is not None and value < low:
        raise UserError(f"{what} must be at least {low}, not {value}")


def _check_tiling(gsd: float, tile: Optional[int], border: Optional[int]) -> None:
    """A positive GSD, and a tile (patches) with a core inside its border (None: the default)."""
    _finite_positive(gsd, "--gsd")
    _at_least(border, 0, "--border")
    if tile is not None and tile <= 2 * (border or 0):
        raise UserError(f"--tile {tile} leaves no core inside a border of {border} "
                        f"patches; use a tile larger than twice the border")


@dataclass
class ClassifyOptions:
    """How to classify; shared by single-file and batch runs.

    codebook:   codebook file (default: the bundled one). It names the encoder and weights.
    weights:    use these weights instead of the ones the codebook names (same hash required).
    device:     ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda``, ``cuda:1``...
    batch_size: tiles per forward pass; None: 8 on the CPU, 64 on a GPU.
    bands:      1-based band numbers used as R, G, B (one number: panchromatic).
    rgb:        also write ``<output stem>_rgb.tif``, an RGBA rendering of the classes.
    compile:    run the encoder through ``torch.compile`` (static batch shape; the first batch
                waits for the compilation, so it pays off on long GPU runs only).
    embeddings: also write ``<output stem>_embeddings.tif`` (same grid, PCA-reduced patch
                embeddings) for exploring: similar places, without re-running the encoder.
    level:      write the map at this many groups of the codebook's cluster tree instead of its
                clusters (see LevelsParams); None: clusters.
    runtime:    ``auto`` (ONNX Runtime on the CPU when installed, torch on a GPU), ``torch`` or
                ``onnx`` (the encoder exported once, checked against torch, cached).
    precision:  ``fp32`` (exact, the default), ``bf16`` (torch) or ``int8`` (ONNX Runtime); reduced
                precision reports its id agreement with fp32 in the result's warnings.
    blend:      overlap tiles and mix their features with tapered weights (no tile seams; up to
                1.44x the encoder work); False cuts each tile at its core (faster, visible seams).
    max_tiles:  refuse a raster needing more tiles than this (the up-front estimate says how
                many and how long); 0 or None: no limit.
    """

    codebook: Optional[str] = None
    weights: Optional[str] = None
    device: str = "auto"
    batch_size: Optional[int] = None
    bands: Optional[tuple[int, ...]] = None
    rgb: bool = False
    compile: bool = False
    embeddings: bool = False
    level: Optional[int] = None
    runtime: str = "auto"
    precision: str = "fp32"
    blend: bool = True
    max_tiles: Optional[int] = 250_000

    def validate(self) -> None:
        """The level, runtime, precision and tile limit (bands wait for the raster, the batch size for the device)."""
        _at_least(self.level, 1, "--level")
        if self.runtime not in RUNTIMES:
            raise UserError(f"unknown runtime {self.runtime!r}; use one of {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if self.runtime == "onnx" and self.precision == "bf16":
            raise UserError("precision bf16 runs on the torch runtime (ONNX Runtime has no fast bf16 "
                            "on CPUs); pass --runtime torch or auto, or --precision int8")
        if self.runtime == "torch" and self.precision == "int8":
            raise UserError("precision int8 runs on ONNX Runtime; pass --runtime onnx or auto")
        if self.compile and self.runtime == "onnx":
            raise UserError("--compile applies to the torch runtime; pass --runtime torch or drop --compile")
        if self.max_tiles is not None and (isinstance(self.max_tiles, bool) or self.max_tiles < 0):
            raise UserError(f"max_tiles {self.max_tiles!r} is invalid; give a number of tiles, "
                            f"or 0 for no limit")


@dataclass
class ClassifyParams:
    """Classify ``input`` (a raster GDAL reads) into a COG of cluster ids at ``output``.

    overwrite: replace an existing ``output`` that is not a coredino class map (a file the job
               reads is never replaced; a class map is replaced without it: a re-run).
    """

    input: str
    output: str
    options: ClassifyOptions = field(default_factory=ClassifyOptions)
    overwrite: bool = False

    def validate(self) -> None:
        self.options.validate()


EXECUTORS = ("process", "ray")  # how a batch runs: in this process, or on Ray actors


@dataclass
class BatchParams:
    """Classify every raster under ``input_dir`` matching ``pattern`` into ``output_dir``.

    Outputs mirror the input folders as ``<name>_classes.tif``; outputs already made with the
    same codebook are skipped unless ``overwrite``, so an interrupted batch resumes.

    input_dir:   a folder, an object-store prefix (``/vsis3/bucket/orthos``) or a STAC item,
                 collection or catalog (``.json`` path or URL; each item's RGB/visual asset).
    output_dir:  a folder or an object-store prefix.
    executor:    ``process`` (this process, one file after another) or ``ray`` (Ray actors,
                 each holding one encoder, pull files and row bands of big rasters from a queue).
    ray_address: with ``ray``: None starts a local Ray runtime (or uses the one this process
                 already started); ``auto`` or ``ray://host:port`` joins a cluster.
    workers:     Ray actors; None: one per GPU, else one per 4 CPUs.
    band_rows:   tile rows per work item when a raster is split across actors; None: split the
                 rasters that are much larger than an actor's share, 0: never split.
    """

    input_dir: str
    output_dir: str
    pattern: str = "**/*.tif"
    overwrite: bool = False
    options: ClassifyOptions = field(default_factory=ClassifyOptions)
    executor: str = "process"
    ray_address: Optional[str] = None
    workers: Optional[int] = None
    band_rows: Optional[int] = None

    def validate(self) -> None:
        self.options.validate()
        if self.executor not in EXECUTORS:
            raise UserError(f"unknown executor {self.executor!r}; use {' or '.join(EXECUTORS)}")
        if self.workers is not None and self.workers < 1:
            raise UserError("--workers must be at least 1")
        if self.band_rows is not None and self.band_rows < 0:
            raise UserError("--band-rows must be 0 (never split) or more")
        if self.executor != "ray" and (self.workers is not None or self.band_rows is not None
                                       or self.ray_address is not None):
            raise UserError("--workers, --band-rows and a Ray address need --ray (executor ray)")


@dataclass
class FitParams:
    """Fit a codebook on features sampled from ``inputs`` (raster files).

    gsd, tile and border (in patches) become part of the codebook's feature recipe.
    max_features bounds memory: a uniform reservoir sample of that many patch features.
    """

    inputs: list[str]
    output: str
    model: ModelSpec = field(default_factory=ModelSpec)
    gsd: float = 0.25
    tile: int = 24
    border: int = 3
    k: int = 6000
    metric: str = "cosine"
    max_features: int = 1_000_000
    niter: int = 20
    seed: int = 0
    device: str = "auto"
    batch_size: Optional[int] = None  # None: 8 on the CPU, 64 on a GPU
    bands: Optional[tuple[int, ...]] = None

    def validate(self) -> None:
        self.model.validate()
        if self.metric not in METRICS:
            raise UserError(f"unknown metric {self.metric!r}; use {' or '.join(METRICS)}")
        if not self.inputs:
            raise UserError("give at least one raster to fit the codebook on")
        for value, what in ((self.k, "--k"), (self.niter, "--niter"), (self.max_features, "--max-features")):
            _at_least(value, 1, what)
        _check_tiling(self.gsd, self.tile, self.border)


@dataclass
class SimilarParams:
    """Cosine similarity of every cell to places clicked on a classification (coredino.explore).

    embeddings: ``<classes>_embeddings.tif``, or the classification it was written beside.
    positives:  (x, y) points in the embeddings' CRS on places like the ones looked for.
    negatives:  (x, y) points on places unlike them (optional).
    output:     similarity COG (Float32 in [-1, 1], nodata -2) with a .qml style beside it.
    overwrite:  replace an existing ``output`` that is not a coredino similarity map.
    """

    embeddings: str
    output: str
    positives: list[tuple[float, float]] = field(default_factory=list)
    negatives: list[tuple[float, float]] = field(default_factory=list)
    overwrite: bool = False

    def validate(self) -> None:
        if not self.positives:
            raise UserError("give at least one positive point (a place like the ones you look for)")
        for what, points in (("positive", self.positives), ("negative", self.negatives)):
            for point in points:
                if len(point) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in point):
                    raise UserError(f"{what} point {list(point)!r}: give two finite numbers x,y in the "
                                    f"raster's CRS")


@dataclass
class ReclassifyParams:
    """Named classes from cluster ids: a Byte class map (0 unclassified, 1.. the classes in order).

    input:        a classification COG written by classify.
    classes:      class name -> cluster ids.
    classes_file: a ``<name>.classes.json`` (see :mod:`coredino_contract.classes`) read instead
                  when ``classes`` is empty.
    output:       class map COG; ``<output stem>_areas.csv`` and a .qml style are written beside it.
    overwrite:    replace an existing ``output`` that is not a coredino named-class map.
    """

    input: str
    output: str
    classes: dict[str, list[int]] = field(default_factory=dict)
    classes_file: Optional[str] = None
    overwrite: bool = False

    def validate(self) -> None:
        if bool(self.classes) == bool(self.classes_file):
            raise UserError("give the classes with --class NAME=ID,... or --classes-file FILE (one of them)")


@dataclass
class PolygonizeParams:
    """One class of a class map (or one cluster of a classification) as polygons in a GeoPackage.

    class_name: a class of a reclassified map; or value: the pixel value (cluster id or class value).
    overwrite:  replace an existing ``output`` that is not a GeoPackage coredino wrote.
    """

    input: str
    output: str
    class_name: Optional[str] = None
    value: Optional[int] = None
    overwrite: bool = False

    def validate(self) -> None:
        if (self.class_name is None) == (self.value is None):
            raise UserError("name the polygons' class with --class NAME or --value N (one of them)")


CLUSTER_K = (2, 255)  # Byte ids; 8-64 keep a legend readable


@dataclass
class ClusterParams:
    """Cluster one raster on its own features: fit a codebook on it, then classify it with it.

    The codebook is saved beside the output (:func:`coredino_contract.naming.codebook_path`) so
    other rasters can be classified consistently with it. model None: the bundled default model.
    tile and border (in patches) default to the model family's when None.
    """

    input: str
    output: str
    model: Optional[ModelSpec] = None
    k: int = 24
    gsd: float = 0.25
    tile: Optional[int] = None
    border: Optional[int] = None
    max_features: int = 200_000
    niter: int = 20
    seed: int = 0
    device: str = "auto"
    batch_size: Optional[int] = None  # None: 8 on the CPU, 64 on a GPU
    bands: Optional[tuple[int, ...]] = None
    rgb: bool = False

    def validate(self) -> None:
        if self.model is not None:
            self.model.validate()
        low, high = CLUSTER_K
        if not low <= self.k <= high:
            raise UserError(f"--k {self.k}: give {low} to {high} clusters (8-64 keep the legend readable)")
        _at_least(self.niter, 1, "--niter")
        _at_least(self.max_features, self.k, "--max-features")
        _check_tiling(self.gsd, self.tile, self.border)


CLASSIFIERS = ("logistic", "knn")


def standard_levels(k: int) -> list[int]:
    """The detail levels of a codebook of ``k`` clusters: 2, 4, 8, ... below k (the views
    ``levels`` writes by default), then k itself (full detail)."""
    levels, n = [], 2
    while n < k:
        levels.append(n)
        n *= 2
    return levels + [k]


@dataclass
class LevelsParams:
    """A classification at coarser levels: groups of clusters from the codebook's merge tree.

    input:    a cluster map written by classify (without ``level``).
    levels:   numbers of groups (default: 2, 4, 8, ... below the codebook's k).
    output:   with one level, write that level as a COG (with .qml and _areas.csv) instead of the
              VRT views beside the input (``naming.level_view_path``).
    codebook: the codebook that made the map (default: the bundled one, or the file the map names
              beside it); its hash must match the map's.
    """

    input: str
    levels: list[int] = field(default_factory=list)
    output: Optional[str] = None
    codebook: Optional[str] = None

    def validate(self) -> None:
        for level in self.levels:
            _at_least(level, 1, "--level")
        if self.output is not None and len(set(self.levels)) != 1:
            raise UserError("give exactly one --level to write a coarse map (-o); without -o every "
                            "level is written as a view")


@dataclass
class SimilarExamples:
    """Cells of a similarity map (``similar``) at or above ``threshold`` as examples of ``name``."""

    name: str
    path: str
    threshold: float


@dataclass
class LearnParams:
    """Train (or apply) a classifier of a classification's kept embeddings: a named class map.

    input:          a classification with ``_embeddings.tif`` beside it (or the embeddings file).
    output:         the named class map COG (``_areas.csv``, ``_confidence.tif``, ``_margin.tif``
                    and styles beside it).
    points:         class name -> clicked (x, y) points in the map's CRS.
    examples:       a vector file (GeoPackage, GeoJSON, any OGR format; points or polygons, any
                    CRS) whose ``class_field`` names the class.
    similar:        similarity maps above a threshold as examples.
    classifier:     ``logistic`` (default) or ``knn``.
    model:          a saved ``.classifier.json`` to apply instead of training (no examples then).
    save_model:     save the trained classifier (plain JSON) here.
    min_confidence: cells whose winning probability is below this stay 0 (unclassified).
    confidence:     also write the confidence and margin maps.
    """

    input: str
    output: str
    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    examples: Optional[str] = None
    class_field: Optional[str] = None
    similar: list[SimilarExamples] = field(default_factory=list)
    classifier: str = "logistic"
    model: Optional[str] = None
    save_model: Optional[str] = None
    min_confidence: float = 0.0
    confidence: bool = True

    def validate(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise UserError(f"classifier {self.classifier!r}: choose one of {', '.join(CLASSIFIERS)}")
        if not (isinstance(self.min_confidence, (int, float)) and 0 <= self.min_confidence <= 1):
            raise UserError(f"--min-confidence must be between 0 and 1, not {self.min_confidence!r}")
        has_examples = bool(self.points or self.examples or self.similar)
        if self.model and has_examples:
            raise UserError("give either examples to train on or a saved --model to apply, not both")
        if not self.model and not has_examples:
            raise UserError("give examples (--examples FILE --field NAME, --point NAME=X,Y or --similar) "
                            "or a saved --model")
        if self.examples and not self.class_field:
            raise UserError(f"{self.examples}: give the field that names the class (--field)")
        for name, points in self.points.items():
            for point in points:
                if len(point) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in point):
                    raise UserError(f"class {name!r}: point {list(point)!r}: give two finite numbers x,y "
                                    f"in the raster's CRS")
