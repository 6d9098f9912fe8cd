"""Tile seams in a class map: how much more often neighbouring cells change cluster across a
tile seam than elsewhere.

Ids are first merged into coarse groups of clusters (:func:`cluster_groups`: k-means of the
codebook's centroids, 32 by default): with thousands of clusters nearly every neighbour pair
differs (94 % on the demo), which hides the seams; the groups are what the colours show.

A seam is where the tile that dominates a cell's feature changes (:meth:`TileGrid.owners`):
the core boundaries of cut tiles, the middle of the overlaps of blended ones. The ratio is
the rate of horizontally or vertically adjacent valid cells with different ids across seams,
divided by the same rate between cells of the same tile. 1.0 means no seam: a map whose tiles
agree at their borders changes class across a seam no more often than anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from ..codebook import Codebook, fit_kmeans
from ..errors import UserError
from ..tiling import TileGrid

GROUPS = 32

gdal.UseExceptions()


@dataclass(frozen=True)
class SeamStats:
    across: float  # share of neighbour pairs across a seam with different ids
    inside: float  # the same share for pairs inside one tile
    pairs_across: int
    pairs_inside: int

    @property
    def ratio(self) -> float:
        return self.across / self.inside if self.inside else float("nan")


def cluster_groups(codebook: Codebook, groups: int = GROUPS, seed: int = 0) -> np.ndarray:
    """(k,) int: the group of each cluster, k-means of the centroids into ``groups`` (seeded)."""
    centroids = codebook.centroids.astype(np.float32)
    if codebook.metric == "cosine":
        centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    if groups >= codebook.k:
        return np.arange(codebook.k)
    centres = fit_kmeans(centroids, groups, codebook.metric, seed, device="cpu")
    scores = centroids @ centres.T if codebook.metric == "cosine" else \
        -((centroids[:, None, :] - centres[None]) ** 2).sum(-1)
    return scores.argmax(1)


def seam_stats(ids: np.ndarray, nodata: int, grid: TileGrid,
               groups: np.ndarray | None = None) -> SeamStats:
    """Seam statistics of ``ids`` (cells_y, cells_x), written on ``grid``; compared as
    ``groups[id]`` when given."""
    valid = ids != nodata
    if groups is not None:
        ids = np.where(valid, groups[np.where(valid, ids, 0)], -1)
    counts = np.zeros((2, 2), np.int64)  # [inside, across] x [pairs, changes]
    for axis, owners in ((1, grid.owners(grid.cells_x)), (0, grid.owners(grid.cells_y))):
        a = np.moveaxis(ids, axis, 0)
        v = np.moveaxis(valid, axis, 0)
        both = v[1:] & v[:-1]
        changed = (a[1:] != a[:-1]) & both
        seam = owners[1:] != owners[:-1]
        for k, where in enumerate((~seam, seam)):
            counts[k, 0] += both[where].sum()
            counts[k, 1] += changed[where].sum()
    (pairs_in, changes_in), (pairs_x, changes_x) = counts
    return SeamStats(changes_x / max(pairs_x, 1), changes_in / max(pairs_in, 1),
                     int(pairs_x), int(pairs_in))


def grid_of(ds: gdal.Dataset, path: str) -> TileGrid:
    """The tile grid a classification was written with, from its provenance tags."""
    tags = ds.GetMetadata()
    try:
        return TileGrid(ds.RasterXSize, ds.RasterYSize, int(tags["TILE_PATCHES"]),
                        int(tags["BORDER_PATCHES"]), blend=tags.get("BLEND", "none") != "none")
    except (KeyError, ValueError):
        raise UserError(f"{path}: not a coredino classification (no TILE_PATCHES/BORDER_PATCHES "
                        f"tags); pass a file written by coredino classify") from None


def seam_stats_of(path: str, groups: np.ndarray | None = None) -> SeamStats:
    """:func:`seam_stats` of a classification COG written by ``coredino classify``."""
    ds = gdal.Open(path)
    grid = grid_of(ds, path)
    band = ds.GetRasterBand(1)
    ids, nodata = band.ReadAsArray(), int(band.GetNoDataValue())
    band = ds = None
    return seam_stats(ids, nodata, grid, groups)
