"""Exploring a classification without re-running the encoder.

embeddings.py: ``<stem>_embeddings.tif`` written beside a classification (``--embeddings``) and
read back; similar.py: cosine similarity to clicked places; classes.py: named classes (cluster
ids -> class) and their JSON file; reclassify.py: a named-class map and its areas; polygonize.py:
one class as polygons in a GeoPackage; rasters.py: what they share (opening, points, atomic COGs).

Import from the submodules (the engine imports embeddings.py only).
"""
