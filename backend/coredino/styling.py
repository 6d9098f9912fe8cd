"""QGIS styles (``.qml`` sidecars) for every raster the backend writes.

QGIS loads ``<output>.qml`` beside a raster as the layer's default style. Class maps get a
paletted renderer listing only the classes present: a UInt16 GeoTIFF's colour table is padded to
65536 entries, and QGIS (3.22 and later) would list all of them in the legend. Similarity maps get
a pseudocolour ramp (plasma) over the upper part of the scores. The ramp's stops and the legend
label are the contract's (:mod:`coredino_contract.styles`): the plugin draws with them too.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence
from xml.sax.saxutils import quoteattr

from coredino_contract.styles import SIMILARITY_RAMP, cluster_label

_DOCUMENT = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
{renderer}
  </pipe>
</qgis>
"""
_PALETTED = """    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>"""
_PSEUDOCOLOR = """    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="{lo}" classificationMax="{hi}">
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="{lo}" maximumValue="{hi}">
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>"""


def paletted_qml(entries: Iterable[tuple[int, Sequence[int], str]]) -> str:
    """A paletted raster style from (value, (r, g, b[, a]), label) entries, in the order given."""
    lines = []
    for value, color, label in entries:
        r, g, b, a = (*(int(v) for v in color[:3]), int(color[3]) if len(color) > 3 else 255)
        lines.append(f'        <paletteEntry value="{value}" color="#{r:02x}{g:02x}{b:02x}" '
                     f'alpha="{a}" label={quoteattr(label)}/>')
    return _DOCUMENT.format(renderer=_PALETTED.format(entries="\n".join(lines)))


def cluster_qml(counts: Mapping[int, int], colors: Sequence[Sequence[int]]) -> str:
    """A paletted style for the cluster ids in ``counts`` (id -> number of cells), largest first."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return paletted_qml((cid, colors[cid], cluster_label(cid, n, total)) for cid, n in ranked)


def ramp_qml(stops: Iterable[tuple[float, str, int, str]]) -> str:
    """An interpolated colour-ramp style from (value, #rrggbb, alpha, label) stops, lowest first."""
    stops = list(stops)
    items = "\n".join(f'          <item value="{value}" color="{color}" alpha="{alpha}" label={quoteattr(label)}/>'
                      for value, color, alpha, label in stops)
    return _DOCUMENT.format(renderer=_PSEUDOCOLOR.format(lo=stops[0][0], hi=stops[-1][0], items=items))


def similarity_qml(lo: float, hi: float) -> str:
    """The similarity ramp from ``lo`` (transparent) to ``hi`` (opaque yellow)."""
    values = [(lo + position * (hi - lo), color, alpha) for position, color, alpha in SIMILARITY_RAMP]
    return ramp_qml((value, color, alpha, f"{value:.2f}") for value, color, alpha in values)
