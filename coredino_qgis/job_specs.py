"""Job parameters: the contract between the plugin's UIs (dock, Processing) and the backend.

Each dataclass mirrors a parameter dataclass of the engine (``coredino.params``) and turns into
the JSON job spec of docs/protocol.md with :meth:`spec`. Paths are paths on the backend's machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass
class ClassifyOptions:
    codebook: Optional[str] = None  # None: the backend's default codebook
    device: str = "auto"
    batch_size: Optional[int] = None  # None: the backend picks (8 on a CPU, 64 on a GPU)
    bands: Optional[list[int]] = None
    rgb: bool = False
    embeddings: bool = False  # also write <output stem>_embeddings.tif (for Find similar)


@dataclass
class ClassifyJob:
    input: str
    output: str
    options: ClassifyOptions = field(default_factory=ClassifyOptions)

    def spec(self) -> dict:
        return {"kind": "classify", "params": asdict(self)}


@dataclass
class BatchJob:
    input_dir: str
    output_dir: str
    pattern: str = "**/*.tif"
    overwrite: bool = False
    options: ClassifyOptions = field(default_factory=ClassifyOptions)

    def spec(self) -> dict:
        return {"kind": "batch", "params": asdict(self)}


@dataclass
class FitCodebookJob:
    inputs: list[str]
    output: str
    model: str = "core-dino:n"  # core-dino:<n|s|m|l|x>[@layer] or dinov2:<hub id or folder>
    weights: str = "random"
    k: int = 6000
    gsd: Optional[float] = None  # None: the engine's default

    def spec(self) -> dict:
        family, _, variant = self.model.partition(":")
        layer = None
        if family == "core-dino":
            variant, _, layer_text = variant.partition("@")
            layer = int(layer_text) if layer_text else 19
        params = {"inputs": list(self.inputs), "output": self.output, "k": int(self.k),
                  "model": {"family": family, "variant": variant or "n", "weights": self.weights or "random",
                            "layer": layer}}
        if self.gsd:
            params["gsd"] = float(self.gsd)
        return {"kind": "fit-codebook", "params": params}


@dataclass
class SimilarJob:
    embeddings: str  # <classes>_embeddings.tif or the classification beside it
    output: str
    positives: list = field(default_factory=list)  # [x, y] in the classification's CRS
    negatives: list = field(default_factory=list)

    def spec(self) -> dict:
        return {"kind": "similar", "params": {
            "embeddings": self.embeddings, "output": self.output,
            "positives": [[float(x), float(y)] for x, y in self.positives],
            "negatives": [[float(x), float(y)] for x, y in self.negatives]}}


@dataclass
class ReclassifyJob:
    input: str  # a classification COG
    output: str
    classes: dict = field(default_factory=dict)  # class name -> cluster ids
    classes_file: Optional[str] = None

    def spec(self) -> dict:
        classes = {str(name): [int(i) for i in ids] for name, ids in self.classes.items()}
        return {"kind": "reclassify", "params": {"input": self.input, "output": self.output,
                                                 "classes": classes, "classes_file": self.classes_file}}


@dataclass
class PolygonizeJob:
    input: str  # a class map (or a classification)
    output: str  # .gpkg
    class_name: Optional[str] = None
    value: Optional[int] = None

    def spec(self) -> dict:
        return {"kind": "polygonize", "params": asdict(self)}


FINAL_STATES = ("done", "failed", "cancelled")
