"""A class map at a coarser level: cluster id -> group of the codebook's merge tree, no re-encoding.

``level_views`` writes, beside a classification, ``<stem>_levels/level<N>.vrt`` for every level
(2, 4, 8, ... groups): a GDAL VRT whose lookup table (``<LUT>``) maps each cluster id to its group,
with the groups' colour table and a ``.qml`` legend listing the groups present, largest first,
each with its area. They cost no pixels (a few kB each), QGIS and GDAL read them like any raster,
and the QGIS *detail* slider switches between them. ``coarsen`` writes one level as a COG (with its
legend and areas CSV), translated from that same VRT; ``classify --level N`` applies the same
lookup (:func:`level_lookup`) to the ids as they are assigned.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from osgeo import gdal

from coredino_contract.naming import areas_path, is_cluster_map, level_view_path, levels_dir, style_path
from coredino_contract.params import LevelsParams, standard_levels
from coredino_contract.results import GroupArea, LevelsResult, LevelView

from ..atomic import atomic_open
from ..codebook import Codebook
from ..codebook.hierarchy import cut, group_colors
from ..cog import AtomicCOG
from ..errors import UserError
from ..progress import Progress
from ..writer import nodata_for
from ..styling import paletted_qml
from .rasters import cell_area, open_classification, windows
from .reclassify import areas_csv


def level_lookup(codebook: Codebook, level: int) -> tuple[np.ndarray, np.ndarray]:
    """((k,) group id of each cluster, (n, 3) uint8 group colours) at ``level`` groups."""
    if not 1 <= level <= codebook.k:
        raise UserError(f"level {level}: give a number of groups between 1 and {codebook.k} "
                        f"(the codebook's k)")
    groups = cut(codebook.merges, codebook.k, level)
    return groups, group_colors(groups, codebook.centroids, codebook.colors, codebook.metric)


def codebook_of(path: str, tags: dict, codebook_path: Optional[str]) -> Codebook:
    """The codebook that made the map at ``path``: ``codebook_path``, else the bundled one or the
    file the map names (its ``CODEBOOK`` tag) beside the map; its hash must match the map's."""
    from ..engine import load_codebook  # the engine imports this package
    candidates = [codebook_path] if codebook_path else [None, str(Path(path).with_name(tags.get("CODEBOOK", "")))]
    for candidate in candidates:
        if candidate is not None and not Path(candidate).is_file() and not codebook_path:
            continue
        codebook = load_codebook(candidate)
        if tags.get("CODEBOOK_SHA256") in codebook.identities:
            return codebook
    raise UserError(f"{path} was classified with codebook {tags.get('CODEBOOK', '?')} (sha256 "
                    f"{str(tags.get('CODEBOOK_SHA256'))[:12]}), not {codebook.path}: pass the codebook "
                    f"that made it (--codebook)")


def _histogram(ds: gdal.Dataset, k: int, nodata: Optional[float]) -> np.ndarray:
    band = ds.GetRasterBand(1)
    counts = np.zeros(65536, np.int64)
    for x, y, w, h in windows(ds.RasterXSize, ds.RasterYSize):
        counts += np.bincount(band.ReadAsArray(x, y, w, h).ravel(), minlength=65536)
    if nodata is not None:
        counts[int(nodata)] = 0
    return counts[:k]


def group_areas(counts: np.ndarray, groups: Optional[np.ndarray], colors: np.ndarray,
                area: float) -> list[GroupArea]:
    """The groups present (cells > 0), largest first (ties by id), from cells per cluster and the
    cluster -> group lookup, or (``groups`` None) from cells per group."""
    n = len(colors)
    if groups is None:
        cells, clusters = np.asarray(counts[:n], np.int64), None
    else:
        cells = np.bincount(groups, weights=counts, minlength=n).astype(np.int64)
        clusters = np.bincount(groups, weights=counts > 0, minlength=n).astype(np.int64)
    order = sorted(np.flatnonzero(cells), key=lambda g: (-cells[g], g))
    return [GroupArea(int(g), "#%02x%02x%02x" % tuple(int(c) for c in colors[g]),
                      None if clusters is None else int(clusters[g]), int(cells[g]),
                      float(cells[g] * area)) for g in order]


def legend_label(group: GroupArea, total_cells: int) -> str:
    members = "" if group.clusters is None else f", {group.clusters} clusters"
    return (f"group {group.group}: {group.area_m2 / 1e4:.2f} ha "
            f"({100 * group.cells / max(1, total_cells):.1f} %{members})")


def level_qml(groups: list[GroupArea]) -> str:
    total = sum(g.cells for g in groups)
    return paletted_qml((g.group, tuple(int(g.color[i:i + 2], 16) for i in (1, 3, 5)),
                         legend_label(g, total)) for g in groups)


def _vrt(source: str, ds: gdal.Dataset, lookup: np.ndarray, colors: np.ndarray, nodata_in: int,
         tags: dict) -> str:
    out_nodata = nodata_for(len(colors))
    dtype = "Byte" if out_nodata == 255 else "UInt16"
    lut = ",".join(f"{i}:{int(g)}" for i, g in enumerate(lookup))
    if nodata_in > len(lookup) - 1:
        lut += f",{nodata_in}:{out_nodata}"
    table = "".join(f'<Entry c1="{r}" c2="{g}" c3="{b}" c4="255"/>' for r, g, b in colors.tolist())
    table += "".join('<Entry c1="0" c2="0" c3="0" c4="0"/>' for _ in range(len(colors), out_nodata + 1)) \
        if out_nodata == 255 else ""
    metadata = "".join(f"<MDI key={quoteattr(k)}>{escape(v)}</MDI>" for k, v in tags.items())
    gt = ",".join(repr(v) for v in ds.GetGeoTransform())
    return (f'<VRTDataset rasterXSize="{ds.RasterXSize}" rasterYSize="{ds.RasterYSize}">\n'
            f"  <SRS>{escape(ds.GetProjection())}</SRS>\n  <GeoTransform>{gt}</GeoTransform>\n"
            f"  <Metadata>{metadata}</Metadata>\n"
            f'  <VRTRasterBand dataType="{dtype}" band="1">\n'
            f"    <NoDataValue>{out_nodata}</NoDataValue>\n    <ColorInterp>Palette</ColorInterp>\n"
            f"    <ColorTable>{table}</ColorTable>\n"
            f"    <ComplexSource>\n"
            f'      <SourceFilename relativeToVRT="1">{escape(source)}</SourceFilename>\n'
            f"      <SourceBand>1</SourceBand>\n      <NODATA>{nodata_in}</NODATA>\n"
            f"      <LUT>{lut}</LUT>\n    </ComplexSource>\n  </VRTRasterBand>\n</VRTDataset>\n")


def level_views(params: LevelsParams, progress: Optional[Progress] = None) -> LevelsResult:
    """Write the coarser views (or, with ``params.output``, one coarse COG) of a classification."""
    params.validate()
    start = time.perf_counter()
    progress = progress or Progress()
    ds = open_classification(params.input)
    tags = ds.GetMetadata()
    if not is_cluster_map(tags):
        raise UserError(f"{params.input} is not a cluster map (a named or coarse map); give the map "
                        f"`coredino classify` wrote without --level")
    codebook = codebook_of(params.input, tags, params.codebook)
    levels = sorted(set(params.levels)) or standard_levels(codebook.k)[:-1]
    band = ds.GetRasterBand(1)
    nodata = int(band.GetNoDataValue() if band.GetNoDataValue() is not None else 65535)
    area = cell_area(ds, params.input)
    counts = _histogram(ds, codebook.k, nodata)
    keep = {key: tags[key] for key in ("MODEL", "WEIGHTS_SHA256", "CODEBOOK", "CODEBOOK_SHA256", "K",
                                       "METRIC", "GSD", "PATCH_PX", "SOURCE") if key in tags}
    result = LevelsResult(params.input)
    for i, level in enumerate(levels):
        progress.update(i / len(levels), f"level {level}")
        lookup, colors = level_lookup(codebook, level)
        groups = group_areas(counts, lookup, colors, area)
        level_tags = {**keep, "LEVEL": str(level), "CLUSTERS": Path(params.input).name}
        if params.output is None:
            Path(levels_dir(params.input)).mkdir(exist_ok=True)
            vrt = Path(level_view_path(params.input, level))
            source = str(Path("..") / Path(params.input).name)
            qml = Path(style_path(str(vrt)))
            with atomic_open(qml) as f:
                f.write(level_qml(groups).encode("utf-8"))
            with atomic_open(vrt) as f:
                f.write(_vrt(source, ds, lookup, colors, nodata, level_tags).encode("utf-8"))
            result.views.append(LevelView(level, str(vrt), str(qml), groups))
        else:
            result.views.append(_coarse_cog(params, ds, lookup, colors, nodata, level_tags, groups))
    ds = None
    progress.update(1.0, "done")
    result.seconds = time.perf_counter() - start
    return result


def _coarse_cog(params: LevelsParams, ds: gdal.Dataset, lookup: np.ndarray, colors: np.ndarray,
                nodata: int, tags: dict, groups: list[GroupArea]) -> LevelView:
    """One level as a COG, through the same lookup (in memory), with its legend and areas CSV."""
    out_nodata = nodata_for(len(colors))
    lut = np.full(65536, out_nodata, np.uint16)
    lut[:len(lookup)] = lookup
    band = ds.GetRasterBand(1)
    with AtomicCOG(params.output, ds, gdal.GDT_Byte if out_nodata == 255 else gdal.GDT_UInt16,
                   out_nodata, resampling="MODE") as out:
        for x, y, w, h in windows(ds.RasterXSize, ds.RasterYSize):
            out.write(x, y, lut[band.ReadAsArray(x, y, w, h)])
        qml = style_path(params.output)
        out.sidecar(qml).write_text(level_qml(groups), encoding="utf-8")
        csv_path = areas_path(params.output)
        out.sidecar(csv_path).write_text(areas_csv(
            (g.group, f"group {g.group}", g.cells, g.area_m2) for g in groups), encoding="utf-8")
        output = out.publish(tags, colors.tolist())
    return LevelView(int(tags["LEVEL"]), output, str(qml), groups, csv_path)
