"""How outputs look in QGIS, shared by the backend's .qml sidecars and the plugin's live styles."""

from __future__ import annotations

#: the similarity ramp (matplotlib's plasma): (position 0..1 between threshold and maximum, colour, alpha)
SIMILARITY_RAMP = ((0.0, "#0d0887", 0), (0.5, "#cc4778", 160), (1.0, "#f0f921", 255))


def cluster_label(cluster_id: int, cells: int, total: int) -> str:
    """The legend entry of a cluster: ``cluster 12 (3.4%)``."""
    return f"cluster {cluster_id} ({100 * cells / max(1, total):.1f}%)"
