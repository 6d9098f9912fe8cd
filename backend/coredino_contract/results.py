"""Result dataclasses: what every job kind returns, the same from the engine, the CLI and the service."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

#: the similarity histogram: bin i counts cells in [-1 + i / 100, -1 + (i + 1) / 100)
SIMILARITY_BINS = 200
SIMILARITY_RANGE = (-1.0, 1.0)


@dataclass
class ClassifyResult:
    output: str
    classes: dict[int, int]  # cluster id -> number of cells
    tiles: int
    seconds: float
    device: str
    rgb_output: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    embeddings: Optional[str] = None  # <output stem>_embeddings.tif when options.embeddings
    runtime: str = ""  # what ran the encoder, e.g. "onnxruntime 1.32.0 fp32, 2 threads (passive)"


@dataclass
class BatchResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # input -> one-line reason
    retried: dict[str, str] = field(default_factory=dict)  # work item -> why it was redone (ray)
    summary: Optional[str] = None  # the run's summary JSON (executor "ray")


@dataclass
class FitResult:
    """What a fit-codebook job returns: the codebook file and its size."""

    output: str
    k: int
    dim: int
    metric: str = "cosine"
    n_features: int = 0


@dataclass
class ClusterResult:
    """What a cluster job returns: the class map, the codebook fitted for it (classify other
    rasters with it), and the clusters present."""

    output: str
    codebook: str
    k: int
    classes: dict[int, int] = field(default_factory=dict)  # cluster id -> number of cells
    seconds: float = 0.0
    rgb_output: Optional[str] = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class SimilarResult:
    """What a similar job returns. ``histogram[i]`` counts cells with similarity in bin i."""

    output: str
    embeddings: str
    cells: int  # valid cells
    cell_area_m2: float
    min: float
    max: float
    histogram: list[int] = field(default_factory=list)
    histogram_range: tuple[float, float] = SIMILARITY_RANGE
    seconds: float = 0.0

    def cells_above(self, threshold: float) -> int:
        """Cells whose similarity is at least ``threshold`` (at bin resolution, 0.01)."""
        first = min(max(math.ceil((threshold + 1.0) * SIMILARITY_BINS / 2 - 1e-9), 0), SIMILARITY_BINS)
        return int(sum(self.histogram[first:]))

    def area_above(self, threshold: float) -> float:
        """m² of the cells whose similarity is at least ``threshold``."""
        return self.cells_above(threshold) * self.cell_area_m2

    def share_above(self, threshold: float) -> float:
        """Fraction of the valid cells whose similarity is at least ``threshold``."""
        return self.cells_above(threshold) / max(1, sum(self.histogram))

    def threshold_for_share(self, share: float = 0.1) -> float:
        """The highest bin edge leaving at least ``share`` of the cells at or above it."""
        total, running = sum(self.histogram), 0
        for i in range(len(self.histogram) - 1, -1, -1):
            running += self.histogram[i]
            if running >= share * total:
                return (i - SIMILARITY_BINS // 2) / (SIMILARITY_BINS / 2)
        return 0.5


@dataclass
class ClassArea:
    value: int
    name: str
    cells: int
    area_m2: float
    area_ha: float


@dataclass
class ReclassifyResult:
    output: str
    csv: str
    classes: list[ClassArea] = field(default_factory=list)  # unclassified first, then by value
    seconds: float = 0.0
    mapping: dict[str, list[int]] = field(default_factory=dict)  # class name -> cluster ids
    codebook_sha256: Optional[str] = None  # of the classification's codebook


@dataclass
class PolygonizeResult:
    output: str
    layer: str
    value: int
    class_name: str
    features: int
    area_m2: float
    area_ha: float
    seconds: float = 0.0


@dataclass
class GroupArea:
    group: int
    color: str  # #rrggbb
    clusters: Optional[int]  # clusters of the map in this group (None: not known)
    cells: int
    area_m2: float


@dataclass
class LevelView:
    level: int
    path: str  # the .vrt view, or the COG when LevelsParams.output is given
    qml: str
    groups: list[GroupArea] = field(default_factory=list)  # the groups present, largest first
    csv: Optional[str] = None  # areas CSV of a coarse COG


@dataclass
class LevelsResult:
    input: str
    views: list[LevelView] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ClassScore:
    name: str
    examples: int  # points, polygons or similarity cells
    cells: int  # training cells
    accuracy: Optional[float]  # cross-validated recall; None without cross-validation


@dataclass
class LearnResult:
    output: str
    csv: str
    confidence: Optional[str]
    margin: Optional[str]
    model: Optional[str]
    classifier: str
    classes: list[ClassArea] = field(default_factory=list)
    scores: list[ClassScore] = field(default_factory=list)
    accuracy: Optional[float] = None  # cross-validated overall accuracy
    confusion: Optional[list[list[int]]] = None  # true class (rows) x predicted (columns)
    skipped: int = 0  # examples outside the map or on nodata
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
