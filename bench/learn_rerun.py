"""How long one `coredino learn` rerun takes on a 4096 x 4096 px scene (the click-learn-reclick loop).

    PYTHONPATH=backend nice -n 10 .venv/bin/coredino classify \\
        ../shared/data/scenes/oam_uruguay_montevideo_0p25m.tif -o out/bench/rerun/montevideo.tif --embeddings
    PYTHONPATH=backend .venv/bin/python bench/learn_rerun.py [--repeats 5]

Montevideo (4094 x 3764 px at 0.25 m: 512 x 471 cells of 2 m). Examples: 20 cells per class of
four classes taken from the map's own clusters (a stand-in for clicks), then a rerun with two
more examples, as after a corrective click. The first run reads the embeddings (cold); reruns in
the same process (as in the backend) reuse them. Logistic and k-NN interleaved, each with and
without the confidence and margin maps; medians of ``--repeats`` and the per-stage timings of the
median run, with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
from osgeo import gdal

from common import OUT  # noqa: F401 (offline environment)

from coredino.explore.learn import LearnParams, learn

MAP = OUT / "rerun" / "montevideo.tif"


def clicks(seed: int = 0) -> dict:
    ds = gdal.Open(str(MAP))
    ids, gt = ds.ReadAsArray(), ds.GetGeoTransform()
    rng = np.random.default_rng(seed)
    values, counts = np.unique(ids[ids != 65535], return_counts=True)
    top = values[np.argsort(counts)[::-1][:4]]
    out = {}
    for i, cluster in enumerate(top):
        rows, cols = np.nonzero(ids == cluster)
        pick = rng.choice(len(rows), 20, replace=False)
        out[f"class{i}"] = [(gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5]) for r, c in zip(rows[pick], cols[pick])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    points = clicks()
    more = {k: v + [v[0]] for k, v in points.items()}  # a rerun after clicks
    load_before = os.getloadavg()
    cold = learn(LearnParams(str(MAP), str(OUT / "rerun" / "learned.tif"), points=points))
    runs: dict[tuple, list] = {}
    for r in range(args.repeats):
        for kind in ("logistic", "knn"):
            for confidence in (True, False):
                p = more if r % 2 else points
                result = learn(LearnParams(str(MAP), str(OUT / "rerun" / "learned.tif"), points=p,
                                           classifier=kind, confidence=confidence))
                runs.setdefault((kind, confidence), []).append(result)
    ds = gdal.Open(str(MAP))
    print(f"map {MAP.name}: {ds.RasterXSize} x {ds.RasterYSize} cells; load average before "
          f"{load_before}, after {os.getloadavg()}")
    print(f"cold first run (reads the embeddings): {cold.seconds:.2f} s {cold.timings}")
    print("| classifier | confidence + margin maps | median s | stages of the median run (s) |")
    print("|---|---|---|---|")
    for (kind, confidence), results in runs.items():
        ordered = sorted(results, key=lambda res: res.seconds)
        median = ordered[len(ordered) // 2]
        print(f"| {kind} | {'yes' if confidence else 'no'} | {statistics.median(r.seconds for r in results):.2f} | "
              f"{median.timings} |")


if __name__ == "__main__":
    main()
