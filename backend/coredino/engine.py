"""The engine: classify one raster, a folder of rasters, or fit a codebook.

Every door (CLI, HTTP service, QGIS Processing, batch) calls these functions with the
parameter dataclasses of :mod:`coredino.params` and a :class:`~coredino.progress.Progress`.
"""

from __future__ import annotations

import contextlib
from functools import partial
import glob
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from osgeo import gdal

from coredino_contract.naming import embeddings_path, rgb_path
from coredino_contract.results import BatchResult, ClassifyResult

from . import __version__, catalogue
from .codebook import Assigner, Codebook, Reservoir, build_recipe, centroid_colors, fit_kmeans
from .device import default_batch_size, pick_device
from .encoders import Encoder, ModelSpec, build_encoder
from .encoders.runtime import describe_runtime, prepare_encoder
from .errors import UserError
from .blend import Blender
from .explore.embeddings import EmbeddingWriter
from .explore.levels import group_areas, level_lookup, level_qml
from .params import BatchParams, ClassifyOptions, ClassifyParams, FitParams
from .progress import Progress
from .raster import RasterSource, open_raster_source
from .tile_stream import check_size, encode_batches, plan_tiles
from .tiling import TileGrid, tile_grid
from .writer import ClassWriter

#: the bundled default weights and codebook: package data (backend/coredino/resources), shipped in the wheel
RESOURCES = Path(os.environ.get("COREDINO_RESOURCES", Path(__file__).resolve().parent / "resources"))
DEFAULT_CODEBOOK = RESOURCES / "coredino-n-default.codebook.npz"
CHECK_RASTER = RESOURCES / "check_tiles_montevideo.tif"  # real tiles (a crop of the demo) for checking ONNX exports


def load_codebook(path: Optional[str], progress: Optional[Progress] = None) -> Codebook:
    """A codebook file, a catalogue name (its files fetched as needed), or the bundled default."""
    if path in catalogue.ENTRIES and not os.path.exists(path):
        path = str(catalogue.codebook_path(path, progress))
    return Codebook.load(str(path or DEFAULT_CODEBOOK))


def encoder_for(codebook: Codebook, options: ClassifyOptions) -> Encoder:
    """Build the encoder the codebook was fitted with and check that it matches."""
    recipe = codebook.recipe
    weights = options.weights or recipe.get("weights_uri", "random")
    if not options.weights and _is_local(weights):  # stored relative to the codebook's folder
        weights = str((Path(codebook.path).parent / weights).resolve())
    spec = ModelSpec(recipe["family"], recipe["variant"], weights, recipe.get("layer"))
    encoder = build_encoder(spec, pick_device(options.device))
    codebook.check_matches(encoder.recipe())
    return encoder


def classify(params: ClassifyParams, progress: Optional[Progress] = None,
             codebook: Optional[Codebook] = None, encoder: Optional[Encoder] = None) -> ClassifyResult:
    """Classify ``params.input`` into a COG of cluster ids at ``params.output``."""
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    progress.update(0.0, f"opening {Path(params.input).name}")
    opts = params.options
    codebook = codebook or load_codebook(opts.codebook, progress)
    encoder = encoder or encoder_for(codebook, opts)
    recipe = codebook.recipe
    license = catalogue.license_for(recipe)
    tile, border = int(recipe["tile"]), int(recipe["border"])
    device = next(encoder.parameters()).device
    assigner = Assigner(codebook, device)
    encoder, notes = prepare_encoder(encoder, opts.runtime, opts.precision, tile * encoder.patch,
                                     assigner, CHECK_RASTER, opts.compile)
    raster, phase = _open_tiled(params.input, recipe, encoder.patch, opts.bands)
    try:
        grid = tile_grid(raster, encoder.patch, tile, border, phase,
                         blend=opts.blend and phase is None)
        cells = raster.grid
        out_grid = type(cells)(cells.wkt, cells.x0, cells.y0, cells.gsd * encoder.patch,
                               grid.cells_x, grid.cells_y)
        batch_size = default_batch_size(device, opts.batch_size)
        plan = plan_tiles(raster, grid, encoder.patch)
        progress.update(0.0, check_size(plan, encoder, batch_size, opts.max_tiles, params.input))
        rgb_output = rgb_path(params.output) if opts.rgb else None
        tags = _provenance(params.input, encoder, codebook, grid, raster.bands)
        tags["MODEL_LICENSE"] = license
        colors, legend, lookup = codebook.colors, None, None
        if opts.level is not None:
            groups, colors = level_lookup(codebook, opts.level)
            lookup = torch.from_numpy(groups.astype(np.int64)).to(device)
            tags["LEVEL"] = str(opts.level)
            legend = partial(_level_legend, colors=colors, area=out_grid.gsd ** 2)
        with ClassWriter(params.output, out_grid, colors, tags, legend) as writer, \
                _embedding_writer(params.output, out_grid, encoder.dim, tags, opts, codebook) as embed:
            rows = _RowWriter(writer, grid.cells_x)
            pending = None
            blender = Blender(grid, device, encoder.dim)
            for encoded in blender(encode_batches(raster, encoder, grid, batch_size,
                                                  progress.scaled(0, 0.95), compile=opts.compile,
                                                  plan=plan)):
                # one assignment per batch on the encoder's device, valid core cells only; on
                # CUDA the ids come back asynchronously and are written while the next batch runs
                feats, keep = encoded.core_features()
                ids = assigner(feats)
                ids = (ids if lookup is None else lookup[ids]).to("cpu", non_blocking=True)
                arrived = None
                if feats.device.type == "cuda":
                    arrived = torch.cuda.Event()
                    arrived.record()
                if embed is not None and len(feats):
                    embed.add(encoded.tiles, feats, keep)
                if pending is not None:
                    _write_ids(rows, *pending)
                pending = (encoded.tiles, keep, ids, arrived)
            if pending is not None:
                _write_ids(rows, *pending)
            rows.flush()
            if embed is not None:  # published now, removed again if the class map then fails
                embed.finish(progress.scaled(0.95, 0.96))
            progress.update(0.96, "writing COG")
            classes = writer.finish(rgb_output)
    finally:
        raster.close()
    progress.update(1.0, "done")
    warnings = raster.warnings + [n for n in [catalogue.notice(license)] if n]
    return ClassifyResult(params.output, classes, blender.tiles, time.perf_counter() - start,
                          str(device), rgb_output, warnings + notes,
                          embeddings_path(params.output) if opts.embeddings else None,
                          describe_runtime(encoder))


def batch(params: BatchParams, progress: Optional[Progress] = None) -> BatchResult:
    """Classify a folder; a bad file is recorded and the rest continue."""
    params.validate()
    progress = progress or Progress()
    root = Path(params.input_dir)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    inputs = sorted(p for p in glob.glob(str(root / params.pattern), recursive=True) if os.path.isfile(p))
    if not inputs:
        raise UserError(f"{root}: no file matches {params.pattern!r}; pass --pattern, e.g. '**/*.tif'")
    codebook = load_codebook(params.options.codebook)
    encoder = encoder_for(codebook, params.options)
    result = BatchResult()
    for i, path in enumerate(inputs):
        rel = Path(path).relative_to(root)
        output = Path(params.output_dir) / rel.parent / f"{rel.stem}_classes.tif"
        step = progress.scaled(i / len(inputs), (i + 1) / len(inputs))
        if not params.overwrite and _made_with(output, codebook) and (
                not params.options.embeddings or os.path.isfile(embeddings_path(str(output)))):
            result.skipped.append(path)
            continue
        try:
            classify(ClassifyParams(path, str(output), params.options), step, codebook, encoder)
            result.done.append(path)
        except UserError as exc:
            result.failed[path] = str(exc)
    progress.update(1.0, f"{len(result.done)} done, {len(result.skipped)} skipped, "
                         f"{len(result.failed)} failed")
    return result


def fit_codebook(params: FitParams, progress: Optional[Progress] = None) -> Codebook:
    """Sample patch features from rasters (bounded memory), K-means them, colour the centroids."""
    params.validate()
    progress = progress or Progress()
    device = pick_device(params.device)
    batch_size = default_batch_size(device, params.batch_size)
    encoder = build_encoder(params.model, device)
    reservoir = Reservoir(params.max_features, encoder.dim, params.seed)
    n = len(params.inputs)
    for i, path in enumerate(params.inputs):
        raster = open_raster_source(path, params.gsd, pad_to=params.tile * encoder.patch,
                             bands=params.bands, multiple_of=encoder.patch)
        try:
            grid = tile_grid(raster, encoder.patch, params.tile, params.border, blend=True)
            step = progress.scaled(0.6 * i / n, 0.6 * (i + 1) / n)
            blender = Blender(grid, device, encoder.dim)
            for encoded in blender(encode_batches(raster, encoder, grid, batch_size, step)):
                reservoir.add(encoded.core_features()[0].cpu().numpy())
        finally:
            raster.close()
    progress.update(0.6, f"k-means on {min(reservoir.seen, params.max_features)} features")
    sample = reservoir.sample()
    centroids = fit_kmeans(sample, params.k, params.metric, params.seed, params.niter,
                           progress.scaled(0.6, 0.9), device=params.device)
    progress.update(0.9, "colouring centroids (t-SNE)")
    colors = centroid_colors(centroids, params.metric, params.seed)
    recipe = build_recipe(encoder.recipe(), tile=params.tile, border=params.border, gsd=params.gsd,
                          k=params.k, seed=params.seed, n_features=int(len(sample)),
                          sources=[Path(p).name for p in params.inputs])
    recipe.update(niter=params.niter, features_seen=int(reservoir.seen), metric=params.metric,
                  model_license=catalogue.license_for(recipe), blend=True)
    if _is_local(recipe["weights_uri"]):
        recipe["weights_uri"] = os.path.relpath(recipe["weights_uri"], Path(params.output).resolve().parent)
    codebook = Codebook(centroids=centroids, colors=colors, metric=params.metric, recipe=recipe)
    codebook.save(params.output)
    progress.update(1.0, "done")
    return codebook


def _open_tiled(path: str, recipe: dict, patch: int,
                bands: Optional[tuple[int, ...]]) -> tuple[RasterSource, Optional[tuple[int, int]]]:
    """The raster on the codebook's grid, and the tile lattice's phase (None: snapped tiles).

    ``lattice: centred`` (the geocentroids notebook): tiles every ``core`` patches, the lattice
    centred on the raster as the notebook centres it; the grid starts up to one cell before the
    raster so that the lattice falls on whole cells.
    """
    gsd, tile_px = float(recipe["gsd"]), int(recipe["tile"]) * patch
    if recipe.get("lattice") != "centred":
        return open_raster_source(path, gsd, pad_to=tile_px, bands=bands, multiple_of=patch), None
    stride_px = tile_px - 2 * int(recipe["border"]) * patch
    probe = open_raster_source(path, gsd, bands=bands)
    starts = [_centred_start(n, tile_px, stride_px) for n in (probe.grid.width, probe.grid.height)]
    probe.close()
    phase = tuple(-(-start // patch) for start in starts)
    origin = tuple(start - cells * patch for start, cells in zip(starts, phase))
    reach = max(probe.grid.width, probe.grid.height) + 2 * tile_px  # last tiles run off the grid
    return open_raster_source(path, gsd, pad_to=reach, bands=bands, multiple_of=patch,
                              origin=origin), phase


def _centred_start(size: int, tile: int, stride: int) -> int:
    """First tile's pixel in the notebook: tiles every ``stride`` that fit, shifted by half the
    overshoot of the first one that does not (0 when no tile fits)."""
    if size < tile:
        return 0
    return (((size - tile) // stride + 1) * stride + tile - size) // 2


def _level_legend(present: dict[int, int], colors: np.ndarray, area: float) -> str:
    counts = np.zeros(len(colors), np.int64)
    counts[list(present)] = list(present.values())
    return level_qml(group_areas(counts, None, colors, area))


def _embedding_writer(output: str, grid, dim: int, tags: dict[str, str], opts: ClassifyOptions,
                      codebook: Codebook):
    """``<output stem>_embeddings.tif``'s writer (in the codebook's basis) when ``opts.embeddings``,
    else a no-op context (None)."""
    if not opts.embeddings:
        return contextlib.nullcontext()
    return EmbeddingWriter(embeddings_path(output), grid, dim, tags, basis=codebook.basis)


def _write_ids(rows: "_RowWriter", tiles: list, keep: np.ndarray, ids: torch.Tensor,
               arrived: Optional["torch.cuda.Event"]) -> None:
    """Put a batch's ids (nodata outside ``keep``) in the row buffer once they have arrived."""
    if arrived is not None:
        arrived.synchronize()
    grid_ids = np.full(keep.shape, rows.writer.nodata, np.uint16)
    grid_ids[keep] = ids.numpy()
    for tile, tile_ids in zip(tiles, grid_ids):
        ox, oy = tile.offset
        rows.put(tile, tile_ids[oy:oy + tile.out_h, ox:ox + tile.out_w])


class _RowWriter:
    """Collects the ids of one row of tiles and writes the row in one call (few, large writes)."""

    def __init__(self, writer: ClassWriter, width: int) -> None:
        self.writer, self.width = writer, width
        self.y: Optional[int] = None
        self.row: Optional[np.ndarray] = None

    def put(self, tile, ids: np.ndarray) -> None:
        if tile.out_y != self.y:
            self.flush()
            self.y = tile.out_y
            self.row = np.full((tile.out_h, self.width), self.writer.nodata, np.uint16)
        self.row[:, tile.out_x:tile.out_x + tile.out_w] = ids

    def flush(self) -> None:
        if self.row is not None:
            self.writer.write(0, self.y, self.row)
        self.y, self.row = None, None


def _is_local(weights_uri: str) -> bool:
    """A weights file path (not ``random``, a URL or ``hf://``)."""
    return weights_uri != "random" and "://" not in weights_uri


def _provenance(source: str, encoder: Encoder, codebook: Codebook, grid: TileGrid,
                bands: list[int]) -> dict[str, str]:
    return {
        "COREDINO_VERSION": __version__,
        "SOURCE": Path(source).name,
        "MODEL": encoder.id,
        "WEIGHTS_SHA256": encoder.weights_sha256,
        "CODEBOOK": Path(codebook.path).name,
        "CODEBOOK_SHA256": codebook.sha256,
        "K": str(codebook.k),
        "METRIC": codebook.metric,
        "GSD": str(codebook.recipe["gsd"]),
        "PATCH_PX": str(encoder.patch),
        "TILE_PATCHES": str(grid.tile),
        "BORDER_PATCHES": str(grid.border),
        "BLEND": "linear" if grid.blend else "none",
        "STRIDE_PATCHES": str(grid.stride),
        "BANDS": ",".join(map(str, bands)),
        "CREATED": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _made_with(output: Path, codebook: Codebook) -> bool:
    """True when ``output`` is a complete result made with this codebook (resume support)."""
    if not output.exists():
        return False
    try:
        ds = gdal.Open(str(output))
        same = ds.GetMetadataItem("CODEBOOK_SHA256") in codebook.identities
        ds = None
        return same
    except RuntimeError:
        return False
