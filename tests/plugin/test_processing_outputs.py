"""Processing outputs as a desktop user gets them: styled like the dock's, embeddings on request."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProject

ROOT = Path(__file__).resolve().parents[2]
CARANAVI = ROOT / "tests" / "data" / "caranavi_collar_0p25m.tif"


def test_loaded_classify_output_lists_only_present_classes_and_keeps_embeddings(provider, use_backend, tmp_path):
    import processing

    output = tmp_path / "caranavi_classes.tif"
    result = processing.runAndLoadResults("coredino:classify", {"INPUT": str(CARANAVI), "EMBEDDINGS": True,
                                                                "OUTPUT": str(output)})
    assert Path(result["EMBEDDINGS_OUTPUT"]) == tmp_path / "caranavi_classes_embeddings.tif"
    assert Path(result["EMBEDDINGS_OUTPUT"]).is_file()
    (layer,) = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == str(output)]
    try:
        renderer = layer.renderer()
        assert renderer.type() == "paletted"
        # the default codebook has 6000 clusters in a UInt16 colour table of 65,536 entries
        assert 10 < len(renderer.classes()) < 6000
        assert renderer.classes()[0].label.startswith("cluster ")
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
