"""Evaluation of frozen backbones: a building-segmentation probe and codebook cluster quality,
always next to a random-init baseline (BatchNorm recalibrated) so gains are visible."""
