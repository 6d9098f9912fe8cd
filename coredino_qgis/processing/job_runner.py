"""Running one backend job to completion from a Processing algorithm.

Algorithms already run outside the GUI thread (or inside ``processing.run`` on a script's
thread), so this waits synchronously: blocking HTTP requests and short sleeps, checking
``feedback.isCanceled()`` between polls and asking the backend to cancel when it is.
"""

from __future__ import annotations

import time

from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtCore import QEventLoop, QMetaObject, Qt, QThread, QTimer

from ..backend_process import START_TIMEOUT_S, resolve_connection
from ..client import BlockingBackendClient, protocol_problem
from ..job_specs import FINAL_STATES
from ..settings import PluginSettings

POLL_S = 0.4
MAX_MISSES = 3

#: the plugin's BackendLauncher (set by the plugin); lets algorithms start a backend too
launcher = None


def _in_gui_thread() -> bool:
    app = QgsApplication.instance()
    return app is not None and QThread.currentThread() == app.thread()


def wait(seconds: float) -> None:
    """Sleep without freezing the GUI when called on the GUI thread."""
    if _in_gui_thread():
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()
    else:
        time.sleep(seconds)


def _start_backend(feedback: QgsProcessingFeedback, url: str) -> None:
    feedback.pushInfo(f"No backend answers at {url}; starting one with the Python from Settings...")
    if _in_gui_thread():
        launcher.start_from_settings()
    else:
        QMetaObject.invokeMethod(launcher, "start_from_settings", Qt.ConnectionType.QueuedConnection)
    deadline = time.monotonic() + START_TIMEOUT_S
    wait(0.5)
    while time.monotonic() < deadline and not feedback.isCanceled():
        if launcher.is_ready():
            return
        if launcher.last_error:
            raise QgsProcessingException(launcher.last_error)
        wait(0.5)
    raise QgsProcessingException(launcher.last_error or f"The backend did not start within {START_TIMEOUT_S:.0f} s.")


def connect(feedback: QgsProcessingFeedback) -> tuple[BlockingBackendClient, dict]:
    """A client of a reachable backend (started when Settings allow) and its capabilities."""
    settings = PluginSettings.load()
    connection = resolve_connection(settings)
    health = BlockingBackendClient(connection.url).get("/v1/health", timeout_s=5.0)
    if not health.ok and health.unreachable and launcher is not None and settings.python:
        _start_backend(feedback, connection.url)
        connection = resolve_connection(settings)
        health = BlockingBackendClient(connection.url).get("/v1/health", timeout_s=5.0)
    if not health.ok:
        raise QgsProcessingException(health.error)
    problem = protocol_problem(connection.url, health.data or {})
    if problem:
        raise QgsProcessingException(problem)
    client = BlockingBackendClient(connection.url, connection.token(), connection.token_file)
    caps = client.get("/v1/capabilities")
    if not caps.ok:
        raise QgsProcessingException(caps.error)
    problem = protocol_problem(connection.url, caps.data or {})
    if problem:
        raise QgsProcessingException(problem)
    return client, caps.data or {}


def run_job(client: BlockingBackendClient, spec: dict, feedback: QgsProcessingFeedback) -> dict:
    """Submit ``spec``, follow it with progress in ``feedback``; return the job's ``result``."""
    answer = client.post("/v1/jobs", spec)
    if not answer.ok:
        raise QgsProcessingException(answer.error)
    record = answer.data or {}
    job_id = record.get("id")
    feedback.pushInfo(f"Backend job {job_id} ({spec.get('kind')}) submitted to {client.url}")
    last_message, misses, cancel_sent, announced_queue = "", 0, False, False
    while record.get("state") not in FINAL_STATES:
        if feedback.isCanceled() and not cancel_sent:
            cancel_sent = True
            feedback.pushInfo("Cancelling the backend job...")
            client.post(f"/v1/jobs/{job_id}/cancel", timeout_s=10.0)
        wait(POLL_S)
        answer = client.get(f"/v1/jobs/{job_id}", timeout_s=10.0)
        if not answer.ok:
            misses += 1
            if answer.status or misses >= MAX_MISSES:
                raise QgsProcessingException(
                    answer.error if answer.status else
                    f"The coredino backend at {client.url} stopped answering while the job was running "
                    "(it was closed or crashed); start it again and re-run the algorithm.")
            continue
        misses = 0
        record = answer.data or {}
        if record.get("state") == "queued" and not announced_queue:
            announced_queue = True
            feedback.pushInfo("The backend is busy with another job; this one is queued behind it.")
        message = record.get("message") or ""
        if message and message != last_message:
            last_message = message
            feedback.setProgressText(message)
        feedback.setProgress(100.0 * float(record.get("progress") or 0))
    state = record.get("state")
    if state == "failed":
        raise QgsProcessingException(f"The backend job failed: {record.get('error') or 'no reason given'}")
    if state == "cancelled":
        raise QgsProcessingException("Cancelled; the backend removed any partial output.")
    feedback.setProgress(100.0)
    return record.get("result") or {}
