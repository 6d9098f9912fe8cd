"""The coredino Processing provider: classify, batch_classify, fit_codebook, similar, reclassify and polygonize through the backend."""
