"""Fuzz `coredino classify` with small hostile rasters made from real imagery (issue #10).

A seeded generator crops the shipped scenes (Montevideo RGB, Caranavi with its collar, the Las
Vegas panchromatic UInt16, NAIP RGBN) and shuffles, repeats and retypes their bands (1-6 bands;
Byte, UInt16, Int16, Float32, Float64), adds nodata values, alpha or mask bands, NaN/inf pixels,
rotated or tiny geotransforms and odd CRSs (geographic, Web/World Mercator, polar stereographic,
US feet, a custom orthographic, none at all). Every case must end in exit 0 with a valid COG whose
extent covers the valid pixels, or exit 2 with one line; never a traceback, never a leftover file.

CASES in-process cases (the CLI's ``main``) plus SUBPROCESS_CASES through a real ``coredino``
process; ``COREDINO_FUZZ_CASES=N`` runs N in-process cases instead (e.g. 300 for a long soak).
"""

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from osgeo_utils.samples.validate_cloud_optimized_geotiff import validate

from coredino.cli import main

gdal.UseExceptions()

CASES = int(os.environ.get("COREDINO_FUZZ_CASES", "100"))
SUBPROCESS_CASES = 2
SEED = 20261127
DTYPES = {gdal.GDT_Byte: np.uint8, gdal.GDT_UInt16: np.uint16, gdal.GDT_Int16: np.int16,
          gdal.GDT_Float32: np.float32, gdal.GDT_Float64: np.float64}
# (CRS, origin x, y in its units, metres per unit at the origin (x, y))
CRSS = [
    ("EPSG:32721", 574000.0, 6140000.0, 1.0),  # UTM 21S (Montevideo)
    ("EPSG:4326", -56.16, -34.90, 1 / 111_320.0),  # geographic degrees
    ("EPSG:3857", -6_252_000.0, -4_148_000.0, 1.22),  # Web Mercator: 1.22 units per ground metre here
    ("EPSG:3395", -6_252_000.0, -4_126_000.0, 1.22),  # World Mercator
    ("EPSG:3031", -1_200_000.0, 900_000.0, 1.0),  # Antarctic polar stereographic
    ("EPSG:2263", 980_000.0, 200_000.0, 3.28084),  # NY State Plane, US feet
    ("+proj=ortho +lat_0=10 +lon_0=20 +datum=WGS84 +units=m +no_defs", 1000.0, 2000.0, 1.0),
    (None, 0.0, 0.0, 1.0),  # no CRS: a one-line error
]


@dataclass
class Case:
    path: Path
    valid: np.ndarray  # (h, w) bool: the pixels the generator made valid (finite, not nodata/alpha/mask)
    description: str


def _imagery(data: Path, demo_raster: Path) -> list[np.ndarray]:
    """(bands, 128, 128) float64 crops of the real scenes, values as stored."""
    crops = []
    for path, x, y in [(demo_raster, 700, 500), (data / "caranavi_collar_0p25m.tif", 0, 0),
                       (data / "lasvegas_pan_uint16_4326.tif", 100, 100), (data / "naip_rgbn_5m.tif", 50, 50)]:
        ds = gdal.Open(str(path))
        side = min(128, ds.RasterXSize - x, ds.RasterYSize - y)
        a = ds.ReadAsArray(x, y, side, side).astype(np.float64)
        crops.append(a[None] if a.ndim == 2 else a)
        ds = None
    return crops


def make_case(rng: np.random.Generator, imagery: list[np.ndarray], folder: Path, i: int) -> Case:
    src = imagery[rng.integers(len(imagery))]
    h, w = (int(v) for v in rng.integers(1, 57, 2)) if rng.random() < 0.9 else (1, int(rng.integers(1, 4)))
    y, x = int(rng.integers(0, src.shape[1] - h + 1)), int(rng.integers(0, src.shape[2] - w + 1))
    n = int(rng.integers(1, 7))
    pixels = src[rng.integers(0, src.shape[0], n), y:y + h, x:x + w]  # shuffled / repeated bands
    gdt = list(DTYPES)[rng.integers(len(DTYPES))]
    span = pixels.max() if pixels.size else 1.0
    if gdt == gdal.GDT_Byte:
        pixels = np.clip(pixels * 255.0 / max(span, 1.0), 0, 255)
    elif gdt == gdal.GDT_UInt16:
        pixels = np.clip(pixels * rng.uniform(1, 65535 / max(span, 1.0)), 0, 65535)
    elif gdt == gdal.GDT_Int16:
        pixels = np.clip(pixels * rng.uniform(0.5, 30000 / max(span, 1.0)) - rng.uniform(0, 5000), -32768, 32767)
    else:
        pixels = pixels * 10.0 ** rng.uniform(-4, 4) + rng.uniform(-1e3, 1e3)
    pixels = pixels.astype(DTYPES[gdt])
    valid = np.ones((h, w), bool)
    notes = [f"{n} x {gdal.GetDataTypeName(gdt)} {w}x{h}"]

    floating = gdt in (gdal.GDT_Float32, gdal.GDT_Float64)
    if floating and rng.random() < 0.5:
        kind = ["one NaN", "one +inf", "NaN rows", "all NaN", "-inf and NaN"][rng.integers(5)]
        if kind == "one NaN":
            pixels[:, h // 2, w // 2] = np.nan
        elif kind == "one +inf":
            pixels[rng.integers(n), h // 2, w // 2] = np.inf
        elif kind == "NaN rows":
            pixels[:, : max(1, h // 3)] = np.nan
        elif kind == "all NaN":
            pixels[:] = np.nan
        else:
            pixels[0, -1, :] = -np.inf
            pixels[-1, 0, :] = np.nan
        valid &= np.isfinite(pixels).all(axis=0)
        notes.append(kind)
    if rng.random() < 0.05:
        pixels[:] = 0
        notes.append("all zero")

    masking = ["none", "nodata", "alpha", "mask", "nodata+mask"][rng.integers(5)]
    if masking == "alpha" and n < 2:
        masking = "nodata"
    notes.append(masking)
    hole = np.zeros((h, w), bool)
    hole[int(rng.integers(0, h)):, int(rng.integers(0, w)):] = rng.random() < 0.7
    nodata = None
    if "nodata" in masking:
        nodata = float("nan") if floating and rng.random() < 0.3 else float(pixels.min() if rng.random() < 0.5 else 0)
        pixels[:, hole] = np.nan if np.isnan(nodata) else nodata
        valid &= ~hole
        if not np.isnan(nodata):  # a pixel whose every band holds the nodata value is nodata anyway
            valid &= ~(pixels == DTYPES[gdt](nodata)).all(axis=0)
    if masking == "alpha":
        pixels[-1] = np.where(hole, 0, np.iinfo(DTYPES[gdt]).max if not floating else 255)
        valid &= ~hole
    if "mask" in masking and masking != "none":
        valid &= ~hole
    if masking == "none" and not floating:
        # nothing declared: all-black pixels are treated as a collar (nodata)
        valid &= (pixels[:3] != 0).any(axis=0)

    crs, ox, oy, units_per_m = CRSS[rng.integers(len(CRSS))]
    notes.append(crs.split()[0] if crs else "no CRS")
    metres = rng.uniform(8.0, 40.0) / max(h, w)  # 8-40 m across: a few 4 m cells, at most 2 x 2 tiles
    if rng.random() < 0.08:
        metres = 1e-6  # smaller than one output cell in all
        notes.append("tiny pixels")
    p = metres * units_per_m
    if rng.random() < 0.2:
        angle = np.radians(rng.uniform(-40, 40))
        gt = (ox, p * np.cos(angle), p * np.sin(angle), oy, p * np.sin(angle), -p * np.cos(angle))
        notes.append(f"rotated {np.degrees(angle):.0f} deg")
    else:
        gt = (ox, p, 0.0, oy, 0.0, -p)

    path = folder / f"case{i:03d}.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, n, gdt)
    ds.SetGeoTransform(gt)
    if crs:
        srs = osr.SpatialReference()
        srs.SetFromUserInput(crs)
        ds.SetSpatialRef(srs)
    for b in range(n):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(pixels[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    if masking == "alpha":
        ds.GetRasterBand(n).SetColorInterpretation(gdal.GCI_AlphaBand)
    if "mask" in masking and masking != "none":
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        ds.GetRasterBand(1).GetMaskBand().WriteArray((~hole).astype(np.uint8) * 255)
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    ds = None
    return Case(path, valid, ", ".join(notes))


def check_outcome(case: Case, rc: int, stderr: str, out: Path) -> None:
    """The contract of the module docstring, for one case."""
    assert "Traceback" not in stderr, (case.description, stderr)
    left = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    errors = [line for line in stderr.splitlines() if line.startswith("coredino: error:")]
    if rc == 2:
        assert len(errors) == 1 and left == [], (case.description, stderr, left)
        return
    assert rc == 0 and not errors, (case.description, rc, stderr)
    assert left == ["out.qml", "out.tif"], (case.description, left)
    _, problems, _ = validate(str(out), full_check=True)
    assert problems == [], (case.description, problems)
    ds = gdal.Open(str(out))
    band = ds.GetRasterBand(1)
    assert (band.ReadAsArray() != band.GetNoDataValue()).any(), case.description
    _covers_valid_pixels(case, ds)
    ds = None


def _covers_valid_pixels(case: Case, out: gdal.Dataset) -> None:
    """Every valid source pixel's centre lies inside the output's extent (one cell of slack)."""
    src = gdal.Open(str(case.path))
    rows, cols = np.nonzero(case.valid)
    pick = np.linspace(0, len(rows) - 1, min(len(rows), 50)).astype(int)
    gt = src.GetGeoTransform()
    xs = gt[0] + (cols[pick] + 0.5) * gt[1] + (rows[pick] + 0.5) * gt[2]
    ys = gt[3] + (cols[pick] + 0.5) * gt[4] + (rows[pick] + 0.5) * gt[5]
    a, b = src.GetSpatialRef(), out.GetSpatialRef()
    for s in (a, b):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    points = osr.CoordinateTransformation(a, b).TransformPoints(np.column_stack([xs, ys]).tolist())
    ogt = out.GetGeoTransform()
    x0, y1 = ogt[0], ogt[3]
    x1, y0 = x0 + ogt[1] * out.RasterXSize, y1 + ogt[5] * out.RasterYSize
    slack = ogt[1]
    for px, py, _ in points:
        assert x0 - slack <= px <= x1 + slack and y0 - slack <= py <= y1 + slack, case.description


@pytest.fixture(scope="module")
def imagery(data, demo_raster):
    return _imagery(data, demo_raster)


def test_fuzz_classify_in_process(tmp_path, tiny_codebook, imagery, capsys):
    rng = np.random.default_rng(SEED)
    outcomes, reasons = {0: 0, 2: 0}, Counter()
    for i in range(CASES):
        case = make_case(rng, imagery, tmp_path, i)
        out = tmp_path / f"out{i:03d}" / "out.tif"
        rc = main(["classify", str(case.path), "-o", str(out), "--codebook", tiny_codebook, "--device", "cpu"])
        stderr = capsys.readouterr().err
        check_outcome(case, rc, stderr, out)
        outcomes[rc] += 1
        if rc == 2:  # the reason, without the file name: "no valid pixels", "has no coordinate ..."
            reasons[stderr.split(f"{case.path}: ", 1)[-1].split(";")[0].split(" (")[0].strip()[:60]] += 1
        if not case.valid.any() or "no CRS" in case.description:
            assert rc == 2, case.description  # nothing to classify / nowhere to put it
    print(f"fuzz: {CASES} cases, {outcomes[0]} classified, {outcomes[2]} one-line errors: {dict(reasons)}")
    # the generator must exercise both outcomes, mostly real classifications
    assert outcomes[0] >= CASES // 3 and outcomes[2] >= 1, outcomes


def test_fuzz_classify_through_a_process(tmp_path, tiny_codebook, imagery):
    rng = np.random.default_rng(SEED + 1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = []
    for i in range(SUBPROCESS_CASES):  # concurrently: most of their time is importing torch
        case = make_case(rng, imagery, tmp_path, i)
        out = tmp_path / f"out{i:03d}" / "out.tif"
        runs.append((case, out, subprocess.Popen(
            [sys.executable, "-m", "coredino.cli", "classify", str(case.path), "-o", str(out),
             "--codebook", tiny_codebook, "--device", "cpu"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    for case, out, process in runs:
        _, stderr = process.communicate(timeout=300)
        check_outcome(case, process.returncode, stderr, out)
