"""coredino QGIS plugin: a thin client of the coredino backend (`coredino serve`).

QGIS imports this package and calls :func:`classFactory`. Nothing here imports torch or the
``coredino`` backend package: all heavy work happens in the backend process, over HTTP.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import CoredinoPlugin

    return CoredinoPlugin(iface)
