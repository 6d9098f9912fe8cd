"""Run the hostile inputs of issue #10 section 3 through the `coredino` CLI and print what happens.

    .venv/bin/python tools/hostile_inputs.py [--backend DIR] [--timeout S]

``--backend`` is the folder put first on PYTHONPATH for the CLI runs (default: this checkout's
``backend/``; point it at another checkout's to see its behaviour). Every case runs in a fresh
process under a small 16-cluster codebook (core-dino n, random weights, made here), on crops of
the real scenes in tests/data. One line per case: exit code, the last line the CLI printed, and
what became of the files involved (input intact, leftovers, marker of code run from a checkpoint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[1]
CARANAVI = ROOT / "tests" / "data" / "caranavi_collar_0p25m.tif"


def crop(out: Path, dtype: int = gdal.GDT_Byte, edit=None, nodata=None) -> Path:
    ds = gdal.Translate(str(out), str(CARANAVI), srcWin=[600, 400, 96, 96], outputType=dtype,
                        scaleParams=None if dtype == gdal.GDT_Byte else [[0, 255, 0, 1]] if dtype in (
                            gdal.GDT_Float32,) else [[0, 255, 0, 4000]], noData=nodata)
    if edit is not None:
        a = ds.ReadAsArray()
        edit(a)
        for b in range(3):
            ds.GetRasterBand(b + 1).WriteArray(a[b])
    ds = None
    return out


def tiny_codebook(path: Path, **recipe_changes) -> Path:
    """A valid tiny codebook (or one with recipe fields / centroids changed)."""
    import torch
    from coredino.codebook import Codebook, build_recipe, centroid_colors
    from coredino.encoders import ModelSpec, build_encoder
    encoder = build_encoder(ModelSpec("core-dino", "n", "random", 16), torch.device("cpu"))
    centroids = np.random.default_rng(0).normal(size=(16, encoder.dim)).astype(np.float32)
    recipe = build_recipe(encoder.recipe(), tile=8, border=1, gsd=0.5, k=16, seed=0, n_features=0, sources=[])
    recipe["metric"] = "cosine"
    colors = centroid_colors(centroids, "cosine", 0)
    if recipe_changes.pop("nan_centroid", False):
        centroids[3, 0] = np.nan
    recipe.update(recipe_changes)
    np.savez_compressed(path, format=np.array("coredino-codebook/1"), centroids=centroids, colors=colors,
                        metric=np.array("cosine"), recipe=np.array(json.dumps(recipe)))
    return path


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.is_file() else "missing"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=str(ROOT / "backend"))
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per case (default: %(default)s)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": args.backend, "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp(prefix="coredino-hostile-"))
    cb = tiny_codebook(work / "tiny.codebook.npz")
    opts = ["--codebook", str(cb), "--device", "cpu"]

    def run(label: str, argv: list[str], check=lambda: "") -> None:
        try:
            p = subprocess.run([sys.executable, "-m", "coredino.cli", *argv], capture_output=True, text=True,
                               env=env, timeout=args.timeout, cwd=work)
            lines = [l for l in (p.stderr + p.stdout).splitlines() if l.strip() and "%|" not in l
                     and "XDG_RUNTIME" not in l]
            traceback = " [Traceback]" if "Traceback" in p.stderr else ""
            last = lines[-1] if lines else ""
            outcome = f"exit {p.returncode}{traceback}: {last[:220]}"
        except subprocess.TimeoutExpired:
            outcome = f"still running after {args.timeout:.0f} s (killed)"
        extra = check()
        print(f"| {label} | {outcome.replace('|', '/')} | {extra} |", flush=True)

    def leftovers(folder: Path) -> str:
        hidden = sorted(p.name for p in folder.rglob(".*")) if folder.exists() else []
        return f"leftovers: {hidden or 'none'}"

    print("| case | CLI | files |\n|---|---|---|")
    # D1
    one_nan = crop(work / "d1_nan.tif", gdal.GDT_Float32, lambda a: a.__setitem__((slice(None), 5, 7), np.nan))
    run("D1 Float32, one NaN pixel", ["classify", str(one_nan), "-o", str(work / "d1" / "nan.tif"), *opts])
    for name, dtype, nodata in (("all NaN Float32", gdal.GDT_Float32, None), ("all-0 Byte", gdal.GDT_Byte, None),
                                ("all-nodata UInt16", gdal.GDT_UInt16, 0)):
        fill = np.nan if dtype == gdal.GDT_Float32 else 0
        path = crop(work / f"d1_{dtype}.tif", dtype, lambda a: a.fill(fill), nodata)
        out = work / "d1" / f"{dtype}.tif"
        run(f"D1 {name}", ["classify", str(path), "-o", str(out), *opts],
            lambda out=out: f"output written: {out.exists()}")
    # D3
    truncated = work / "d3" / "truncated.tif"
    truncated.parent.mkdir()
    big = gdal.Translate(str(work / "big.tif"), str(CARANAVI))
    big = None
    truncated.write_bytes((work / "big.tif").read_bytes()[:200_000])
    crop(work / "d3" / "good.tif")
    run("D3 truncated GeoTIFF (classify)", ["classify", str(truncated), "-o", str(work / "d3o" / "t.tif"), *opts])
    run("D3 batch with it and a good one", ["batch", str(truncated.parent), str(work / "d3b"), *opts],
        lambda: f"outputs: {sorted(p.name for p in (work / 'd3b').glob('*.tif')) if (work / 'd3b').exists() else []}")
    # D4, D7, R7
    src = crop(work / "d4_src.tif")
    before = sha(src)
    run("D4 -o equal to the input", ["classify", str(src), "-o", str(src), *opts],
        lambda: f"input unchanged: {sha(src) == before}")
    notes = work / "d4_notes.tif"
    mine = b"my notes\n"
    notes.write_bytes(mine)
    run("D4 -o an existing non-coredino file", ["classify", str(src), "-o", str(notes), *opts],
        lambda: f"file kept: {notes.read_bytes() == mine}")
    c = work / "d4" / "c.tif"
    subprocess.run([sys.executable, "-m", "coredino.cli", "classify", str(src), "-o", str(c), "--embeddings", *opts],
                   capture_output=True, env=env, cwd=work)
    c_sha = sha(c)
    ds = gdal.Open(str(c))
    gt = ds.GetGeoTransform()
    ds = None
    x, y = gt[0] + 3.5 * gt[1], gt[3] + 3.5 * gt[5]
    run("D4 similar -o the classification", ["similar", str(c.with_name("c_embeddings.tif")), "-o", str(c),
                                             f"--positive={x},{y}"],
        lambda: f"classification unchanged: {sha(c) == c_sha}")
    run("D4 reclassify -o its input", ["reclassify", str(c), "-o", str(c), "--class", "a=1,2"],
        lambda: f"classification unchanged: {sha(c) == c_sha}")
    (work / "d7dir").mkdir()
    run("D7 -o an existing folder", ["classify", str(src), "-o", str(work / "d7dir"), *opts],
        lambda: f"files beside it: {sorted(p.name for p in work.glob('d7dir*'))}")
    run("R7 -o x.png", ["classify", str(src), "-o", str(work / "r7" / "x.png"), *opts],
        lambda: f"written: {sorted(p.name for p in (work / 'r7').iterdir()) if (work / 'r7').exists() else []}")
    # D6
    ckpt_dir = work / "d6"
    ckpt_dir.mkdir()
    marker = work / "d6_code_ran"
    import torch
    torch.save({"format": "coredino-train/1", "payload": _Payload(str(marker))}, ckpt_dir / "checkpoint.pt")
    run("D6 crafted checkpoint.pt + train --resume", ["train", str(src), "-o", str(ckpt_dir), "--resume",
                                                      "--steps", "1", "--scale", "n", "--device", "cpu"],
        lambda: f"code ran: {marker.exists()}")
    # D8
    d8 = work / "d8" / "in"
    d8.mkdir(parents=True)
    crop(d8 / "a.tif")
    for pattern in ("../../x/*.tif", "/etc/*.conf"):
        run(f"D8 batch --pattern '{pattern}'", ["batch", str(d8), str(work / "d8" / "out"), "--pattern", pattern, *opts])
    # D9
    for label, change in (("tile -5", {"tile": -5}), ("tile 100000", {"tile": 100000}),
                          ("gsd 0.0005", {"gsd": 0.0005}), ("NaN centroids", {"nan_centroid": True})):
        bad = tiny_codebook(work / f"d9_{label.replace(' ', '_')}.codebook.npz", **change)
        run(f"D9 codebook {label}", ["classify", str(src), "-o", str(work / "d9" / f"{label[:4]}.tif"),
                                     "--codebook", str(bad), "--device", "cpu"])
    # D10
    for point in ("nan,nan", "inf,1e308"):
        run(f"D10 similar --positive={point}", ["similar", str(c), "-o", str(work / "d10.tif"), f"--positive={point}"])
    # R9
    r9 = work / "r9"
    r9.mkdir()
    crop(r9 / "a.tif")
    for i in (1, 2):
        run(f"R9 batch DIR DIR, run {i}", ["batch", str(r9), str(r9), "--pattern", "*.tif", *opts],
            lambda: f"files: {sorted(p.name for p in r9.iterdir() if p.suffix == '.tif')}")
    print(f"\n(work folder {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
