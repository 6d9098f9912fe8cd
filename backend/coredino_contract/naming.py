"""Where each output's companion files go, and how a coredino output is recognised by its tags."""

from __future__ import annotations

from pathlib import Path

#: GDAL metadata items that mark an output derived from a classification (not a cluster map)
DERIVED_TAGS = ("CLASS_NAMES", "COREDINO_SIMILARITY", "COREDINO_EMBEDDINGS", "LEVEL", "COREDINO_SCORE")


def sibling(path: str, suffix: str) -> str:
    """``<stem><suffix>`` beside ``path``: ``sibling("a/c.tif", "_rgb.tif") == "a/c_rgb.tif"``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}{suffix}"))


def embeddings_path(classes_path: str) -> str:
    """Where ``classify --embeddings`` writes the embeddings of ``classes_path``."""
    return sibling(classes_path, "_embeddings.tif")


def rgb_path(classes_path: str) -> str:
    """Where ``classify --rgb`` writes the RGBA rendering of ``classes_path``."""
    return sibling(classes_path, "_rgb.tif")


def areas_path(class_map_path: str) -> str:
    """The per-class areas CSV written beside a class map."""
    return sibling(class_map_path, "_areas.csv")


def codebook_path(cluster_map_path: str) -> str:
    """The codebook ``cluster`` fits and saves beside its map: ``<stem>.codebook.npz``."""
    return sibling(cluster_map_path, ".codebook.npz")


def levels_dir(classes_path: str) -> str:
    """The folder of a cluster map's coarser views (``levels``): ``<stem>_levels``."""
    return sibling(classes_path, "_levels")


def level_view_path(classes_path: str, level: int) -> str:
    """The VRT view of a cluster map at ``level`` groups: ``<stem>_levels/level<N>.vrt``."""
    return str(Path(levels_dir(classes_path)) / f"level{int(level)}.vrt")


def confidence_path(learned_path: str) -> str:
    """The winning probability (%) of a learned map (``learn``)."""
    return sibling(learned_path, "_confidence.tif")


def margin_path(learned_path: str) -> str:
    """The gap between the two most probable classes (%) of a learned map (``learn``)."""
    return sibling(learned_path, "_margin.tif")


def style_path(raster_path: str) -> str:
    """The QGIS style sidecar QGIS loads with a raster: ``<stem>.qml``."""
    return str(Path(raster_path).with_suffix(".qml"))


def is_cluster_map(tags: dict) -> bool:
    """Whether GDAL metadata ``tags`` are those of a cluster map written by classify."""
    return "CODEBOOK_SHA256" in tags and "K" in tags and not any(key in tags for key in DERIVED_TAGS)
