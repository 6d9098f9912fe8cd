"""Render the explore outputs over their source imagery, as the plugin styles them (PNG, offscreen QGIS).

    .venv/bin/python tools/explore_screenshots.py [--out out/explore]

Classifies the demo scene with embeddings, finds places like four clicked warehouse roofs (minus
two clicks on grass and parking), names three classes from the clusters most similar to clicked
examples, and writes out/explore/similarity.png and out/explore/classes.png.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from osgeo import gdal  # noqa: E402

from coredino.engine import classify  # noqa: E402
from coredino.explore.reclassify import reclassify  # noqa: E402
from coredino.explore.similar import similar  # noqa: E402
from coredino.params import ClassifyOptions, ClassifyParams, ReclassifyParams, SimilarParams  # noqa: E402

SOURCE = ROOT / "resources" / "montevideo_0p25m_demo.tif"
# pixel (column, row) of the source: examples of each class
EXAMPLES = {
    "roofs": [(680, 120), (780, 360), (880, 600), (1300, 180)],
    "vegetation": [(460, 840), (300, 400), (1060, 580), (60, 1450)],
    "paving": [(600, 1120), (380, 300), (620, 1450)],
}
NEGATIVES = [(460, 840), (600, 1120)]


def to_map(col: int, row: int) -> tuple[float, float]:
    gt = gdal.Open(str(SOURCE)).GetGeoTransform()
    return gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]


def named_classes(classes: Path, out: Path) -> dict:
    """Each cluster goes to the class whose examples it is most similar to (if similar enough)."""
    ids = gdal.Open(str(classes)).ReadAsArray()
    nodata = ids == 65535
    scores = []
    for name, pixels in EXAMPLES.items():
        result = similar(SimilarParams(str(classes), str(out / f"sim_{name}.tif"), [to_map(*p) for p in pixels]))
        scores.append(gdal.Open(result.output).ReadAsArray())
    scores = np.stack(scores)
    mapping = {name: [] for name in EXAMPLES}
    for cluster in np.unique(ids[~nodata]):
        mean = scores[:, ids == cluster].mean(1)
        if mean.max() > 0.3:
            mapping[list(EXAMPLES)[int(mean.argmax())]].append(int(cluster))
    return mapping


def render(layers, extent, path: Path, size: int = 1024) -> None:
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(path), "PNG")


def click_layer(crs, positives, negatives):
    """The clicks as the map tool marks them: green crosses (positive), red X (negative)."""
    from qgis.core import (QgsCategorizedSymbolRenderer, QgsFeature, QgsGeometry, QgsMarkerSymbol, QgsPointXY,
                           QgsRendererCategory, QgsVectorLayer)

    layer = QgsVectorLayer(f"Point?crs={crs.authid()}&field=positive:integer", "clicks", "memory")
    features = []
    for points, positive in ((positives, 1), (negatives, 0)):
        for x, y in points:
            feature = QgsFeature(layer.fields())
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
            feature["positive"] = positive
            features.append(feature)
    layer.dataProvider().addFeatures(features)
    categories = []
    for value, shape, colour in ((1, "cross", "0,200,0"), (0, "cross2", "230,0,0")):
        symbol = QgsMarkerSymbol.createSimple({"name": shape, "color": colour, "outline_color": colour,
                                               "size": "5", "outline_width": "1.2"})
        categories.append(QgsRendererCategory(value, symbol, "positive" if value else "negative"))
    layer.setRenderer(QgsCategorizedSymbolRenderer("positive", categories))
    return layer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "out" / "explore"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    classes = out / "demo_classes.tif"
    classify(ClassifyParams(str(SOURCE), str(classes), ClassifyOptions(embeddings=True)))
    positives = [to_map(*p) for p in EXAMPLES["roofs"]]
    negatives = [to_map(*p) for p in NEGATIVES]
    sim = similar(SimilarParams(str(classes), str(out / "demo_similar.tif"), positives, negatives))
    mapping = named_classes(classes, out)
    named = reclassify(ReclassifyParams(str(classes), str(out / "demo_named.tif"), mapping))
    print({c.name: f"{c.area_ha:.2f} ha" for c in named.classes})

    from qgis.core import QgsApplication, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    from coredino_qgis.explore_style import style_similarity
    from coredino_qgis.similar_panel import top_tenth

    source = QgsRasterLayer(str(SOURCE), "source")
    sim_layer = QgsRasterLayer(sim.output, "similarity")
    threshold = top_tenth(sim.histogram) / 100  # what the dock's slider starts at
    style_similarity(sim_layer, threshold, sim.max)
    clicks = click_layer(source.crs(), positives, negatives)
    render([clicks, sim_layer, source], source.extent(), out / "similarity.png")
    named_layer = QgsRasterLayer(named.output, "classes")  # styled by its .qml sidecar
    named_layer.renderer().setOpacity(0.7)
    render([named_layer, source], source.extent(), out / "classes.png")
    print(f"threshold {threshold:.2f}: {sim.area_above(threshold) / 1e4:.2f} ha similar; "
          f"wrote {out / 'similarity.png'} and {out / 'classes.png'}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
