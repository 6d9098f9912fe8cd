"""A re-implementation of the geocentroids notebook (inference.ipynb of
aliaksandr960/dinov2_geocentroids_southamerica, MIT) for parity tests: same tile origins, blank-tile
rule, Hugging Face processor (slow, PIL), batch 1, float16 patch tokens, one faiss IndexFlatIP
search per patch. Reads with GDAL instead of rasterio (boundless, filled with 0 like the notebook).
Also the tiny random DINOv2-with-registers model folder and the processor config the tests use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TILE, FEATURES, BORDER = 224, 16, 3
PX = TILE / FEATURES  # what the notebook takes a patch to be: 14 px
STRIDE = TILE - 2 * BORDER * PX  # 140 px
BLANK_LIMIT = 768  # of 1024 7x7 blocks

# facebook/dinov2-with-registers-base's preprocessor_config.json
PROCESSOR_CONFIG = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
    "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "BitImageProcessor",
    "image_std": [0.229, 0.224, 0.225], "resample": 3, "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 256},
}


def save_random_dinov2_reg(folder: Path, layers: int = 1, seed: int = 0) -> Path:
    """A DINOv2-with-registers of the base model's width (768) with random weights, in HF format."""
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    config = Dinov2WithRegistersConfig(hidden_size=768, num_hidden_layers=layers,
                                       num_attention_heads=12, mlp_ratio=1, patch_size=14,
                                       image_size=518, num_register_tokens=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        Dinov2WithRegistersModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSOR_CONFIG, indent=2))
    return folder


def origins(size: int) -> list[int]:
    """The notebook's tile origins along one axis."""
    starts, h = [], 0.0
    while h + TILE <= size:
        starts.append(h)
        h += STRIDE
    b = ((h + TILE) - size) // 2
    return [int(s + b) for s in starts]


def _blank(sample: np.ndarray) -> bool:
    t = torch.from_numpy(np.mean(sample, axis=2))
    blocks = torch.nn.functional.pixel_unshuffle(t.reshape(1, 1, TILE, TILE), 7)
    flat = (blocks.max(dim=1).values - blocks.min(dim=1).values) < 2
    return int(flat.sum()) > BLANK_LIMIT


def _read_boundless(ds, x: int, y: int) -> np.ndarray:
    """(224, 224, 3) uint8; outside the raster 0."""
    out = np.zeros((TILE, TILE, 3), np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + TILE, ds.RasterXSize), min(y + TILE, ds.RasterYSize)
    if x1 > x0 and y1 > y0:
        out[y0 - y:y1 - y, x0 - x:x1 - x] = ds.ReadAsArray(x0, y0, x1 - x0, y1 - y0)[:3].transpose(1, 2, 0)
    return out


@dataclass
class NotebookTile:
    y: int  # tile origin (raster px)
    x: int
    ids: np.ndarray  # (16, 16) centroid ids of every patch


def run_notebook(raster: str, model_folder: Path, centroids: np.ndarray) -> list[NotebookTile]:
    """Every non-blank tile's 16 x 16 centroid ids, as the notebook computes them."""
    import faiss
    from osgeo import gdal
    from transformers import AutoImageProcessor, Dinov2WithRegistersModel

    processor = AutoImageProcessor.from_pretrained(model_folder, use_fast=False)
    model = Dinov2WithRegistersModel.from_pretrained(model_folder).eval()
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids.astype(np.float32))
    ds = gdal.Open(raster)
    tiles = []
    for y in origins(ds.RasterYSize):
        for x in origins(ds.RasterXSize):
            sample = _read_boundless(ds, x, y)
            if _blank(sample):
                continue
            inputs = processor(sample, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**inputs).last_hidden_state
            feats = hidden[:, 1 + model.config.num_register_tokens:, :].unflatten(1, (FEATURES, FEATURES))
            feats = feats.numpy().astype(np.float16)
            ids = np.zeros((FEATURES, FEATURES), np.int64)
            for i in range(FEATURES):
                for j in range(FEATURES):
                    _, found = index.search(feats[0, i, j].reshape(1, -1), 1)
                    ids[i, j] = found[0][0]
            tiles.append(NotebookTile(y, x, ids))
    ds = None
    return tiles


def true_centres(tile: NotebookTile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, ids) of the notebook's written (core) patches at their TRUE centres in raster px.

    The processor shows the model the tile's central 196 px: patch i covers
    ``14 + 12.25 * i`` .. ``+ 12.25`` px, not the ``14 * i`` .. the notebook writes it at.
    """
    scale = TILE / 256
    first, size = 16 * scale, 224 / FEATURES * scale
    core = np.arange(BORDER, FEATURES - BORDER)
    centre = first + size * (core + 0.5)
    rows, cols = np.meshgrid(tile.y + centre, tile.x + centre, indexing="ij")
    return rows, cols, tile.ids[BORDER:-BORDER, BORDER:-BORDER]
