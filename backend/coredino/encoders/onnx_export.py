"""The ONNX export of an encoder, cached once per (model, weights sha256, layer, tile size, precision).

The file lives in ``<coredino cache>/onnx/`` with a JSON sidecar naming what it was exported
from, the sha256 of the ``.onnx`` bytes and the numerical check it passed. A cache entry whose
sidecar is missing, unreadable, for another key or whose bytes have another hash is rebuilt,
never trusted; so is one that ONNX Runtime cannot load or that no longer matches torch.

One process at a time exports a key (:func:`export_lock`, the advisory lock of
:func:`coredino.atomic.output_lock`): the others (Ray batch workers, two commands started
together) wait for it and then load what it published; if it published nothing (its check
failed, or it was killed, which releases the lock), the next one exports on its own. On Windows
nothing is locked: each process exports for itself, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from coredino_contract.protocol import cache_dir

from ..atomic import atomic_open, output_lock, temp_name
from ..progress import Progress
from .base import Encoder
from .weights import sha256_file

EXPORT_RECIPE = 1  # bump when the export changes: older cache entries are then rebuilt
OPSET = 18
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportKey:
    family: str
    variant: str
    layer: Optional[int]
    weights_sha256: str
    side: int  # tile side in pixels (the exported input is (batch, 3, side, side))
    precision: str  # fp32 or int8

    def as_dict(self) -> dict:
        return {**self.__dict__, "recipe": EXPORT_RECIPE, "opset": OPSET, "torch": torch.__version__}

    @property
    def path(self) -> Path:
        """``<cache>/onnx/<family>-<variant>[@layer]-<sha>-<side>px-<precision>-<key hash>.onnx``."""
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()
        variant = re.sub(r"[^A-Za-z0-9.-]+", "_", self.variant.strip("/"))[-40:]
        layer = f"@{self.layer}" if self.layer is not None else ""
        return (cache_dir() / "onnx" / f"{self.family}-{variant}{layer}-{self.weights_sha256[:12]}-"
                                         f"{self.side}px-{self.precision}-{digest[:8]}.onnx")


def export_key(encoder: Encoder, side: int, precision: str) -> ExportKey:
    return ExportKey(encoder.family, encoder.variant, encoder.layer, encoder.weights_sha256, side,
                     precision)


def sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def cached_entry(key: ExportKey) -> Optional[dict]:
    """The sidecar of a cache entry whose key and bytes are what they claim, else None."""
    path = key.path
    try:
        meta = json.loads(sidecar(path).read_text())
        if meta.get("key") == key.as_dict() and meta.get("onnx_sha256") == sha256_file(path):
            return meta
    except (OSError, ValueError, AttributeError):
        pass
    return None


@contextmanager
def export_lock(key: ExportKey, progress: Optional[Progress] = None) -> Iterator[None]:
    """Be the only process exporting ``key``; while another one is, wait for it, saying so in the
    log and in ``progress`` (whose cancellation stops the wait). Removes the temporaries of an
    exporter that was killed."""
    waited = False

    def wait(holder: str) -> None:
        nonlocal waited
        message = f"waiting for another process's export of {key.path.name} (pid {holder})"
        if not waited:
            log.info("%s", message)
            waited = True
        if progress is not None:
            progress.update(0.0, message)

    with output_lock(key.path, [sidecar(key.path)], wait):
        yield


def export_onnx(encoder: Encoder, key: ExportKey, fp32_path: Optional[Path] = None) -> Path:
    """Export ``encoder`` (int8: quantise the fp32 file ``fp32_path``) to a temporary file beside
    ``key.path``; :func:`publish` moves it into the cache once it passed its check."""
    path = key.path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path, ".tmp.onnx")  # a killed exporter's is removed by the next export_lock
    try:
        if key.precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic
            quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
        else:
            _export_fp32(encoder, key.side, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish(key: ExportKey, tmp: Path, check: dict) -> dict:
    """Move a checked export into the cache and write its sidecar (with ``check``'s figures).

    The old sidecar goes first and the new one comes last, so a sidecar is only ever beside the
    file it describes (its sha256 is checked anyway: a reader never trusts a mismatched pair).
    """
    sidecar(key.path).unlink(missing_ok=True)
    os.replace(tmp, key.path)
    meta = {"key": key.as_dict(), "onnx_sha256": sha256_file(key.path), **check}
    with atomic_open(sidecar(key.path)) as f:
        f.write(json.dumps(meta, indent=1).encode())
    return meta


def _export_fp32(encoder: Encoder, side: int, path: Path) -> None:
    """torch.onnx's dynamo exporter (the default in torch 2.9+), one self-contained file, any batch."""
    example = torch.zeros(2, 3, side, side, device=next(encoder.parameters()).device)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(encoder, (example,), dynamo=True, input_names=["pixels"],
                                    output_names=["features"], dynamic_shapes=({0: batch},),
                                    opset_version=OPSET, external_data=False, verbose=False,
                                    report=False)
    program.save(str(path), external_data=False)


def cosine_and_ids(reference: torch.Tensor, other: torch.Tensor, assign_ids) -> tuple[float, float]:
    """Lowest per-patch cosine similarity of two (n, dim, h, w) feature maps, and the fraction of
    identical nearest-centroid ids (nan without ``assign_ids``)."""
    a = reference.float().permute(0, 2, 3, 1).reshape(-1, reference.shape[1])
    b = other.float().permute(0, 2, 3, 1).reshape(-1, other.shape[1])
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1)
    same = float("nan")
    if assign_ids is not None:
        same = float((assign_ids(a) == assign_ids(b)).double().mean())
    return float(cos.min()), same


def real_tiles(path: Path, side: int, count: int = 8) -> torch.Tensor:
    """Up to ``count`` tiles (n, 3, side, side) in [0, 1] cut from an 8-bit RGB raster, row by row
    (zero-padded when the raster is smaller than a tile)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    width, height = ds.RasterXSize, ds.RasterYSize
    tiles = []
    for y in range(0, max(1, height - side + 1), side):
        for x in range(0, max(1, width - side + 1), side):
            w, h = min(side, width - x), min(side, height - y)
            tile = np.zeros((3, side, side), np.float32)
            tile[:, :h, :w] = ds.ReadAsArray(x, y, w, h, band_list=[1, 2, 3]) / 255.0
            tiles.append(tile)
            if len(tiles) == count:
                return torch.from_numpy(np.stack(tiles))
    ds = None
    return torch.from_numpy(np.stack(tiles))
