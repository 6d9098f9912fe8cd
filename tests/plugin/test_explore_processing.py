"""coredino:similar, coredino:reclassify and coredino:polygonize through Processing and the REAL backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProcessingException, QgsVectorLayer



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
