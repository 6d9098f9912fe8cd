"""The "coredino explore" dock: Inspect, Find similar and Learn-examples map tools, the detail slider,
the Clusters, Similar and Learn tabs.

Every backend job goes through :class:`ExploreJob` (asynchronous); cluster areas are counted in a
QgsTask: the GUI thread never waits.
"""

from __future__ import annotations

from qgis.core import QgsApplication, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QPixmap
from qgis.PyQt.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .cluster_panel import ClusterPanel, swatch
from .cluster_stats import ClusterStatsTask, cached
from .dock import RASTER_FILTER
from .job_follower import JobFollower
from .explore_style import cluster_colors, highlight_layer
from .layer_info import add_above
from .log import CRITICAL, SUCCESS, notify
from .learn_panel import LearnPanel
from .level_slider import DetailSlider
from .map_tools import ExampleClickTool, InspectTool, SimilarClickTool
from .similar_panel import SimilarPanel, format_area


class ExploreDock(QDockWidget):
    """Signals ``job_finished(message, level)`` after each backend job and ``inspected(text)``."""

    job_finished = pyqtSignal(str, object)
    inspected = pyqtSignal(str)

    def __init__(self, iface, launcher, parent=None):
        super().__init__("coredino explore", parent)
        self.setObjectName("CoredinoExploreDock")
        self.iface = iface
        self.launcher = launcher
        self.job: JobFollower | None = None
        self.highlight: QgsRasterLayer | None = None
        self._pending_inspect = None
        self._inspect_task: ClusterStatsTask | None = None
        self._layer_id = None
        self._build()
        canvas = self.canvas()
        self.inspect_tool = InspectTool(canvas) if canvas is not None else None
        self.similar_tool = SimilarClickTool(canvas) if canvas is not None else None
        self.example_tool = ExampleClickTool(canvas) if canvas is not None else None
        if self.inspect_tool is not None:
            self.inspect_tool.picked.connect(self.inspect_at)
            self.similar_tool.clicked.connect(self.similar_panel.add_click)
            self.example_tool.clicked.connect(self.learn_panel.add_click)
            canvas.mapToolSet.connect(self._map_tool_changed)
        active = iface.activeLayer() if iface is not None else None
        if isinstance(active, QgsRasterLayer):
            self.layer_combo.setLayer(active)
        self._layer_changed(self.layer_combo.currentLayer())

    def _build(self) -> None:
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.layer_combo = QgsMapLayerComboBox(body)
        self.layer_combo.setFilters(RASTER_FILTER)
        self.layer_combo.setToolTip("A classification written by coredino (its cluster map)")
        layout.addWidget(self.layer_combo)
        self.detail_slider = DetailSlider(self, body)
        layout.addWidget(self.detail_slider)
        row = QHBoxLayout()
        self.inspect_button = QPushButton("Inspect", body)
        self.similar_button = QPushButton("Find similar", body)
        for button, tip in ((self.inspect_button, "Click the map: cluster id, colour and share of the area"),
                            (self.similar_button, "Click examples: left = like this, Shift/right = not like this")):
            button.setCheckable(True)
            button.setToolTip(tip)
            row.addWidget(button)
        self.inspect_button.toggled.connect(lambda on: self._use_tool(self.inspect_tool, on))
        self.similar_button.toggled.connect(lambda on: self._use_tool(self.similar_tool, on))
        layout.addLayout(row)
        row = QHBoxLayout()
        self.inspect_swatch = QLabel(body)  # the inspected cluster's colour
        self.inspect_swatch.setFixedSize(16, 16)
        self.inspect_label = QLabel("", body)
        self.inspect_label.setWordWrap(True)
        self.inspect_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.inspect_swatch, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.inspect_label, 1)
        layout.addLayout(row)
        self.tabs = QTabWidget(body)
        self.cluster_panel = ClusterPanel(self, body)
        self.similar_panel = SimilarPanel(self, body)
        self.tabs.addTab(self.cluster_panel, "Clusters")
        self.learn_panel = LearnPanel(self, body)
        self.tabs.addTab(self.similar_panel, "Similar")
        self.tabs.addTab(self.learn_panel, "Learn")
        self.learn_panel.click_button.toggled.connect(lambda on: self._use_tool(self.example_tool, on))
        layout.addWidget(self.tabs, 1)
        for panel in (self.cluster_panel, self.similar_panel, self.learn_panel, self.detail_slider):
            panel.submit.connect(self.run_job)
            panel.status.connect(self.set_status)
        self.progress_bar = QProgressBar(body)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        layout.addWidget(self.progress_bar)
        self.status_label = QLabel("", body)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.setWidget(body)
        self.layer_combo.layerChanged.connect(self._layer_changed)

    # -- helpers -------------------------------------------------------------------------------
    def canvas(self):
        return self.iface.mapCanvas() if self.iface is not None else None

    def current_layer(self) -> QgsRasterLayer | None:
        layer = self.layer_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _layer_changed(self, layer) -> None:
        layer_id = layer.id() if layer is not None else ""
        if layer_id == self._layer_id:  # the combo re-emits when rows move (a layer added above)
            return
        self._layer_id = layer_id
        self.set_highlight([], "")
        self.inspect_label.setText("")
        self.cluster_panel.refresh()
        self.detail_slider.refresh()

    def _use_tool(self, tool, on: bool) -> None:
        canvas = self.canvas()
        if canvas is None or tool is None:
            return
        if on:
            canvas.setMapTool(tool)  # _map_tool_changed unchecks the other buttons
        elif canvas.mapTool() is tool:
            canvas.unsetMapTool(tool)

    def _map_tool_changed(self, tool, _old=None) -> None:
        """Each tool's button shows whether its tool is the canvas's, however the tool was set."""
        for button, mine in ((self.inspect_button, self.inspect_tool), (self.similar_button, self.similar_tool),
                             (self.learn_panel.click_button, self.example_tool)):
            if button.isChecked() != (tool is mine):
                button.blockSignals(True)
                button.setChecked(tool is mine)
                button.blockSignals(False)

    # -- inspect -------------------------------------------------------------------------------
    def inspect_at(self, point: QgsPointXY) -> None:
        """The cluster under ``point`` (canvas CRS): id, colour, share of the layer; highlight its cells."""
        layer = self.current_layer()
        if layer is None:
            self.set_status("Choose a classification layer to inspect.")
            return
        canvas = self.canvas()
        if canvas is not None:
            point = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                           QgsProject.instance()).transform(point)
        value, ok = layer.dataProvider().sample(QgsPointXY(point), 1)
        if not ok or value != value:  # outside, or nodata (NaN)
            self.inspect_label.setText("No cluster here (outside the layer or no data).")
            self.inspect_swatch.setPixmap(QPixmap())
            self.set_highlight([], "")
            self.inspected.emit(self.inspect_label.text())
            return
        value = int(value)
        stats = cached(layer)
        if self.cluster_panel.table.rowCount():  # select it in the table (Ctrl: add), which highlights
            self.cluster_panel.select_values([value], add=self.inspect_tool.additive)
        else:
            self.set_highlight([value], f"cluster {value}")
        if stats is not None:
            self._show_inspect(layer, value, stats, "")
            return
        self._pending_inspect = value  # count once in the background, then answer the latest click
        self.inspect_label.setText(f"cluster {value}: measuring its area...")
        if self._inspect_task is None:
            self._inspect_task = ClusterStatsTask(layer)
            self._inspect_task.done.connect(lambda s, error: self._inspect_counted(layer, s, error))
            QgsApplication.taskManager().addTask(self._inspect_task)

    def _inspect_counted(self, layer, stats, error: str) -> None:
        self._inspect_task = None
        if layer is self.current_layer():
            self._show_inspect(layer, self._pending_inspect, stats, error)

    def _show_inspect(self, layer, value: int, stats, error: str) -> None:
        color = cluster_colors(layer).get(value)
        hex_color = color.name() if color is not None else "?"
        if stats is None:
            text = f"cluster {value} ({hex_color}); area unknown: {error}"
        else:
            text = (f"cluster {value} ({hex_color}): {100 * stats.share(value):.2f} % of the layer's area, "
                    f"{format_area(stats.area(value))}")
        self.inspect_label.setText(text)
        self.inspect_swatch.setPixmap(swatch(color).pixmap(16, 16) if color is not None else QPixmap())
        self.inspected.emit(text)

    def set_highlight(self, values, label: str) -> None:
        """Show only ``values`` of the current layer in magenta above it (an empty list removes it)."""
        project = QgsProject.instance()
        if self.highlight is not None:
            if project.mapLayer(self.highlight.id()) is not None:
                project.removeMapLayer(self.highlight.id())
            self.highlight = None
        layer = self.current_layer()
        if layer is None or not values:
            return
        overlay = highlight_layer(layer, values, label)
        if overlay is not None:
            self.layer_combo.setExceptedLayerList([overlay])  # an overlay is not a classification to pick
            self.highlight = add_above(overlay, layer, replace=False)
            if self.iface is not None:
                self.iface.setActiveLayer(layer)

    # -- jobs ----------------------------------------------------------------------------------
    def run_job(self, params, on_done) -> None:
        """Run a job given by its contract parameters; ``on_done(result)`` returns the status text."""
        if self.job is not None:
            self.set_status("A coredino job is running; wait for it to end.")
            return
        self.job = JobFollower(self.launcher, params, self)
        self.job.progress.connect(self._progress)
        self.job.finished.connect(lambda result: self._job_done(result, on_done))
        self.job.job_failed.connect(lambda error: self._job_over(self.job.describe(error), CRITICAL))
        self.job.cancelled.connect(lambda: self._job_over("Cancelled; no output was written.", CRITICAL))
        self.job.failed.connect(lambda message: self._job_over(message, CRITICAL))
        self.job.start()

    def _progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(int(1000 * fraction))
        self.set_status(message)

    def _job_done(self, result, on_done) -> None:
        message = on_done(result)
        self._job_over(message, CRITICAL if message.startswith("QGIS cannot open") else SUCCESS)

    def _job_over(self, message: str, level) -> None:
        if self.job is not None:
            self.job.deleteLater()
        self.job = None
        self.progress_bar.setValue(0)
        self.set_status(message)
        notify(self.iface, message, level)
        self.job_finished.emit(message, level)

    def shutdown(self) -> None:
        """Plugin unload: drop the map tools, the highlight and any job being followed."""
        canvas = self.canvas()
        for tool in (self.inspect_tool, self.similar_tool, self.example_tool):
            if canvas is not None and tool is not None and canvas.mapTool() is tool:
                canvas.unsetMapTool(tool)
        if self.similar_tool is not None:
            self.similar_tool.clear_markers()
        self.set_highlight([], "")
        self.detail_slider.drop_view()
        if self.job is not None:
            self.job.abandon()
            self.job = None
