"""Plain-words messages to the QGIS log panel (tag "coredino") and the message bar."""

from qgis.core import Qgis, QgsMessageLog

TAG = "coredino"
INFO = Qgis.MessageLevel.Info
WARNING = Qgis.MessageLevel.Warning
CRITICAL = Qgis.MessageLevel.Critical
SUCCESS = Qgis.MessageLevel.Success


def log(message: str, level=INFO) -> None:
    QgsMessageLog.logMessage(message, TAG, level)


def notify(iface, message: str, level=INFO, duration: int = 8) -> None:
    """Show ``message`` in the message bar (when there is one) and log it."""
    log(message, level)
    bar = iface.messageBar() if iface is not None else None
    if bar is not None:
        bar.pushMessage("coredino", message, level, duration if level != CRITICAL else 0)
