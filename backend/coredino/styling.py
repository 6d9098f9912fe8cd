"""QGIS style sidecar (``<output>.qml``) listing only the classes present.

A UInt16 GeoTIFF's colour table is padded to 65536 entries, and QGIS (3.22 and later) would
list all of them in the legend; the sidecar, which QGIS loads automatically as the layer's
default style, gives a paletted renderer with just the clusters that occur, largest first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from coredino_contract.styles import cluster_label

_TEMPLATE = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
  </pipe>
</qgis>
"""


def paletted_qml(entries: Iterable[tuple[int, Sequence[int], str]]) -> str:
    """A paletted raster style from (value, (r, g, b[, a]), label) entries, in the order given."""
    lines = []
    for value, color, label in entries:
        r, g, b, a = (*(int(v) for v in color[:3]), int(color[3]) if len(color) > 3 else 255)
        lines.append(f'        <paletteEntry value="{value}" color="#{r:02x}{g:02x}{b:02x}" '
                     f'alpha="{a}" label={quoteattr(label)}/>')
    return _TEMPLATE.format(entries="\n".join(lines))


def write_qml(path: Path, counts: dict[int, int], colors: np.ndarray) -> None:
    """Write a paletted style for the cluster ids in ``counts`` (id -> number of cells), largest first."""
    total = max(1, sum(counts.values()))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    entries = ((cid, colors[cid], cluster_label(cid, n, total)) for cid, n in ranked)
    Path(path).write_text(paletted_qml(entries), encoding="utf-8")
