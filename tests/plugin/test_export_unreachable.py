"""An XYZ layer whose server answers no tiles: an error naming the layer and the cause, no output
(not a green "Done: 0 classes" over an all-empty export)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsRasterLayer, QgsRectangle

from plugin_test_helpers import spin_until

from coredino_qgis.layer_export import LayerExportTask, plan_export


class NoTiles(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_error(404, "no such tile")

    def log_message(self, *args):
        pass


def test_unfetchable_xyz_layer_is_an_error_naming_the_layer(qgis_app, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoTiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png"
        layer = QgsRasterLayer(f"type=xyz&url={url}&zmax=19&zmin=0", "Aerial tiles", "wms")
        assert layer.isValid()
        mercator = QgsCoordinateReferenceSystem("EPSG:3857")
        view = QgsRectangle(3629000, 38900, 3629100, 39000)  # 100 m in Kampala
        plan = plan_export(layer, view, mercator, gsd=0.5, max_pixels=1_000_000)
        out = tmp_path / "export.tif"
        task = LayerExportTask(layer, plan, str(out))
        done = []
        task.done.connect(lambda path, error: done.append((path, error)))
        QgsApplication.taskManager().addTask(task)
        assert spin_until(lambda: done, timeout=60)
    finally:
        server.shutdown()
    path, error = done[0]
    assert path == "" and not out.exists()
    assert error.startswith("The layer Aerial tiles returned no image for the map view ("), error
    assert "check its address and the network" in error
    del layer
