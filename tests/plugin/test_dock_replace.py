"""The dock asks before replacing an existing file, and the REAL backend then replaces it (#10 D4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QMessageBox

from plugin_test_helpers import spin_until

from coredino_qgis.backend_process import BackendLauncher
from coredino_qgis.dock import IDLE, CoredinoDock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dock(qgis_iface, use_backend, clean_project, tmp_path):
    source = tmp_path / "small.tif"  # 96 x 96 px of the real Caranavi scene: a quick job
    gdal.Translate(str(source), str(ROOT / "tests" / "data" / "caranavi_collar_0p25m.tif"), srcWin=[600, 400, 96, 96])
    layer = QgsRasterLayer(str(source), "small")
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    launcher = BackendLauncher()
    dock = CoredinoDock(qgis_iface, launcher)
    dock.use_active_layer()
    yield dock
    dock.shutdown()
    dock.deleteLater()
    launcher.deleteLater()


def test_an_existing_output_is_replaced_only_after_asking(dock, tmp_path, monkeypatch):
    output = tmp_path / "mine.tif"
    output.write_text("not a raster: the user's own file\n")
    dock.output_widget.setFilePath(str(output))
    asked = []

    def answer(reply):
        def question(parent, title, text, *args):
            asked.append(text)
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    dock.run_clicked()
    assert asked == [f"{output} already exists.\n\nReplace it with the new classification?"]
    assert dock.state == IDLE and output.read_text().startswith("not a raster")
    assert dock.status_label.text().startswith("Not run: the output exists")

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    dock.run_clicked()
    assert spin_until(lambda: dock.state == IDLE and dock.result_layer is not None, timeout=180), \
        dock.status_label.text()
    ds = gdal.Open(str(output))
    assert ds.GetMetadataItem("CODEBOOK_SHA256") and len(asked) == 2
    ds = None
