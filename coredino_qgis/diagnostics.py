"""*Copy diagnostics*: what a user pastes into a bug report (versions, backend, device, log tail, last error)."""

from __future__ import annotations

import platform
import sys

from qgis.core import Qgis
from qgis.PyQt.QtCore import PYQT_VERSION_STR, QT_VERSION_STR
from qgis.PyQt.QtWidgets import QApplication

from .backend_env import plugin_version
from .backend_process import BackendLauncher, resolve_connection
from .settings import PluginSettings

#: capability fields reported, in order, with their labels
BACKEND_FIELDS = (("version", "coredino backend"), ("python", "backend Python"), ("python_version", "backend Python version"),
                  ("platform", "backend platform"), ("package", "backend package"), ("device", "device"), ("gpu", "GPU"),
                  ("gpu_memory_gb", "GPU memory (GB)"), ("torch", "torch"), ("gdal", "GDAL (backend)"),
                  ("protocol", "protocol"))


def diagnostics_text(launcher: BackendLauncher | None, capabilities: dict | None, last_error: str = "") -> str:
    settings = PluginSettings.load()
    connection = resolve_connection(settings)
    lines = ["coredino diagnostics",
             f"plugin: coredino {plugin_version()}",
             f"QGIS: {Qgis.QGIS_VERSION} · Qt {QT_VERSION_STR} · PyQt {PYQT_VERSION_STR}",
             f"QGIS Python: {sys.version.split()[0]} ({platform.platform(terse=True)})",
             f"settings: python={settings.python or '(none)'} url={settings.url or '(automatic)'}",
             f"backend address: {connection.url} (found through {connection.origin})"]
    if capabilities:
        for key, label in BACKEND_FIELDS:
            if capabilities.get(key) is not None:
                lines.append(f"{label}: {capabilities[key]}")
        lines.append(f"codebooks: {len(capabilities.get('codebooks') or [])}")
    else:
        lines.append("backend: not connected")
    lines.append(f"last error: {last_error or (launcher.last_error if launcher else '') or '(none)'}")
    tail = launcher.output_tail(30) if launcher is not None else ""
    lines += ["backend log (the backend this plugin started, last lines):", tail or "(none)"]
    return "\n".join(lines) + "\n"


def copy_diagnostics(launcher: BackendLauncher | None, capabilities: dict | None, last_error: str = "") -> str:
    """Put the diagnostics on the clipboard; returns them."""
    text = diagnostics_text(launcher, capabilities, last_error)
    QApplication.clipboard().setText(text)
    return text
