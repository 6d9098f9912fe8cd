"""Set up the backend from inside QGIS (the dialog, real venv, real pip, real backend start).

What this proves: the dialog creates a virtual environment with a Python that imports GDAL,
installs the coredino wheel from a local folder with ``pip --no-index`` (no network), verifies it
with imports and a one-tile classification from the installed package, saves that Python in
Settings and starts a backend that serves from the new environment. What it does not prove: the
dependency wheels of ``make offline-bundle`` (torch & co, GBs); the new environment reaches the
already-installed ones through a .pth file and the dialog's "Only coredino" (--no-deps) option.
"""

from __future__ import annotations

import json
import site
import sys
from pathlib import Path

import pytest

from plugin_test_helpers import free_port, http_json, spin_until

ROOT = Path(__file__).resolve().parents[2]
BASE_PYTHON = Path("/usr/bin/python3")  # Debian's, with python3-gdal (ENVIRONMENT.md)


@pytest.fixture(scope="module")
def bundle(backend_wheel) -> Path:
    """A local "folder of wheels" holding only the backend wheel (`make dist`)."""
    return backend_wheel.parent


def dialog_for(bundle: Path, venv: Path):
    from coredino_qgis.backend_process import BackendLauncher
    from coredino_qgis.setup_dialog import SetupDialog

    launcher = BackendLauncher()
    dialog = SetupDialog(launcher)
    dialog.python_widget.setFilePath(str(BASE_PYTHON))
    dialog.venv_widget.setFilePath(str(venv))
    dialog.bundle_widget.setFilePath(str(bundle))
    dialog.no_deps_check.setChecked(True)
    return dialog, launcher


def test_setup_installs_offline_verifies_and_starts_the_backend(bundle, tmp_path, plugin_settings, monkeypatch):
    from coredino_qgis.settings import PluginSettings

    monkeypatch.setenv("COREDINO_CACHE", str(tmp_path / "cache"))
    port = free_port()
    plugin_settings(url=f"http://127.0.0.1:{port}", token_file=str(tmp_path / "token"))
    venv = tmp_path / "coredino" / "venv"
    dialog, launcher = dialog_for(bundle, venv)
    assert dialog.from_folder.isChecked()
    shared = [p for p in site.getsitepackages() if p.startswith(sys.prefix)][0]

    def share_dependencies(_index: int, title: str) -> None:
        if title == "Creating the environment":  # torch & co from the test's environment (see above)
            (next(venv.glob("lib/python3*/site-packages")) / "shared-deps.pth").write_text(shared + "\n")

    dialog.step_finished.connect(share_dependencies)
    ready = []
    launcher.ready.connect(ready.append)
    dialog.start()
    assert spin_until(lambda: dialog.state != "running", timeout=400), dialog.log_view.toPlainText()[-3000:]
    log = dialog.log_view.toPlainText()
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "setup_dialog_log.txt").write_text(log + "\n" + json.dumps(dialog.timings) + "\n")
    assert dialog.state == "done", log[-3000:]
    assert [t for t, _ in dialog.timings] == ["Checking the Python", "Creating the environment",
                                              "Installing coredino", "Verifying: a small classification"]
    assert "--no-index --find-links" in log
    assert f"from {venv}/lib/python3" in log  # the verification imported the installed package
    assert (tmp_path / "coredino" / "verify" / "verify_classes.tif").is_file()
    assert PluginSettings.load().python == str(venv / "bin" / "python")
    try:
        assert spin_until(lambda: ready, timeout=240), launcher.output_tail(20)
        token = (tmp_path / "token").read_text().strip()
        caps = http_json(f"http://127.0.0.1:{port}/v1/capabilities", token)
        assert caps["package"].startswith(str(venv))  # the backend serves from the new environment
        assert caps["python"] == str(venv / "bin" / "python")
    finally:
        launcher.stop()


def test_cancel_stops_the_running_step_and_saves_nothing(bundle, tmp_path, plugin_settings):
    from coredino_qgis.settings import PluginSettings

    plugin_settings(python="")
    dialog, launcher = dialog_for(bundle, tmp_path / "venv")
    dialog.start()
    assert spin_until(lambda: dialog.index >= 1, timeout=60)  # creating the environment
    process = dialog.process
    dialog.cancel()
    assert dialog.state == "cancelled" and "Cancelled during: Creating the environment" in dialog.status_label.text()
    assert process.state() == process.ProcessState.NotRunning
    assert dialog.install_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert PluginSettings.load().python == ""
