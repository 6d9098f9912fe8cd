"""Parameter dataclasses: the only contract between every door (CLI, service, plugin) and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .encoders.base import ModelSpec


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
    """

    codebook: Optional[str] = None
    weights: Optional[str] = None
    device: str = "auto"
    batch_size: Optional[int] = None
    bands: Optional[tuple[int, ...]] = None
    rgb: bool = False
    compile: bool = False
    embeddings: bool = False


@dataclass
class ClassifyParams:
    input: str
    output: str
    options: ClassifyOptions = field(default_factory=ClassifyOptions)


@dataclass
class BatchParams:
    """Classify every raster under ``input_dir`` matching ``pattern`` into ``output_dir``.

    Outputs mirror the input folders as ``<name>_classes.tif``; outputs already made with the
    same codebook are skipped unless ``overwrite``, so an interrupted batch resumes.
    """

    input_dir: str
    output_dir: str
    pattern: str = "**/*.tif"
    overwrite: bool = False
    options: ClassifyOptions = field(default_factory=ClassifyOptions)


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


@dataclass
class SimilarParams:
    """Cosine similarity of every cell to places clicked on a classification (coredino.explore).

    embeddings: ``<classes>_embeddings.tif``, or the classification it was written beside.
    positives:  (x, y) points in the embeddings' CRS on places like the ones looked for.
    negatives:  (x, y) points on places unlike them (optional).
    output:     similarity COG (Float32 in [-1, 1], nodata -2) with a .qml style beside it.
    """

    embeddings: str
    output: str
    positives: list[tuple[float, float]] = field(default_factory=list)
    negatives: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class ReclassifyParams:
    """Named classes from cluster ids: a Byte class map (0 unclassified, 1.. the classes in order).

    input:        a classification COG written by classify.
    classes:      class name -> cluster ids.
    classes_file: a ``<name>.classes.json`` (``{"classes": {...}, "codebook_sha256": ...}``) read
                  instead when ``classes`` is empty.
    output:       class map COG; ``<output stem>_areas.csv`` and a .qml style are written beside it.
    """

    input: str
    output: str
    classes: dict[str, list[int]] = field(default_factory=dict)
    classes_file: Optional[str] = None


@dataclass
class PolygonizeParams:
    """One class of a class map (or one cluster of a classification) as polygons in a GeoPackage.

    class_name: a class of a reclassified map; or value: the pixel value (cluster id or class value).
    """

    input: str
    output: str
    class_name: Optional[str] = None
    value: Optional[int] = None
