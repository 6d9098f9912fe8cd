"""The engine: classify one raster, a folder of rasters, or fit a codebook.

Every door (CLI, HTTP service, QGIS Processing, batch) calls these functions with the
parameter dataclasses of :mod:`coredino.params` and a :class:`~coredino.progress.Progress`.
"""

from __future__ import annotations

import contextlib
from functools import partial
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from osgeo import gdal

from coredino_contract.naming import embeddings_path, rgb_path, style_path
from coredino_contract.results import BatchResult, ClassifyResult

from . import __version__, catalogue
from .codebook import Assigner, Codebook, Reservoir, build_recipe, centroid_colors, fit_kmeans
from .codebook.codebook import validate_recipe
from .device import default_batch_size, pick_device
from .encoders import Encoder, ModelSpec, build_encoder
from .encoders.runtime import describe_runtime, prepare_encoder
from .errors import UserError
from .id_writer import IdWriter
from .blend import Blender
from .explore.embeddings import EmbeddingWriter
from .explore.levels import group_areas, level_lookup, level_qml
from .params import BatchParams, ClassifyOptions, ClassifyParams, FitParams
from .progress import Progress
from .atomic import OutputBusy, output_lock
from .outputs import CLASSES, CODEBOOK, EMBEDDINGS, RGB, check_output, output_kind
from .raster import RasterSource, no_valid_pixels, open_raster_source
from .stac import is_stac, stac_raster, stac_rasters
from .storage import exists, forget, is_remote, join, list_files
from .tile_stream import check_size, encode_batches, plan_tiles
from .tiling import TileBand, TileGrid, tile_grid
from .writer import ClassWriter

#: the bundled default weights and codebook: package data (backend/coredino/resources), shipped in the wheel
RESOURCES = Path(os.environ.get("COREDINO_RESOURCES", Path(__file__).resolve().parent / "resources"))
DEFAULT_CODEBOOK = RESOURCES / "coredino-n-default.codebook.npz"
CHECK_RASTER = RESOURCES / "check_tiles_montevideo.tif"  # real tiles (a crop of the demo) for checking ONNX exports
#: batches of ids queued for the writer thread (:mod:`coredino.id_writer`); 0 writes on the main thread
WRITE_QUEUE = 2


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
             codebook: Optional[Codebook] = None, encoder: Optional[Encoder] = None,
             rows: Optional[tuple[int, int]] = None) -> ClassifyResult:
    """Classify ``params.input`` into a COG of cluster ids at ``params.output``.

    rows: only the tile rows ``rows[0]`` to ``rows[1]`` (exclusive; see :class:`TileBand`): the
    output then holds just the cell rows they write, a part that :mod:`coredino.scale.bands`
    assembles with the others into the whole raster's COG, identical to a one-piece run.
    """
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    progress.update(0.0, f"opening {Path(params.input).name}")
    opts = params.options
    sidecars = _sidecars(params.output, opts)
    check_output(params.output, CLASSES, [params.input, opts.codebook or str(DEFAULT_CODEBOOK), opts.weights],
                 params.overwrite, sidecars=sidecars)
    codebook = codebook or load_codebook(opts.codebook, progress)
    encoder = encoder or encoder_for(codebook, opts)
    with output_lock(params.output, [path for path, _ in sidecars]):
        return _classify(params, progress, codebook, encoder, start, rows)


def _sidecars(output: str, opts: ClassifyOptions) -> list[tuple[str, Optional[str]]]:
    """(path, output kind) of the files classify publishes beside ``output``."""
    files: list[tuple[str, Optional[str]]] = [(style_path(output), None)]
    if opts.rgb:
        files.append((rgb_path(output), RGB))
    if opts.embeddings:
        files.append((embeddings_path(output), EMBEDDINGS))
    return files


def _classify(params: ClassifyParams, progress: Progress, codebook: Codebook, encoder: Encoder,
              start: float, rows: Optional[tuple[int, int]]) -> ClassifyResult:
    opts = params.options
    recipe = codebook.recipe
    license = catalogue.license_for(recipe)
    tile, border = int(recipe["tile"]), int(recipe["border"])
    if opts.embeddings and rows is not None:
        raise UserError(f"{params.input}: embeddings are fitted on the whole raster; classify it "
                        f"in one piece to write them")
    if opts.embeddings and is_remote(params.output):
        raise UserError(f"{params.output}: embeddings are written to local folders only; choose a "
                        f"local output or leave out --embeddings")
    device = next(encoder.parameters()).device
    assigner = Assigner(codebook, device)
    encoder, notes = prepare_encoder(encoder, opts.runtime, opts.precision, tile * encoder.patch,
                                     assigner, CHECK_RASTER, opts.compile, progress)
    raster, grid = open_tiled(params.input, codebook, encoder.patch, opts)
    try:
        if rows is not None:
            grid = TileBand.of(grid, *rows)
        first, stop = grid.out_rows if rows is not None else (0, grid.cells_y)
        cells, size = raster.grid, raster.grid.gsd * encoder.patch
        out_grid = type(cells)(cells.wkt, cells.x0, cells.y0 - first * size, size,
                               grid.cells_x, stop - first)
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
                _embedding_writer(params.output, out_grid, encoder.dim, tags, opts, codebook) as embed, \
                IdWriter(writer, grid.cells_x, first, WRITE_QUEUE) as id_writer:
            blender = Blender(grid, device, encoder.dim)
            for encoded in blender(encode_batches(raster, encoder, grid, batch_size,
                                                  progress.scaled(0, 0.95), compile=opts.compile,
                                                  plan=plan)):
                # one assignment per batch on the encoder's device, valid core cells only; on
                # CUDA the ids come back asynchronously: the writer thread waits for them and
                # writes them while this thread launches the next batch
                feats, keep = encoded.core_features()
                ids = assigner(feats)
                ids = (ids if lookup is None else lookup[ids]).to("cpu", non_blocking=True)
                arrived = None
                if feats.device.type == "cuda":
                    arrived = torch.cuda.Event()
                    arrived.record()
                if embed is not None and len(feats):
                    embed.add(encoded.tiles, feats, keep)
                id_writer.put(encoded.tiles, keep, ids, arrived)
            id_writer.close()
            if rows is None and not writer.counts.any():  # a band of a raster may be all nodata
                raise no_valid_pixels(params.input)
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


def open_tiled(path: str, codebook: Codebook, patch: int,
               options: ClassifyOptions) -> tuple[RasterSource, TileGrid]:
    """``path`` (a raster or a STAC item) opened at the codebook's GSD, and its tile grid on the
    recipe's lattice (snapped tiles, or centred as in the geocentroids notebook)."""
    recipe = codebook.recipe
    source = stac_raster(path) if is_stac(path) else path
    raster, phase = _open_tiled(source, recipe, patch, options.bands)
    return raster, tile_grid(raster, patch, int(recipe["tile"]), int(recipe["border"]), phase,
                             blend=options.blend and phase is None)


def batch(params: BatchParams, progress: Optional[Progress] = None) -> BatchResult:
    """Classify a folder; a bad file is recorded and the rest continue."""
    params.validate()
    progress = progress or Progress()
    if params.executor == "ray":  # imported only when asked for: Ray is an optional dependency
        from .scale.ray_batch import ray_batch
        return ray_batch(params, progress)
    jobs = batch_jobs(params)
    codebook = load_codebook(params.options.codebook)
    encoder = encoder_for(codebook, params.options)
    result = BatchResult()
    for i, (path, output) in enumerate(jobs):
        step = progress.scaled(i / len(jobs), (i + 1) / len(jobs))
        if not params.overwrite and is_done(output, codebook, params.options):
            result.skipped.append(path)
            continue
        try:
            classify(ClassifyParams(path, output, params.options, params.overwrite), step, codebook, encoder)
            result.done.append(path)
        except OutputBusy:  # another batch is writing it now: its result will be there
            result.skipped.append(path)
        except UserError as exc:
            result.failed[path] = str(exc)
    progress.update(1.0, f"{len(result.done)} done, {len(result.skipped)} skipped, "
                         f"{len(result.failed)} failed")
    return result


def batch_jobs(params: BatchParams) -> list[tuple[str, str]]:
    """(input, output) of every raster of a batch, in order: the files below ``input_dir`` (a
    folder or an object-store prefix) matching ``pattern`` (never outside it, never a coredino
    output), or the items of a STAC document; outputs mirror the input folders as
    ``<name>_classes.tif``."""
    forget(params.output_dir)  # outputs on an object store may have been written by others since
    if is_stac(params.input_dir):
        rasters = stac_rasters(params.input_dir)
    else:
        pattern = params.pattern
        if os.path.isabs(pattern) or ".." in Path(pattern).parts or pattern.startswith("~"):
            raise UserError(f"--pattern {pattern!r}: patterns are relative to the input folder "
                            f"{params.input_dir} and cannot leave it (no leading / or ~, no ..); "
                            f"e.g. '**/*.tif'")
        found = list_files(params.input_dir, pattern)
        rasters = [(path, rel) for path, rel in found if not _is_output(path)]
        if not rasters:
            outputs = f" (only coredino outputs: {len(found)})" if found else ""
            raise UserError(f"{params.input_dir}: no file matches {pattern!r}{outputs}; pass "
                            f"--pattern, e.g. '**/*.tif'")
    jobs = []
    for path, rel in rasters:
        folder, name = os.path.split(rel)
        jobs.append((path, join(params.output_dir, folder, f"{os.path.splitext(name)[0]}_classes.tif")))
    return jobs


def _is_output(path: str) -> bool:
    """A previous run's output (or its style): never taken as an input."""
    if path.lower().endswith(".qml"):
        return output_kind(str(Path(path).with_suffix(".tif"))) is not None
    return output_kind(path) is not None


def is_done(output: str, codebook: Codebook, options: ClassifyOptions) -> bool:
    """True when ``output`` (and its embeddings, if asked for) is complete and made with this
    codebook: a batch then skips it, so an interrupted batch resumes."""
    return _made_with(output, codebook) and (
        not options.embeddings or exists(embeddings_path(output)))


def fit_codebook(params: FitParams, progress: Optional[Progress] = None) -> Codebook:
    """Sample patch features from rasters (bounded memory), K-means them, colour the centroids."""
    params.validate()
    progress = progress or Progress()
    check_output(params.output, CODEBOOK, [*params.inputs, params.model.weights], suffixes=(".npz",))
    device = pick_device(params.device)
    batch_size = default_batch_size(device, params.batch_size)
    encoder = build_encoder(params.model, device)
    try:  # before any work: the recipe must be one a codebook may hold
        validate_recipe(build_recipe(encoder.recipe(), tile=params.tile, border=params.border,
                                     gsd=params.gsd, k=params.k, seed=params.seed, n_features=0, sources=[]))
    except ValueError as exc:
        raise UserError(f"fit-codebook: {exc}; change --gsd/--tile/--border/--k") from None
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


def _made_with(output: str, codebook: Codebook) -> bool:
    """True when ``output`` is a complete result made with this codebook (resume support)."""
    if not exists(output):
        return False
    try:
        ds = gdal.Open(str(output))
        same = ds.GetMetadataItem("CODEBOOK_SHA256") in codebook.identities
        ds = None
        return same
    except RuntimeError:
        return False
