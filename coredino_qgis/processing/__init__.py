"""The coredino Processing provider: classify, batch_classify and fit_codebook through the backend."""
