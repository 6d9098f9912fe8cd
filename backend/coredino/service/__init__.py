"""`coredino serve`: the HTTP backend the QGIS plugin talks to (see docs/protocol.md).

jobs.py: one worker thread running engine jobs in order; app.py: the FastAPI app;
schemas.py: request and response models; server.py: start-up, token and discovery files.
"""
