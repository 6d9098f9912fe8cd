"""QGIS style sidecar (``<output>.qml``) listing only the classes present.

A UInt16 GeoTIFF's colour table is padded to 65536 entries, and QGIS (3.22 and later) would
list all of them in the legend; the sidecar, which QGIS loads automatically as the layer's
default style, gives a paletted renderer with just the clusters that occur, largest first.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

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


def write_qml(path: Path, counts: dict[int, int], colors: np.ndarray) -> None:
    """Write a paletted style for the cluster ids in ``counts`` (id -> number of cells)."""
    total = max(1, sum(counts.values()))
    lines = []
    for cid, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        r, g, b = (int(v) for v in colors[cid])
        label = quoteattr(f"cluster {cid} ({100 * n / total:.1f}%)")
        lines.append(f'        <paletteEntry value="{cid}" color="#{r:02x}{g:02x}{b:02x}" '
                     f'alpha="255" label={label}/>')
    Path(path).write_text(_TEMPLATE.format(entries="\n".join(lines)), encoding="utf-8")
