"""Intra-op threads against compute workers, for the two hot loops on the CPU.

*intra-op*: one call on the whole batch with every thread inside each op (ONNX Runtime's intra-op
pool; faiss and its BLAS on OpenMP): a join at every op. *workers* (the engine since this
bench): the batch split among one worker per thread (``coredino.threads.split_map``), each
running its share single-threaded: one join per batch. Both alone and beside a *neighbour*: a
thread converting image windows to float about 30 % of the time, like the engine's reader
thread or another program. Real demo tiles and their real features, the bundled model and
codebook; variants interleaved, medians, load recorded; results compared bit for bit. The
search is the exact search's faiss top-2 pass (its float64 re-check of near ties is the same
either way and left out).

    .venv/bin/python bench/workers.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from coredino.threads import configure_threads, split_map, split_rows  # noqa: E402

POLICY = configure_threads()

from common import DEMO, ROOT, interleave, table  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def neighbour(stop: threading.Event) -> None:
    """About 30 % of a core: uint8 -> float32 windows, then a short sleep."""
    window = np.random.default_rng(0).integers(0, 255, (3, 384, 4000), dtype=np.uint8)
    while not stop.is_set():
        for _ in range(3):
            window.astype(np.float32) / np.float32(255)
        time.sleep(0.004)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tiles", type=int, default=16)
    args = ap.parse_args()

    import faiss
    import onnxruntime as ort

    from coredino.codebook import Assigner, Codebook
    from coredino.encoders import ModelSpec, build_encoder
    from coredino.encoders.onnx_export import real_tiles
    from coredino.encoders.runtime import prepare_encoder

    cpu = torch.device("cpu")
    resources = ROOT / "backend" / "coredino" / "resources"
    encoder = build_encoder(ModelSpec("core-dino", "n", str(resources / "coredino-n-default.pt"), 16), cpu)
    book = Codebook.load(str(resources / "coredino-n-default.codebook.npz"))
    side = int(book.recipe["tile"]) * encoder.patch
    assigner = Assigner(book, cpu)
    workers, _ = prepare_encoder(encoder, "onnx", "fp32", side, assigner, DEMO)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = POLICY.threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    intra = ort.InferenceSession(str(workers.path), options, providers=["CPUExecutionProvider"])
    tiles = real_tiles(DEMO, side, args.tiles)
    pixels = tiles.numpy()
    with torch.inference_mode():
        feats = workers(tiles).permute(0, 2, 3, 1).reshape(-1, encoder.dim)
    queries = np.ascontiguousarray(feats.numpy())
    unit = book.centroids / np.linalg.norm(book.centroids, axis=1, keepdims=True)  # cosine codebook
    index = faiss.IndexFlatIP(encoder.dim)
    index.add(np.ascontiguousarray(unit, dtype=np.float32))

    def encoder_intra() -> np.ndarray:
        return np.concatenate([intra.run(None, {"pixels": pixels[i:i + 8]})[0]
                               for i in range(0, len(pixels), 8)])

    def encoder_workers() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([workers(tiles[i:i + 8]).numpy() for i in range(0, len(tiles), 8)])

    def search_intra() -> np.ndarray:
        faiss.omp_set_num_threads(POLICY.threads)
        return index.search(queries, 2)[1]

    def search_part(part: slice) -> np.ndarray:
        faiss.omp_set_num_threads(1)
        return index.search(queries[part], 2)[1]

    def search_workers() -> np.ndarray:
        return np.concatenate(split_map(search_part, split_rows(len(queries), POLICY.threads)))

    variants = {"encoder intra-op": encoder_intra, "encoder workers": encoder_workers,
                "search intra-op": search_intra, "search workers": search_workers}
    rows, results = [], {}
    for setting in ("alone", "beside a neighbour"):
        stop = threading.Event()
        busy = threading.Thread(target=neighbour, args=(stop,), daemon=True)
        if setting != "alone":
            busy.start()
        try:
            times, results[setting], loads = interleave(variants, args.rounds)
        finally:
            stop.set()
        med = {k: statistics.median(v) for k, v in times.items()}
        for stage, unit, count in (("encoder", "ms/tile", len(tiles)), ("search", "us/cell", len(queries))):
            scale = 1e3 if unit == "ms/tile" else 1e6
            a, b = med[f"{stage} intra-op"], med[f"{stage} workers"]
            rows.append([setting, stage, f"{a / count * scale:.2f} {unit}", f"{b / count * scale:.2f} {unit}",
                         f"**{a / b:.2f}x**", f"{min(loads):.1f}-{max(loads):.1f}"])
    same = all(np.array_equal(r["encoder intra-op"], r["encoder workers"]) and
               np.array_equal(r["search intra-op"], r["search workers"]) for r in results.values())
    print(f"{POLICY.threads} threads ({POLICY.wait_policy.lower()}), {len(tiles)} demo tiles of {side} px, "
          f"{len(queries)} cells x {book.k} centroids, {args.rounds} interleaved rounds; "
          f"workers' results identical to intra-op: {same}\n")
    print(table(rows, ["setting", "loop", "intra-op threads", "workers", "speed-up", "load avg"]))


if __name__ == "__main__":
    main()
