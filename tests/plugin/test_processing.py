"""The Processing provider against the REAL backend: fit_codebook, classify (with that codebook),
batch_classify reporting a bad file, and cancelling from the feedback."""

from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer


ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "montevideo_0p25m_demo.tif"
CARANAVI = ROOT / "tests" / "data" / "caranavi_collar_0p25m.tif"


@pytest.fixture(scope="module")
def fitted_codebook(provider, backend, qgis_app):
    """A k=8 codebook fitted through coredino:fit_codebook into the backend's --codebooks folder."""
    import processing
    from coredino_qgis.settings import PluginSettings

    saved = PluginSettings.load()
    PluginSettings(url=backend.url, token_file=str(backend.token_file)).save()
    try:
        target = backend.codebooks / "demo_k8.codebook.npz"
        result = processing.run("coredino:fit_codebook", {
            "INPUTS": [str(DEMO)], "K": 8, "MODEL": "core-dino:n", "WEIGHTS": "random", "OUTPUT": str(target)})
    finally:
        saved.save()
    return Path(result["OUTPUT"])


def test_fit_codebook_writes_a_codebook_the_backend_lists(fitted_codebook, backend):
    assert fitted_codebook.is_file()
    listed = {c["name"]: c for c in backend.get("/v1/capabilities")["codebooks"]}
    assert listed["demo_k8.codebook.npz"]["k"] == 8
    assert listed["demo_k8.codebook.npz"]["model"] == "core-dino:n@19"


def test_classify_produces_a_styled_cog(fitted_codebook, use_backend, tmp_path):
    import processing

    output = tmp_path / "caranavi_k8.tif"
    result = processing.run("coredino:classify", {"INPUT": str(CARANAVI), "CODEBOOK": str(fitted_codebook),
                                                  "OUTPUT": str(output)})
    assert result["OUTPUT"] == str(output)
    ds = gdal.Open(str(output))
    assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"
    assert ds.GetMetadataItem("K") == "8"
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Byte  # at most 255 clusters
    ds = None
    layer = QgsRasterLayer(str(output), "k8")
    assert layer.renderer().type() == "paletted"  # the .qml sidecar
    assert 1 <= len(layer.renderer().classes()) <= 8


def test_cluster_maps_a_raster_on_its_own_features_and_saves_its_codebook(provider, use_backend, data,
                                                                         tmp_path):
    import processing

    output = tmp_path / "kampala_k6.tif"
    result = processing.run("coredino:cluster", {"INPUT": str(data / "kampala_0p30m_3857.tif"), "K": 6,
                                                 "MODEL": "core-dino:n@16", "WEIGHTS": "random",
                                                 "OUTPUT": str(output)})
    assert result["OUTPUT"] == str(output) and result["CODEBOOK"] == str(tmp_path / "kampala_k6.codebook.npz")
    assert Path(result["CODEBOOK"]).is_file()
    ds = gdal.Open(str(output))
    assert ds.GetMetadataItem("K") == "6" and ds.GetMetadataItem("CODEBOOK") == "kampala_k6.codebook.npz"
    ds = None
    layer = QgsRasterLayer(str(output), "k6")
    assert layer.renderer().type() == "paletted" and 2 <= len(layer.renderer().classes()) <= 6


def test_batch_reports_bad_files(provider, use_backend, tmp_path):
    import processing

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.tif").write_bytes(b"II*\x00 truncated")
    result = processing.run("coredino:batch_classify", {"INPUT_DIR": str(folder), "PATTERN": "*.tif",
                                                        "OUTPUT_DIR": str(tmp_path / "out")})
    assert result["DONE"] == 0 and result["FAILED"] == 1


class CancelOnceSubmitted(QgsProcessingFeedback):
    def pushInfo(self, info):  # noqa: N802
        super().pushInfo(info)
        if info.startswith("Backend job "):
            self.cancel()


def test_cancel_from_processing_cancels_the_backend_job(provider, use_backend, backend, tmp_path):
    import processing

    output = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled; the backend removed any partial output"):
        processing.run("coredino:classify", {"INPUT": str(DEMO), "OUTPUT": str(output)},
                       feedback=CancelOnceSubmitted())
    assert backend.get("/v1/jobs")["jobs"][0]["state"] == "cancelled"
    assert not output.exists()


def test_non_file_layers_are_refused_with_a_reason(provider, use_backend, tmp_path):
    import processing

    xyz = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/{z}/{x}/{y}.png&zmax=19&zmin=0", "tiles", "wms")
    with pytest.raises(QgsProcessingException, match="tiles is not a local raster file"):
        processing.run("coredino:classify", {"INPUT": xyz, "OUTPUT": str(tmp_path / "x.tif")})


def test_processing_starts_a_backend_when_none_answers(provider, plugin_settings, tmp_path, monkeypatch):
    import sys

    import processing
    from plugin_test_helpers import free_port

    from coredino_qgis.backend_process import BackendLauncher

    monkeypatch.setenv("COREDINO_CACHE", str(tmp_path / "cache"))
    plugin_settings(python=sys.executable, url=f"http://127.0.0.1:{free_port()}", token_file=str(tmp_path / "token"))
    launcher = BackendLauncher()
    monkeypatch.setattr(provider, "launcher", launcher)
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        with pytest.raises(QgsProcessingException, match="The backend job failed: .*no file matches"):
            processing.run("coredino:batch_classify", {"INPUT_DIR": str(folder), "PATTERN": "*.tif",
                                                       "OUTPUT_DIR": str(tmp_path / "out")})
        assert launcher.is_ready()  # the job ran (and failed: empty folder) on the backend it started
    finally:
        launcher.stop()
    assert not launcher.is_running()
    assert not list((tmp_path / "cache" / "service").glob("service-*.json"))
