"""The plugin's settings, stored in QgsSettings under ``coredino/``."""

from __future__ import annotations

from dataclasses import dataclass, fields

from qgis.core import QgsSettings

from .contract.protocol import DEFAULT_PORT

PREFIX = "coredino/"
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


@dataclass
class PluginSettings:
    """What the user configures in Raster > coredino > Settings.

    python:            Python executable of the environment where the backend is installed
                       (``<project>/.venv/bin/python``); used to start ``coredino serve`` when no
                       backend is running. Empty: the plugin never starts one.
    url:               backend address. Empty: the running backend found through
                       ``service-8765.json``, else the latest other ``service-<port>.json``,
                       else http://127.0.0.1:8765.
    token_file:        file holding the backend's token. Empty: the one the discovery file of
                       the URL's port names, else ``<coredino cache>/service/token-<port>``.
    max_export_pixels: largest export (width x height) of a layer that is not a local file
                       (XYZ, WMS, ...) at the codebook's GSD.
    runtime:           encoder runtime the backend uses: auto (ONNX Runtime on a CPU, torch on a
                       GPU), torch or onnx.
    """

    python: str = ""
    url: str = ""
    token_file: str = ""
    max_export_pixels: int = 25_000_000
    runtime: str = "auto"

    @classmethod
    def load(cls) -> "PluginSettings":
        s = QgsSettings()
        values = {}
        for f in fields(cls):
            default = f.default
            raw = s.value(PREFIX + f.name, default)
            try:
                values[f.name] = type(default)(raw) if raw is not None else default
            except (TypeError, ValueError):
                values[f.name] = default
        return cls(**values)

    def save(self) -> None:
        s = QgsSettings()
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))
