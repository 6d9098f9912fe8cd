"""Fixtures for the plugin tests: a REAL backend (`coredino serve`) and plugin settings pointing at it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
COREDINO = VENV_BIN / "coredino"

pytest.importorskip("qgis.core")
if str(ROOT) not in sys.path:  # the plugin package lives at the repository root
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tools"))

import vendor_contract  # noqa: E402

vendor_contract.vendor()  # the plugin's copy of the contract, as `make vendor` makes it

from plugin_test_helpers import Backend, backend_env, free_port, wait_for_health  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "desktop: starts the real QGIS desktop under Xvfb (slow, needs xvfb-run)")


@pytest.fixture(scope="session")
def backend(tmp_path_factory) -> Backend:
    """One real `coredino serve` for all plugin tests (on CPU here: jobs take seconds)."""
    base = tmp_path_factory.mktemp("backend")
    cache, codebooks = base / "cache", base / "codebooks"
    codebooks.mkdir()
    port = free_port()
    log = base / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(COREDINO), "serve", "--port", str(port), "--token-file",
                                    str(base / "token"), "--codebooks", str(codebooks)],
                                   env=backend_env(cache), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
    except RuntimeError:
        process.kill()
        raise RuntimeError(log.read_text(errors="replace")) from None
    yield Backend(url, port, base / "token", cache, codebooks, process, log)
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def plugin_settings(qgis_app):
    """Restores the plugin's QgsSettings after the test; yields a function that sets them."""
    from coredino_qgis.settings import PluginSettings

    saved = PluginSettings.load()

    def configure(**values) -> PluginSettings:
        settings = PluginSettings(**values)
        settings.save()
        return settings

    yield configure
    saved.save()


@pytest.fixture
def use_backend(plugin_settings, backend):
    """Plugin settings pointing at the session's backend (explicit URL and token file)."""
    plugin_settings(url=backend.url, token_file=str(backend.token_file))
    return backend


@pytest.fixture
def clean_project(qgis_app):
    from qgis.core import QgsProject

    QgsProject.instance().clear()
    yield QgsProject.instance()
    QgsProject.instance().clear()


@pytest.fixture(scope="session")
def kampala_classified(backend, tmp_path_factory) -> Path:
    """The small Kampala crop classified by the real backend with its embeddings (default codebook)."""
    import time

    folder = tmp_path_factory.mktemp("kampala")
    output = folder / "kampala_classes.tif"
    job = backend.post("/v1/jobs", {"kind": "classify", "params": {
        "input": str(ROOT / "tests" / "data" / "kampala_0p30m_3857.tif"), "output": str(output),
        "options": {"embeddings": True, "device": "cpu"}}})
    deadline = time.monotonic() + 180
    while (record := backend.get(f"/v1/jobs/{job['id']}"))["state"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    assert record["state"] == "done", record["error"]
    return output


@pytest.fixture
def classified(kampala_classified, tmp_path) -> Path:
    """A private copy (classification, its style and embeddings) in the test's folder."""
    import shutil

    for name in ("kampala_classes.tif", "kampala_classes.qml", "kampala_classes_embeddings.tif"):
        shutil.copy(kampala_classified.parent / name, tmp_path / name)
    return tmp_path / "kampala_classes.tif"


@pytest.fixture(scope="module")
def provider(qgis_processing):
    """The coredino Processing provider, registered for one test module."""
    from qgis.core import QgsApplication

    from coredino_qgis.backend_process import BackendLauncher
    from coredino_qgis.processing.provider import CoredinoProvider
    provider = CoredinoProvider(BackendLauncher())
    QgsApplication.processingRegistry().addProvider(provider)
    yield provider
    QgsApplication.processingRegistry().removeProvider(provider)
