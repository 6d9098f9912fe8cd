"""Codebook package on features made from real pixels: file, k-means, colours, assignment, sampling."""

import hashlib

import faiss
import numpy as np
import pytest
import torch
from osgeo import gdal

from coredino.codebook import (Assigner, Codebook, Reservoir, assign, build_recipe,
                               centroid_colors, fit_kmeans)
from coredino.errors import Cancelled, UserError
from coredino.progress import Progress

ENCODER = {"family": "core-dino", "variant": "n", "layer": 19, "patch": 8, "dim": 192,
           "normalisation": "rgb01", "weights_sha256": "ab" * 32, "weights_uri": "student.pt"}


def patches(rgb: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Flattened size x size RGB blocks every ``stride`` pixels, float32 in [0, 1]."""
    w = np.lib.stride_tricks.sliding_window_view(rgb, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return np.ascontiguousarray(w.transpose(1, 2, 0, 3, 4).reshape(-1, 3 * size * size), np.float32) / 255


@pytest.fixture(scope="module")
def rgb(data) -> np.ndarray:
    ds = gdal.Open(str(data / "kampala_0p30m_3857.tif"))
    pixels = ds.ReadAsArray()
    ds = None
    assert pixels.shape == (3, 256, 256)
    return pixels


@pytest.fixture(scope="module")
def feats(rgb) -> np.ndarray:
    """3969 overlapping 8x8 patches as 192-d vectors."""
    return patches(rgb, 8, 4)


@pytest.fixture(scope="module")
def codebook(feats) -> Codebook:
    centroids = fit_kmeans(feats, 32, "cosine", seed=1, niter=10)
    recipe = build_recipe(ENCODER, tile=32, border=4, gsd=0.3, k=32, seed=1, n_features=len(feats),
                          sources=["kampala_0p30m_3857.tif"])
    return Codebook(centroids, centroid_colors(centroids, "cosine", seed=1), "cosine", recipe)


def test_save_load_round_trip_is_exact_and_one_file(codebook, tmp_path):
    path = tmp_path / "k.codebook.npz"
    codebook.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = Codebook.load(path)
    np.testing.assert_array_equal(loaded.centroids, codebook.centroids)
    np.testing.assert_array_equal(loaded.colors, codebook.colors)
    assert loaded.centroids.dtype == np.float32 and loaded.colors.dtype == np.uint8
    assert (loaded.metric, loaded.recipe, loaded.k, loaded.dim) == ("cosine", codebook.recipe, 32, 192)
    assert loaded.sha256 == codebook.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.summary()["encoder"].startswith("core-dino:n@19")
    np.load(path, allow_pickle=False).close()  # plain arrays only


def test_bad_files_are_user_errors_naming_the_file(codebook, tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(UserError, match="nope.npz.*does not exist"):
        Codebook.load(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip file" * 10)
    with pytest.raises(UserError, match="garbage.npz is not a coredino codebook"):
        Codebook.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, centroids=codebook.centroids)
    with pytest.raises(UserError, match="other.npz is not a coredino codebook"):
        Codebook.load(other)
    codebook.save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated.npz"):
        Codebook.load(truncated)
    with np.load(tmp_path / "good.npz") as npz:
        arrays = dict(npz)
    arrays["colors"] = arrays["colors"][:-1]
    np.savez_compressed(tmp_path / "short.npz", **arrays)
    with pytest.raises(UserError, match="short.npz is inconsistent.*colors must be"):
        Codebook.load(tmp_path / "short.npz")


def test_check_matches_rejects_other_weights_or_layer(codebook):
    codebook.check_matches(dict(ENCODER))
    with pytest.raises(UserError, match=f"weights_sha256 '{'ab' * 32}' vs '{'cd' * 32}'.*--weights"):
        codebook.check_matches({**ENCODER, "weights_sha256": "cd" * 32})
    with pytest.raises(UserError, match="fitted with core-dino:n@19.*running encoder is core-dino:n@22"):
        codebook.check_matches({**ENCODER, "layer": 22})


def lloyd_means(x: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    """Mean (normalised for cosine) of all the points nearest to each centroid."""
    if metric == "cosine":
        ids = np.argmax(x @ c.T, axis=1)
    else:
        ids = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    means = np.stack([x[ids == j].mean(0) for j in range(len(c))])
    return means / np.linalg.norm(means, axis=1, keepdims=True) if metric == "cosine" else means


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_kmeans_is_deterministic_and_uses_every_point(feats, metric):
    # 3969 points and k = 4: faiss's default would cluster a 1024-point subsample.
    a = fit_kmeans(feats, 4, metric, seed=3, niter=40)
    b = fit_kmeans(feats, 4, metric, seed=3, niter=40)
    assert a.dtype == np.float32 and a.shape == (4, 192)
    np.testing.assert_array_equal(a, b)
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True) if metric == "cosine" else feats
    if metric == "cosine":
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    # Converged Lloyd on all points: each centroid is the mean of ALL points nearest to it ...
    np.testing.assert_allclose(a, lloyd_means(x, a, metric), atol=1e-4)
    # ... which centroids fitted to faiss's default subsample are not.
    km = faiss.Kmeans(192, 4, niter=40, seed=3, spherical=metric == "cosine")
    km.train(x)
    assert np.abs(km.centroids - lloyd_means(x, km.centroids, metric)).max() > 1e-3


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_kmeans_iterations_equal_one_faiss_call_and_seed_matters(feats, metric):
    ours = fit_kmeans(feats, 16, metric, seed=5, niter=6, device="cpu")  # the faiss path
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True) if metric == "cosine" else feats
    km = faiss.Kmeans(192, 16, niter=6, seed=5, max_points_per_centroid=10**6,
                      spherical=metric == "cosine")
    km.train(x)
    np.testing.assert_array_equal(ours, km.centroids)
    assert not np.array_equal(ours, fit_kmeans(feats, 16, metric, seed=6, niter=6, device="cpu"))


def test_kmeans_reports_progress_and_can_be_cancelled(feats):
    seen = []
    progress = Progress(callback=lambda fraction, message: seen.append(fraction))
    fit_kmeans(feats, 8, "l2", seed=0, niter=4, progress=progress)
    assert seen == [0, 0.25, 0.5, 0.75, 1]

    def cancel_after_two(fraction: float, message: str) -> None:
        if fraction >= 0.5:
            progress.cancel.set()
    progress = Progress(callback=cancel_after_two)
    with pytest.raises(Cancelled):
        fit_kmeans(feats, 8, "l2", seed=0, niter=4, progress=progress)


def test_kmeans_too_few_features(feats):
    with pytest.raises(UserError, match="5000 clusters to 3969 features.*smaller --k"):
        fit_kmeans(feats, 5000, "l2", seed=0)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_assign_equals_brute_force(codebook, feats, metric):
    c = codebook.centroids.astype(np.float64)
    x = feats.astype(np.float64)
    if metric == "cosine":
        expected = np.argmax((x / np.linalg.norm(x, axis=1, keepdims=True)) @ c.T, axis=1)
    else:
        expected = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    t, tc = torch.from_numpy(feats), torch.from_numpy(codebook.centroids)
    ids = assign(t, tc, metric)
    assert ids.dtype == torch.long
    np.testing.assert_array_equal(ids.numpy(), expected)
    np.testing.assert_array_equal(assign(t, tc, metric, chunk=7).numpy(), expected)
    # bfloat16 features (the encoder's autocast output) get the float32 ids of their values
    low = t.to(torch.bfloat16)
    np.testing.assert_array_equal(assign(low, tc, metric, chunk=1000), assign(low.float(), tc, metric))


def test_assigner_matches_assign(codebook, feats):
    t = torch.from_numpy(feats)
    assigner = Assigner(codebook, "cpu")
    expected = assign(t, torch.from_numpy(codebook.centroids), "cosine")
    torch.testing.assert_close(assigner(t), expected)
    torch.testing.assert_close(assigner(t.double()), expected)


def test_colors_deterministic_and_similar_centroids_look_alike(feats):
    centroids = fit_kmeans(feats, 256, "l2", seed=0, niter=10)
    colors = centroid_colors(centroids, "l2", seed=0)
    assert colors.shape == (256, 3) and colors.dtype == np.uint8
    np.testing.assert_array_equal(colors, centroid_colors(centroids, "l2", seed=0))
    d = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    rgbf = colors.astype(np.float64)
    near = np.linalg.norm(rgbf - rgbf[d.argmin(1)], axis=1).mean()
    pairs = np.random.default_rng(0).integers(0, 256, (2000, 2))
    random = np.linalg.norm(rgbf[pairs[:, 0]] - rgbf[pairs[:, 1]], axis=1).mean()
    assert near < 0.5 * random
    assert colors.min() == 0 and colors.max() == 255


@pytest.mark.parametrize("k", [1, 2, 4])
def test_colors_for_tiny_codebooks(feats, k):
    colors = centroid_colors(feats[:k * 100:100], "cosine", seed=0)
    assert colors.shape == (k, 3) and len({tuple(c) for c in colors}) == k


def tagged_stream(feats: np.ndarray, passes: int) -> np.ndarray:
    """``passes`` copies of the features with the row number appended."""
    rows = np.tile(feats, (passes, 1))
    return np.hstack([rows, np.arange(len(rows), dtype=np.float32)[:, None]])


def fill(reservoir: Reservoir, stream: np.ndarray, sizes: list[int]) -> np.ndarray:
    start = 0
    while start < len(stream):
        for size in sizes:
            reservoir.add(stream[start:start + size])
            start += size
    return reservoir.sample()


def test_reservoir_capacity_uniformity_determinism(feats):
    stream = tagged_stream(feats, 10)  # 10 equal blocks, one per pass over the image
    small = Reservoir(5000, 193, seed=0)
    small.add(stream[:3000])
    np.testing.assert_array_equal(small.sample(), stream[:3000])
    sample = fill(Reservoir(4000, 193, seed=0), stream, [1000, 777, 31])
    assert sample.shape == (4000, 193)
    tags = sample[:, -1].astype(int)
    assert len(np.unique(tags)) == 4000  # each row at most once
    np.testing.assert_array_equal(sample[:, :-1], stream[tags, :-1])
    share = np.bincount(tags // len(feats), minlength=10) / 4000
    assert np.all(np.abs(share - 0.1) < 0.025), share  # expected 400 +- 19 rows per block
    again = fill(Reservoir(4000, 193, seed=0), stream, [1000, 777, 31])
    np.testing.assert_array_equal(sample, again)
    assert not np.array_equal(sample, fill(Reservoir(4000, 193, seed=1), stream, [1000, 777, 31]))


def test_reservoir_batches_equal_row_by_row(feats):
    stream = tagged_stream(feats[:300], 2)
    batched = Reservoir(50, 193, seed=7)
    batched.add(stream)
    single = Reservoir(50, 193, seed=7)
    for row in stream:
        single.add(row[None])
    assert batched.seen == single.seen == 600
    np.testing.assert_array_equal(batched.sample(), single.sample())


def test_cpu_search_is_exact_on_real_features_and_near_ties(demo_raster):
    """The CPU search (faiss top-2 + float64 re-check) gives the float64 search's ids, also where
    two centroids are closer than float32 rounding: the default model's real features."""
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles
    from coredino.engine import DEFAULT_CODEBOOK, load_codebook

    book = load_codebook(str(DEFAULT_CODEBOOK))
    encoder = build_encoder(ModelSpec("core-dino", "n", str(DEFAULT_CODEBOOK.parent / "coredino-n-default.pt"), 16),
                            torch.device("cpu"))
    with torch.inference_mode():
        feats = encoder(real_tiles(demo_raster, 384, 2)).permute(0, 2, 3, 1).reshape(-1, 64)
    c32 = torch.nn.functional.normalize(torch.from_numpy(book.centroids).float(), dim=1).numpy()
    # near ties: halfway between two neighbouring centroids, nudged by about one float32 ulp
    rng = np.random.default_rng(0)
    a = rng.integers(0, book.k, 500)
    b = np.argsort(c32[a] @ c32.T, axis=1)[:, -2]
    mid = (c32[a] + c32[b]) / 2 + rng.standard_normal((500, 64)).astype(np.float32) * 1e-7
    x = np.concatenate([feats.numpy(), mid.astype(np.float32)])
    expected = (x.astype(np.float64) @ c32.astype(np.float64).T).argmax(1)
    ids = Assigner(book, "cpu")(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(ids, expected)
    # the float32 matmul alone gets some of the near ties wrong: the re-check is what makes it exact
    float32_ids = (x @ c32.T).argmax(1)
    assert (float32_ids != expected).any()
    for metric in ("cosine", "l2"):  # and the module-level search agrees with brute force in float64
        c = torch.from_numpy(book.centroids[:300])
        got = assign(torch.from_numpy(x[:2000]), c, metric).numpy()
        cc = (torch.nn.functional.normalize(c, dim=1) if metric == "cosine" else c).double().numpy()
        score = x[:2000].astype(np.float64) @ cc.T
        if metric == "l2":
            score -= 0.5 * (c.numpy() * c.numpy()).sum(1).astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(got, score.argmax(1))


def test_blocked_search_equals_full_argmax_on_real_features_and_exact_ties(demo_raster):
    """The GPU search (blocked matmul + running argmax, run here on CPU tensors) gives exactly the
    ids of the whole-row float32 argmax: on the default model's real features (6000 centroids: six
    centroid blocks; several row blocks) and where equal centroids in different blocks tie."""
    from coredino.codebook.assign import CENTROID_BLOCK, ROW_BLOCK, _Scorer
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles
    from coredino.engine import DEFAULT_CODEBOOK, load_codebook

    book = load_codebook(str(DEFAULT_CODEBOOK))
    encoder = build_encoder(ModelSpec("core-dino", "n", str(DEFAULT_CODEBOOK.parent / "coredino-n-default.pt"), 16),
                            torch.device("cpu"))
    with torch.inference_mode():
        feats = encoder(real_tiles(demo_raster, 384, 2)).permute(0, 2, 3, 1).reshape(-1, 64).clone()
    assert book.k > 5 * CENTROID_BLOCK and len(feats) > 4000
    centroids = torch.from_numpy(book.centroids)
    # exact ties: centroid 5 copied into the last block, centroid 4100 into the first
    tied = centroids.clone()
    tied[5990], tied[17] = tied[5], tied[4100]
    for c in (centroids, tied):
        for metric in ("cosine", "l2", "ip"):
            scorer = _Scorer(c, metric)
            scores = feats @ scorer.centroids_t
            if scorer.bias is not None:
                scores += scorer.bias
            expected = scores.argmax(1).numpy()
            np.testing.assert_array_equal(scorer(feats, 65536).numpy(), expected)
            np.testing.assert_array_equal(scorer(feats, 1000).numpy(), expected)  # 5 row blocks
            np.testing.assert_array_equal(_Scorer(c, metric, rows=999, columns=700)(feats, 65536).numpy(), expected)
    # the ties are really hit: rows nearest centroid 5 / 4100 keep the lower index
    scorer = _Scorer(tied, "cosine")
    ids = scorer(feats, 65536).numpy()
    plain = _Scorer(centroids, "cosine")(feats, 65536).numpy()
    assert (plain == 5).any() or (plain == 4100).any()
    np.testing.assert_array_equal(ids[plain == 5], 5)
    np.testing.assert_array_equal(ids[plain == 4100], 17)
    assert 5990 not in ids and 4100 not in ids
    # constructed ties across every block: all equal scores go to centroid 0, as argmax does
    same = _Scorer(torch.ones(3000, 4), "ip")
    np.testing.assert_array_equal(same(torch.ones(5, 4), 2).numpy(), np.zeros(5))
    assert ROW_BLOCK * CENTROID_BLOCK * 4 <= 32 * 2 ** 20  # fits an L2 cache
