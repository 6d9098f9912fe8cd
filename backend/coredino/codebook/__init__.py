"""Codebooks: fitting centroids to features, colouring them, storing them, assigning features."""

from .assign import Assigner, assign
from .codebook import Codebook, build_recipe, upgrade
from .colors import centroid_colors
from .kmeans import fit_kmeans
from .reservoir import Reservoir

__all__ = ["Codebook", "build_recipe", "fit_kmeans", "centroid_colors", "assign", "Assigner",
           "Reservoir", "upgrade"]
