"""coredino:similar, :reclassify, :polygonize, :learn and :levels through Processing and the REAL backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProcessingException, QgsRectangle, QgsVectorLayer



def points(crs: str, xys) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"Point?crs={crs}", "clicks", "memory")
    features = []
    for x, y in xys:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def test_similar_reclassify_polygonize_algorithms(provider, use_backend, classified, tmp_path):
    import processing

    ds = gdal.Open(str(classified))
    gt = ds.GetGeoTransform()
    crs = "EPSG:" + ds.GetSpatialRef().GetAuthorityCode(None)
    ids = ds.ReadAsArray()
    inside = (gt[0] + 5.5 * gt[1], gt[3] + 5.5 * gt[5])

    result = processing.run("coredino:similar", {
        "INPUT": str(classified), "POSITIVES": points(crs, [inside]),
        "NEGATIVES": points(crs, [(gt[0] + 15.5 * gt[1], gt[3] + 15.5 * gt[5])]),
        "OUTPUT": str(tmp_path / "sim.tif")})
    sim = gdal.Open(result["OUTPUT"]).ReadAsArray()
    assert sim.shape == ids.shape and np.array_equal(sim == -2, ids == 65535)
    assert sim[5, 5] > 0 and sim[15, 15] < sim[5, 5] and sim.max() <= 1

    present, counts = np.unique(ids[ids != 65535], return_counts=True)
    top = [int(i) for i in present[np.argsort(-counts)][:2]]
    classes = tmp_path / "k.classes.json"
    classes.write_text(json.dumps({"classes": {"main": top}, "codebook_sha256": ds.GetMetadataItem("CODEBOOK_SHA256")}))
    result = processing.run("coredino:reclassify", {"INPUT": str(classified), "CLASSES": str(classes),
                                                    "OUTPUT": str(tmp_path / "named.tif")})
    named = gdal.Open(result["OUTPUT"]).ReadAsArray()
    assert np.array_equal(named == 1, np.isin(ids, top))
    assert result["AREAS"] == str(tmp_path / "named_areas.csv") and "main" in open(result["AREAS"]).read()

    result = processing.run("coredino:polygonize", {"INPUT": str(tmp_path / "named.tif"), "CLASS": "main",
                                                    "OUTPUT": str(tmp_path / "main.gpkg")})
    gpkg = ogr.Open(result["OUTPUT"])
    layer = gpkg.GetLayer("main")
    assert sum(f["area_m2"] for f in layer) == pytest.approx((named == 1).sum() * gt[1] ** 2, rel=1e-3)

    with pytest.raises(QgsProcessingException, match="is outside"):
        processing.run("coredino:similar", {"INPUT": str(classified), "POSITIVES": points(crs, [(0, 0)]),
                                            "OUTPUT": str(tmp_path / "bad.tif")})


def test_learn_and_levels_algorithms(provider, use_backend, classified, tmp_path):
    """A memory polygon layer with a class field (exported for the backend) and the coarser map."""
    import processing
    from qgis.core import QgsField
    from qgis.PyQt.QtCore import QVariant

    ds = gdal.Open(str(classified))
    gt = ds.GetGeoTransform()
    crs = "EPSG:" + ds.GetSpatialRef().GetAuthorityCode(None)
    ids = ds.ReadAsArray()
    layer = QgsVectorLayer(f"Polygon?crs={crs}", "examples", "memory")
    layer.dataProvider().addAttributes([QgsField("kind", QVariant.String)])
    layer.updateFields()
    features = []
    for kind, (c0, r0) in (("a", (2, 2)), ("a", (2, 20)), ("b", (20, 2)), ("b", (20, 20))):
        x0, y0 = gt[0] + c0 * gt[1], gt[3] + r0 * gt[5]
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0, y0 + 8 * gt[5], x0 + 8 * gt[1], y0)))
        feature.setAttribute("kind", kind)
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = processing.run("coredino:learn", {"INPUT": str(classified), "EXAMPLES": layer, "FIELD": "kind",
                                               "CLASSIFIER": 1, "OUTPUT": str(tmp_path / "learned.tif"),
                                               "MODEL": str(tmp_path / "m.classifier.json")})
    learned = gdal.Open(result["OUTPUT"])
    assert json.loads(learned.GetMetadataItem("CLASS_NAMES")) == ["unclassified", "a", "b"]
    values = learned.ReadAsArray()
    assert np.array_equal(values == 255, ids == 65535) and set(np.unique(values[ids != 65535])) <= {1, 2}
    assert result["CONFIDENCE"] == str(tmp_path / "learned_confidence.tif") and gdal.Open(result["MARGIN"])
    assert "a" in open(result["AREAS"]).read() and (tmp_path / "m.classifier.json").is_file()

    result = processing.run("coredino:levels", {"INPUT": str(classified), "LEVEL": 8,
                                                "OUTPUT": str(tmp_path / "coarse8.tif")})
    coarse = gdal.Open(result["OUTPUT"])
    assert coarse.GetMetadataItem("LEVEL") == "8" and coarse.ReadAsArray()[ids != 65535].max() < 8
    assert result["AREAS"] == str(tmp_path / "coarse8_areas.csv")
