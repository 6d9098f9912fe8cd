"""The "coredino" Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..backend_process import BackendLauncher

from .base_algorithm import ICON
from .batch_classify_algorithm import BatchClassifyAlgorithm
from .classify_algorithm import ClassifyAlgorithm
from .cluster_algorithm import ClusterAlgorithm
from .fit_codebook_algorithm import FitCodebookAlgorithm
from .learn_algorithm import LearnAlgorithm
from .levels_algorithm import LevelsAlgorithm
from .polygonize_algorithm import PolygonizeAlgorithm
from .reclassify_algorithm import ReclassifyAlgorithm
from .similar_algorithm import SimilarAlgorithm


class CoredinoProvider(QgsProcessingProvider):
    """The algorithms; ``launcher`` starts a backend for them when none answers."""

    def __init__(self, launcher: BackendLauncher):
        super().__init__()
        self.launcher = launcher

    def id(self):
        return "coredino"

    def name(self):
        return "coredino"

    def longName(self):
        return "coredino: label-free classes from aerial rasters (runs in the coredino backend)"

    def icon(self):
        return QIcon(ICON)

    def loadAlgorithms(self):
        for algorithm in (ClassifyAlgorithm(), BatchClassifyAlgorithm(), FitCodebookAlgorithm(),
                          ClusterAlgorithm(), SimilarAlgorithm(), ReclassifyAlgorithm(), PolygonizeAlgorithm(),
                          LearnAlgorithm(), LevelsAlgorithm()):
            self.addAlgorithm(algorithm)
