"""coredino: label-free "what is where" maps from aerial and satellite rasters.

One engine behind every door (CLI, HTTP service, QGIS plugin, batch runs):
raster input -> tiling -> encoder -> codebook assignment -> COG writer.
"""

__version__ = "0.1.0"
