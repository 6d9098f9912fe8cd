"""Evidence for issue #10: a batch of 10 hostile rasters, killed mid-run (SIGTERM, then SIGKILL) and
resumed, every output validated as a COG; then two processes writing one output at once.

    .venv/bin/python tools/batch_kill_resume.py [WORKDIR] [--codebook C]

The 10 inputs are cut from the real scenes in tests/data and resources/: RGB crops, a Float32 copy
with NaN and inf pixels, a UInt16 retype, a panchromatic UInt16 in EPSG:4326, a 4-band NAIP crop, a
crop with an alpha band, a Web-Mercator crop, a truncated GeoTIFF (its first 200 kB) and a VRT
of 40,000 x 40,000 px (10 km at 0.25 m; ``--huge-side``) holding one small scene in its middle.
Prints a transcript.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal
from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[1]
DATA, DEMO = ROOT / "tests" / "data", ROOT / "resources" / "montevideo_0p25m_demo.tif"


def make_inputs(folder: Path, side: int = 40_000) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    caranavi = DATA / "caranavi_collar_0p25m.tif"
    gdal.Translate(str(folder / "01_montevideo_rgb.tif"), str(DEMO), srcWin=[0, 0, 384, 384])
    gdal.Translate(str(folder / "02_caranavi_collar.tif"), str(caranavi), srcWin=[0, 0, 384, 384])
    gdal.Translate(str(folder / "03_uint16.tif"), str(DEMO), srcWin=[400, 400, 384, 384],
                   outputType=gdal.GDT_UInt16, scaleParams=[[0, 255, 0, 16383]])
    floats = gdal.Translate(str(folder / "04_float_nan_inf.tif"), str(DEMO), srcWin=[800, 0, 384, 384],
                            outputType=gdal.GDT_Float32)
    a = floats.ReadAsArray()
    a[:, 10, 10], a[1, 200, 50], a[2, 300:, :] = np.nan, np.inf, -np.inf
    for b in range(3):
        floats.GetRasterBand(b + 1).WriteArray(a[b])
    floats = None
    gdal.Translate(str(folder / "05_pan_uint16_4326.tif"), str(DATA / "lasvegas_pan_uint16_4326.tif"))
    gdal.Translate(str(folder / "06_naip_rgbn.tif"), str(DATA / "naip_rgbn_5m.tif"), srcWin=[0, 0, 48, 48])
    gdal.Translate(str(folder / "07_alpha.tif"), str(caranavi), srcWin=[600, 300, 384, 384],
                   bandList=[1, 2, 3, "mask"], creationOptions=["ALPHA=YES"])
    gdal.Translate(str(folder / "08_kampala_3857.tif"), str(DATA / "kampala_0p30m_3857.tif"))
    (folder / "09_truncated.tif").write_bytes(caranavi.read_bytes()[:200_000])
    src = gdal.Open(str(caranavi))
    gt = src.GetGeoTransform()
    x0, y0 = gt[0] - (side // 2) * gt[1], gt[3] - (side // 2) * gt[5]
    huge = gdal.Translate(str(folder / "10_huge_canvas.vrt"), src, format="VRT",
                          outputBounds=[x0, y0, x0 + side * gt[1], y0 + side * gt[5]], width=side, height=side)
    huge = src = None


def listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    hidden = [n for n in names if n.startswith(".")]
    done = [n for n in names if n.endswith("_classes.tif")]
    return f"{len(done)} outputs, hidden files: {hidden or 'none'}"


def run_batch(args: list[str], out: Path, kill: int | None = None, after: int = 0) -> int:
    """Run `coredino batch`; with ``kill``, send that signal once ``after`` outputs exist."""
    command = [sys.executable, "-m", "coredino.cli", "batch", *args]
    print(f"$ coredino batch {' '.join(args)}" + (f"   # {signal.Signals(kill).name} after {after} outputs" if kill else ""))
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill is not None:
        while proc.poll() is None and len(list(out.glob("*_classes.tif"))) < after:
            time.sleep(0.2)
        time.sleep(1.0)  # mid-way through the next raster
        proc.send_signal(kill)
    stdout, stderr = proc.communicate()
    lines = [l for l in (stderr.splitlines() + stdout.splitlines()) if l.startswith(("coredino", "FAILED", "batch"))]
    for line in lines:
        print(f"  {line}")
    print(f"  exit {proc.returncode} after {time.monotonic() - start:.0f} s; {listing(out)}")
    return proc.returncode


def validate_outputs(out: Path) -> None:
    print("$ validate_cloud_optimized_geotiff + gdalinfo on every output")
    for path in sorted(out.glob("*_classes.tif")):
        warnings, errors, _ = validate(str(path), full_check=True)
        ds = gdal.Open(str(path))
        band = ds.GetRasterBand(1)
        layout = ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE")
        stats = band.ReadAsArray(buf_xsize=min(ds.RasterXSize, 2048), buf_ysize=min(ds.RasterYSize, 2048))
        classified = float((stats != band.GetNoDataValue()).mean())
        print(f"  {path.name}: {'valid COG' if not errors else 'INVALID ' + '; '.join(errors)}"
              f" (LAYOUT={layout}, {ds.RasterXSize}x{ds.RasterYSize} cells, {band.GetOverviewCount()} overviews, "
              f"{classified:.1%} classified{', ' + str(len(warnings)) + ' warnings' if warnings else ''})")
        ds = None


def two_writers(source: Path, out: Path, codebook: list[str]) -> None:
    print(f"$ two `coredino classify {source.name} -o {out.name}` at once")
    procs = [subprocess.Popen([sys.executable, "-m", "coredino.cli", "classify", str(source), "-o", str(out),
                               *codebook], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        stdout, stderr = proc.communicate()
        last = [l for l in (stderr.splitlines() + stdout.splitlines()) if l.startswith(("coredino:", str(out)))]
        print(f"  exit {proc.returncode}: {last[-1] if last else ''}")
    _, errors, _ = validate(str(out), full_check=True)
    print(f"  {out.name}: {'valid COG' if not errors else errors}; {listing(out.parent)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", nargs="?", help="default: a new temporary folder")
    parser.add_argument("--codebook", help="codebook (default: the bundled one)")
    parser.add_argument("--huge-side", type=int, default=40_000,
                        help="width and height in pixels of the mostly empty VRT (default: %(default)s)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="coredino-evidence-"))
    inputs, out = work / "in", work / "out"
    make_inputs(inputs, args.huge_side)
    codebook = ["--codebook", args.codebook] if args.codebook else []
    print(f"# {work}: {len(list(inputs.iterdir()))} inputs: {', '.join(sorted(p.name for p in inputs.iterdir()))}")
    batch = [str(inputs), str(out), "--pattern", "*.*", *codebook]
    run_batch(batch, out, signal.SIGTERM, after=2)
    run_batch(batch, out, signal.SIGKILL, after=5)
    run_batch(batch, out)
    run_batch(batch, out)  # nothing left to do
    validate_outputs(out)
    two_writers(inputs / "01_montevideo_rgb.tif", work / "race" / "same.tif", codebook)
    return 0


if __name__ == "__main__":
    sys.exit(main())
