"""`coredino`: a thin command line over the engine."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from coredino_contract.params import CLASSIFIERS, METRICS, PRECISIONS, RUNTIMES
from coredino_contract.protocol import DEFAULT_PORT

from . import __version__
from .errors import Cancelled, UserError
from .progress import Progress
from .threads import configure_threads

EPILOG = """examples:
  coredino classify scene.tif -o scene_classes.tif
  coredino batch orthos/ out/ --pattern '**/*.tif'
  coredino batch /vsis3/bucket/orthos/ /vsis3/bucket/classes/ --ray auto
  coredino fit-codebook a.tif b.tif -o my.codebook.npz --model core-dino:x --weights student.pt
  coredino quicklook scene_classes.tif --source scene.tif -o look.png
  coredino classify scene.tif -o c.tif --embeddings && coredino similar c.tif -o sim.tif --positive=X,Y
  coredino reclassify c.tif -o named.tif --class roofs=12,407 --class trees=3 --save-classes c.classes.json
  coredino polygonize named.tif --class roofs -o roofs.gpkg
  coredino cluster scene.tif -o clusters.tif --k 24
  coredino fetch geocentroids-sa && coredino classify scene.tif -o c.tif --codebook geocentroids-sa
  coredino import-codebook --centroids centroids_6k.npy --colors color_map_rgb_6k.npy --recipe geocentroids -o geo.npz
  coredino levels c.tif --level 16 -o c16.tif
  coredino learn c.tif --examples clicks.gpkg --field class -o named.tif --save-model m.classifier.json
  coredino info
  coredino serve --port 8765 --codebooks ~/codebooks
"""


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every temporary file is removed on the way out."""


def _terminate(signum, frame) -> None:
    raise _Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:  # before anything imports torch: OpenMP reads its wait policy when it starts
        configure_threads(_threads_arg(sys.argv[1:] if argv is None else argv))
    except UserError as exc:
        print(f"coredino: error: {exc}", file=sys.stderr)
        return 2
    args = _parser().parse_args(argv)
    previous = _terminate_on_sigterm() if args.run is not _run_serve else None
    try:
        return args.run(args)
    except UserError as exc:
        print(f"coredino: error: {exc}", file=sys.stderr)
        return 2
    except _Terminated:
        print("coredino: terminated; no output was written", file=sys.stderr)
        return 143
    except (Cancelled, KeyboardInterrupt):
        print("coredino: cancelled; no partial output was left (finished ones are kept)", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_on_sigterm():
    """SIGTERM ends the job like Ctrl+C (temporary files removed) instead of killing it mid-write.

    Returns the previous handler (None when not on the main thread: signals cannot be set there).
    """
    try:
        return signal.signal(signal.SIGTERM, _terminate)
    except ValueError:
        return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coredino", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Label-free 'what is where' maps: embed every patch of an aerial or satellite "
                    "raster with a self-supervised backbone, assign it to a colour-coded codebook "
                    "cluster, write a styled Cloud-Optimized GeoTIFF.")
    p.add_argument("--version", action="version", version=f"coredino {__version__}")
    sub = p.add_subparsers(title="commands", required=True, metavar="COMMAND")

    c = sub.add_parser("classify", help="classify one raster into a COG of cluster ids",
                       description="Classify one GDAL-readable raster. With no option it uses the "
                                   "bundled default codebook and the model it names.")
    c.add_argument("input", help="raster file (GeoTIFF, JPEG2000, VRT... anything GDAL reads)")
    c.add_argument("-o", "--output", required=True, help="output COG path (.tif); a .qml style is written beside it")
    _overwrite_option(c)
    _classify_options(c)
    c.set_defaults(run=_run_classify)

    b = sub.add_parser("batch", help="classify every raster in a folder (resumable; --ray scales out)",
                       description="Classify a folder recursively into OUTPUT_DIR/<same folders>/"
                                   "<name>_classes.tif. Outputs already made with the same codebook "
                                   "are skipped, so re-running resumes; a bad file is reported and "
                                   "the rest continue. INPUT_DIR may be an object-store prefix "
                                   "(/vsis3/bucket/prefix, /vsigs/, /vsiaz/) or a STAC item, "
                                   "collection or catalog (.json file or URL); OUTPUT_DIR may be an "
                                   "object-store prefix. See docs/scaling.md.")
    b.add_argument("input_dir", help="folder, /vsis3/... prefix, or STAC .json (path or URL)")
    b.add_argument("output_dir", help="folder or /vsis3/... prefix")
    b.add_argument("--pattern", default="**/*.tif", help="glob below INPUT_DIR (default: %(default)s)")
    b.add_argument("--overwrite", action="store_true",
                   help="redo outputs that already exist (and replace files in their place that are "
                        "not coredino outputs)")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray actors (one model each): no ADDRESS starts a local Ray runtime, "
                        "'auto' or ray://HOST:PORT joins a cluster; writes "
                        "OUTPUT_DIR/coredino-batch-summary.json")
    b.add_argument("--workers", type=int,
                   help="with --ray: actors (default: one per GPU, else one per 4 CPUs)")
    b.add_argument("--band-rows", type=int,
                   help="with --ray: tile rows per work item of a raster split across actors "
                        "(default: split rasters much larger than an actor's share; 0: never)")
    _classify_options(b)
    b.set_defaults(run=_run_batch)

    f = sub.add_parser("fit-codebook", help="fit a codebook (K-means + t-SNE colours) on rasters",
                       description="Sample patch features from rasters (uniform reservoir, bounded "
                                   "memory), fit K-means with faiss on all sampled features, colour "
                                   "centroids by a 3-D t-SNE, and save one .npz file holding the "
                                   "centroids, colours and the full feature recipe.")
    f.add_argument("inputs", nargs="+", help="raster files")
    f.add_argument("-o", "--output", required=True, help="codebook file (.npz)")
    _model_options(f, default="core-dino:n")
    f.add_argument("--gsd", type=float, default=0.25, help="metres per pixel (default: %(default)s)")
    f.add_argument("--tile", type=int, default=24, help="tile side in patches (default: %(default)s)")
    f.add_argument("--border", type=int, default=3, help="discarded border in patches (default: %(default)s)")
    f.add_argument("--k", type=int, default=6000, help="number of clusters (default: %(default)s)")
    f.add_argument("--metric", choices=METRICS, default="cosine")
    f.add_argument("--max-features", type=int, default=1_000_000, help="reservoir size (default: %(default)s)")
    f.add_argument("--niter", type=int, default=20, help="K-means iterations (default: %(default)s)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="auto")
    f.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 8 on the CPU, 64 on a GPU)")
    f.add_argument("--bands", type=_bands, help="band numbers used as R,G,B, e.g. 3,2,1 (one number: panchromatic)")
    _threads_option(f)
    f.set_defaults(run=_run_fit)

    k = sub.add_parser("cluster", help="cluster a raster on its own features (no codebook needed)",
                       description="Sample the raster's own patch features, fit K-means (faiss) with "
                                   "--k clusters, colour them by t-SNE, and write the same styled COG "
                                   "as classify. The fitted codebook is saved beside the output as "
                                   "<output stem>.codebook.npz: pass it to `classify --codebook` to "
                                   "map other rasters with the same clusters.")
    k.add_argument("input", help="raster file")
    k.add_argument("-o", "--output", required=True, help="output COG path (.tif)")
    k.add_argument("--k", type=int, default=24, help="number of clusters, 2-255; 8-64 keep the legend "
                                                      "readable (default: %(default)s)")
    _model_options(k, default="default")
    k.add_argument("--gsd", type=float, default=0.25, help="metres per pixel (default: %(default)s)")
    k.add_argument("--max-features", type=int, default=200_000, help="features sampled (default: %(default)s)")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--device", default="auto")
    k.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 8 on the CPU, 64 on a GPU)")
    k.add_argument("--bands", type=_bands, help="band numbers used as R,G,B, e.g. 3,2,1")
    k.add_argument("--rgb", action="store_true", help="also write <output>_rgb.tif, an RGBA rendering")
    _threads_option(k)
    k.set_defaults(run=_run_cluster)

    m = sub.add_parser("import-codebook", help="a codebook from centroids and colours fitted elsewhere",
                       description="Build a codebook from a centroids .npy (k x d float) and a colours "
                                   ".npy (k x 3 uint8) with the recipe that made their features; "
                                   "the model is loaded once to record its weights' sha256.")
    m.add_argument("--centroids", required=True, help="k x d float .npy (e.g. centroids_6k.npy)")
    m.add_argument("--colors", required=True, help="k x 3 uint8 .npy (e.g. color_map_rgb_6k.npy)")
    m.add_argument("--recipe", required=True, choices=("geocentroids",),
                   help="geocentroids: DINOv2-with-registers-base behind the HF processor, the "
                        "notebook's tiles, inner product")
    m.add_argument("--model", help="the model as a hub id or a local folder saved with "
                                   "save_pretrained (default: the recipe's hub id)")
    m.add_argument("-o", "--output", required=True, help="codebook file (.npz)")
    m.set_defaults(run=_run_import)

    g = sub.add_parser("fetch", help="download a catalogue entry's files, or import local copies",
                       description="Download the files of a catalogue entry (`coredino info` lists "
                                   "them) into the cache, resuming and checking sha256; with --from, "
                                   "copy them from a folder instead (offline machines).")
    g.add_argument("name", help="catalogue entry, e.g. geocentroids-sa or core-dino-x")
    g.add_argument("--from", dest="source", metavar="DIR", help="folder holding the files")
    g.set_defaults(run=_run_fetch)

    q = sub.add_parser("quicklook", help="PNG of a classified COG, beside its source imagery",
                       description="Render a classified COG in its codebook colours as a PNG; with "
                                   "--source, the source imagery over the same extent is on the left.")
    q.add_argument("classes", help="a COG written by `coredino classify`")
    q.add_argument("-o", "--output", required=True, help="PNG path")
    q.add_argument("--source", help="the raster that was classified")
    q.add_argument("--side", type=int, default=768, help="longest side of each panel in px (default: %(default)s)")
    q.set_defaults(run=_run_quicklook)

    _explore_parsers(sub)

    i = sub.add_parser("info", help="device, models and codebook details")
    i.add_argument("--codebook", help="codebook to describe (default: the bundled one)")
    i.add_argument("--device", default="auto")
    i.set_defaults(run=_run_info)

    s = sub.add_parser("serve", help="run the HTTP backend the QGIS plugin talks to",
                       description="Serve the engine over HTTP (docs/protocol.md): jobs run one at a "
                                   "time in submission order. A new token is written to the token "
                                   "file at every start; ~/.cache/coredino/service/service-<port>.json "
                                   "tells clients the URL. SIGTERM or Ctrl+C stops it cleanly.")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s; 0.0.0.0 only on a trusted network)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    s.add_argument("--token-file", help="where to write the token (default: ~/.cache/coredino/service/token-<port>)")
    s.add_argument("--codebooks", nargs="+", action="extend", default=[], metavar="DIR",
                   help="folders scanned for *.codebook.npz (the bundled codebook is always offered)")
    _threads_option(s)
    s.set_defaults(run=_run_serve)

    from .evaluate.commands import add_eval_parser
    from .train.commands import add_train_parser
    add_train_parser(sub)
    add_eval_parser(sub)
    return p


def _model_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--model", default=default,
                   help="a catalogue name (default, core-dino-x, geocentroids-sa; `coredino info`), "
                        "core-dino:<n|s|m|l|x>[@layer], dinov2:<hub id or folder> or "
                        "dinov2-processor:<hub id or folder> (default: %(default)s)")
    p.add_argument("--weights", default="random",
                   help="core-dino weights: path, URL, hf://owner/repo/file or 'random' (default)")
    p.add_argument("--layer", type=int, help="core-dino feature layer 16/19/22 (default: 19, or the "
                                             "model's @layer)")


def _model_spec(args: argparse.Namespace):
    """--model as a catalogue name or family:variant (with --weights and --layer)."""
    from coredino_contract.params import parse_model

    from . import catalogue
    if args.model in catalogue.ENTRIES:
        return catalogue.model_spec(args.model)
    return parse_model(args.model, args.weights, args.layer)


def _threads_arg(argv: Sequence[str]) -> Optional[int]:
    """``--threads N`` wherever it is on the command line (read before the full parse)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--threads", type=int)
    return early.parse_known_args(list(argv))[0].threads


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int,
                   help="CPU threads (default: COREDINO_THREADS, else the cores this process may use); "
                        "threads sleep when idle unless OMP_WAIT_POLICY=ACTIVE is set")


def _classify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--codebook", help="codebook file or catalogue name, e.g. geocentroids-sa "
                                      "(default: the bundled one)")
    p.add_argument("--weights", help="weights to use instead of those the codebook names (hash must match)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: 8 on the CPU, 64 on a GPU)")
    p.add_argument("--bands", type=_bands, help="band numbers used as R,G,B, e.g. 3,2,1 (one number: panchromatic)")
    p.add_argument("--rgb", action="store_true", help="also write <output>_rgb.tif, an RGBA rendering")
    p.add_argument("--compile", action="store_true",
                   help="run the encoder through torch.compile (pays off on long GPU runs; the first "
                        "batch waits for the compilation)")
    p.add_argument("--embeddings", action="store_true",
                   help="also write <output>_embeddings.tif (PCA-reduced patch embeddings on the same "
                        "grid) for `coredino similar` and `coredino learn`")
    p.add_argument("--level", type=int, metavar="N",
                   help="write the map at N groups of the codebook's cluster tree (e.g. 16) instead of "
                        "its clusters")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="encoder runtime: auto (ONNX Runtime on the CPU when installed, torch on a GPU), "
                        "torch or onnx (exported once per model and tile size, checked against torch, "
                        "cached) (default: %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="encoder precision: fp32 (exact), bf16 (torch) or int8 (ONNX Runtime); reduced "
                        "precision prints its id agreement with fp32 (default: %(default)s)")
    _threads_option(p)
    p.add_argument("--no-blend", dest="blend", action="store_false",
                   help="cut each tile at its core instead of blending overlapping tiles: 1.44x "
                        "faster on large rasters, but class changes at tile borders (seams)")
    p.add_argument("--max-tiles", type=int, default=250_000,
                   help="refuse a raster needing more tiles than this (it says how many and how "
                        "long first); 0: no limit (default: %(default)s)")


def _explore_parsers(sub) -> None:
    s = sub.add_parser("similar", help="similarity of every cell to clicked places (needs --embeddings)",
                       description="Cosine similarity of every cell's embedding to a query made of "
                                   "positive points (places like the ones you look for) minus negative "
                                   "ones; writes a Float32 COG in [-1, 1] (nodata -2) and a .qml style. "
                                   "Points are X,Y in the raster's CRS; write --positive=X,Y when X is "
                                   "negative.")
    s.add_argument("embeddings", help="<classes>_embeddings.tif, or the classification it was written beside")
    s.add_argument("-o", "--output", required=True, help="similarity COG (.tif)")
    s.add_argument("--positive", type=_point, action="append", required=True, metavar="X,Y")
    s.add_argument("--negative", type=_point, action="append", default=[], metavar="X,Y")
    _overwrite_option(s)
    s.set_defaults(run=_run_similar)

    r = sub.add_parser("reclassify", help="named classes from cluster ids: class map, areas CSV",
                       description="Map cluster ids to named classes: writes a Byte COG (0 unclassified, "
                                   "1.. the classes in the order given, 255 nodata) with a colour table, "
                                   "class names (metadata, a raster attribute table in .aux.xml, a .qml), "
                                   "and <output>_areas.csv with each class's area in m2 and ha.")
    r.add_argument("input", help="a classification COG written by `coredino classify`")
    r.add_argument("-o", "--output", required=True, help="class map COG (.tif)")
    r.add_argument("--class", dest="classes", type=_class_arg, action="append", default=[],
                   metavar="NAME=ID,ID,...", help="a class and its cluster ids (repeat for more classes)")
    r.add_argument("--classes-file", help="a .classes.json file (instead of --class)")
    r.add_argument("--save-classes", metavar="FILE", help="also save the classes given to a .classes.json file")
    _overwrite_option(r)
    r.set_defaults(run=_run_reclassify)

    g = sub.add_parser("polygonize", help="one class (or cluster) as polygons in a GeoPackage",
                       description="Trace the cells of one class of a class map (or one cluster id of a "
                                   "classification) into polygons with area_m2 and area_ha attributes.")
    g.add_argument("input", help="a class map from `coredino reclassify` (or a classification)")
    g.add_argument("-o", "--output", required=True, help="GeoPackage (.gpkg)")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--class", dest="class_name", help="class name (of a reclassified map)")
    which.add_argument("--value", type=int, help="pixel value: a cluster id or a class value")
    _overwrite_option(g)
    g.set_defaults(run=_run_polygonize)

    v = sub.add_parser("levels", help="the map at coarser levels (8, 16, 32... groups of clusters)",
                       description="Group the clusters of a classification by the codebook's merge tree, "
                                   "without re-running the encoder. Without -o: writes <map>_levels/"
                                   "level<N>.vrt views (and .qml legends, groups largest first with their "
                                   "area) for every level, or for the --level values given. With -o and "
                                   "one --level: writes that level as a COG with .qml and _areas.csv.")
    v.add_argument("input", help="a classification COG written by `coredino classify`")
    v.add_argument("--level", type=int, action="append", default=[], metavar="N", help="number of groups")
    v.add_argument("-o", "--output", help="coarse map COG (.tif), for one --level")
    v.add_argument("--codebook", help="the codebook that made the map (default: the bundled one)")
    v.set_defaults(run=_run_levels)

    lp = sub.add_parser("learn", help="a named class map from a few examples (points, polygons, clicks)",
                        description="Train a classifier on the embeddings kept beside a classification "
                                    "(classify --embeddings) from labelled examples, and write a named class "
                                    "COG (names, colour table, raster attribute table, .qml legend), "
                                    "<output>_areas.csv, <output>_confidence.tif and <output>_margin.tif "
                                    "(low margin: where the next example helps most). Prints cross-"
                                    "validated accuracy per class and the confusion matrix.")
    lp.add_argument("input", help="a classification with <name>_embeddings.tif beside it")
    lp.add_argument("-o", "--output", required=True, help="named class map COG (.tif)")
    lp.add_argument("--examples", help="vector file (GeoPackage, GeoJSON...) of points or polygons")
    lp.add_argument("--field", help="the field of --examples that names the class")
    lp.add_argument("--point", type=_named_point, action="append", default=[], metavar="NAME=X,Y",
                    help="one example point in the map's CRS (repeat)")
    lp.add_argument("--similar", type=_named_similar, action="append", default=[], metavar="NAME=SIM.tif:T",
                    help="cells of a similarity map (coredino similar) at or above T as examples of NAME")
    lp.add_argument("--classifier", default="logistic", choices=CLASSIFIERS,
                    help="logistic regression (default: most accurate in docs/learn.md) or k nearest examples")
    lp.add_argument("--model", help="apply this saved .classifier.json instead of training")
    lp.add_argument("--save-model", metavar="FILE", help="save the classifier (plain JSON) for other maps")
    lp.add_argument("--min-confidence", type=float, default=0.0, metavar="P",
                    help="cells whose winning probability is below P (0-1) stay unclassified")
    lp.add_argument("--no-confidence", dest="confidence", action="store_false",
                    help="skip the confidence and margin maps")
    lp.set_defaults(run=_run_learn)

    cb = sub.add_parser("codebook", help="codebook maintenance: `coredino codebook upgrade FILE`")
    cb_sub = cb.add_subparsers(title="actions", required=True, metavar="ACTION")
    up = cb_sub.add_parser("upgrade", help="add the cluster tree and embedding basis to an older codebook",
                           description="Rewrite a codebook made before coredino 0.2 with its cluster merge "
                                       "tree and embedding basis (atomically: the file is replaced only when "
                                       "the new one is complete). Maps classified with it keep matching it.")
    up.add_argument("codebooks", nargs="+", help="codebook files (.npz)")
    up.set_defaults(run=_run_codebook_upgrade)


def _overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output that is not a coredino output of this kind (a file "
                        "the command reads is never replaced)")


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected X,Y in the raster's CRS") from None
    return x, y


def _class_arg(text: str) -> tuple[str, list[int]]:
    name, _, ids = text.partition("=")
    try:
        values = [int(v) for v in ids.split(",") if v.strip()]
    except ValueError:
        values = []
    if not name.strip() or not values:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=ID,ID,... e.g. roofs=12,407")
    return name.strip(), values


def _named_point(text: str) -> tuple[str, tuple[float, float]]:
    name, _, xy = text.rpartition("=")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=X,Y e.g. roofs=571234.5,6150321.0")
    return name.strip(), _point(xy)


def _named_similar(text: str):
    from coredino_contract import SimilarExamples
    name, _, rest = text.partition("=")
    path, _, threshold = rest.rpartition(":")
    try:
        value = float(threshold)
    except ValueError:
        value = None
    if not name.strip() or not path or value is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=SIMILARITY.tif:THRESHOLD e.g. roofs=sim.tif:0.4")
    return SimilarExamples(name.strip(), path, value)


def _bands(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected band numbers like 3,2,1") from None


def _options(args: argparse.Namespace):
    from .params import ClassifyOptions
    return ClassifyOptions(codebook=args.codebook, weights=args.weights, device=args.device,
                           batch_size=args.batch_size, bands=args.bands, rgb=args.rgb,
                           embeddings=args.embeddings, compile=args.compile, level=args.level,
                           runtime=args.runtime, precision=args.precision,
                           blend=args.blend, max_tiles=args.max_tiles)


@contextmanager
def _bar(label: str) -> Iterator[Progress]:
    """A progress bar on stderr, drawn from the first report after the job's first second (quick
    answers and early errors come bar-free, as one line)."""
    from tqdm import tqdm
    bar = None
    shown_after = time.monotonic() + 1.0

    def update(fraction: float, message: str) -> None:
        nonlocal bar
        if bar is None:
            if time.monotonic() < shown_after:
                return
            bar = tqdm(total=1000, desc=label, leave=False, file=sys.stderr,
                       bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
        bar.n = int(fraction * 1000)
        bar.set_postfix_str(message, refresh=True)

    try:
        yield Progress(callback=update)
    finally:
        if bar is not None:
            bar.close()


def _run(params, label: str):
    """Run a job through the same dispatch as the service, with a progress bar."""
    from .runners import run
    with _bar(label) as progress:
        return run(params, progress)


def _run_classify(args: argparse.Namespace) -> int:
    from .params import ClassifyParams
    result = _run(ClassifyParams(args.input, args.output, _options(args), args.overwrite), args.input)
    for warning in result.warnings:
        print(f"coredino: warning: {warning}", file=sys.stderr)
    cells = sum(result.classes.values())
    print(f"{result.output}: {len(result.classes)} clusters over {cells} cells, {result.tiles} tiles "
          f"in {result.seconds:.1f} s on {result.device} ({result.runtime})")
    if result.rgb_output:
        print(f"{result.rgb_output}: RGBA rendering")
    if result.embeddings:
        print(f"{result.embeddings}: embeddings for `coredino similar`")
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    from .params import BatchParams
    params = BatchParams(args.input_dir, args.output_dir, args.pattern, args.overwrite, _options(args),
                         executor="ray" if args.ray else "process",
                         ray_address=None if args.ray in (None, "local") else args.ray,
                         workers=args.workers, band_rows=args.band_rows)
    result = _run(params, args.input_dir)
    for path, reason in result.failed.items():
        print(f"FAILED {path}: {reason}", file=sys.stderr)
    for item, reason in result.retried.items():
        print(f"retried {item}: {reason}", file=sys.stderr)
    print(f"batch: {len(result.done)} classified, {len(result.skipped)} already done (skipped), "
          f"{len(result.failed)} failed" + (f"; summary: {result.summary}" if result.summary else ""))
    return 1 if result.failed else 0


def _run_fit(args: argparse.Namespace) -> int:
    from .params import FitParams
    spec = _model_spec(args)
    params = FitParams(args.inputs, args.output, spec, args.gsd, args.tile, args.border, args.k,
                       args.metric, args.max_features, args.niter, args.seed, args.device,
                       args.batch_size, args.bands)
    result = _run(params, "fit-codebook")
    print(f"{result.output}: {result.k} clusters of {result.dim}-d {result.metric} features "
          f"from {result.n_features} patches")
    return 0


def _run_cluster(args: argparse.Namespace) -> int:
    from .params import ClusterParams
    params = ClusterParams(args.input, args.output, _model_spec(args), args.k, args.gsd,
                           max_features=args.max_features, seed=args.seed, device=args.device,
                           batch_size=args.batch_size, bands=args.bands, rgb=args.rgb)
    result = _run(params, args.input)
    for warning in result.warnings:
        print(f"coredino: warning: {warning}", file=sys.stderr)
    print(f"{result.output}: {len(result.classes)} of {result.k} clusters in {result.seconds:.1f} s; "
          f"codebook for other rasters: {result.codebook}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from .codebook.importer import import_codebook
    codebook = import_codebook(args.centroids, args.colors, args.recipe, args.output, args.model)
    print(f"{args.output}: {codebook.k} centroids of {codebook.dim}-d features, metric "
          f"{codebook.metric}, recipe {args.recipe}")
    return 0


def _run_fetch(args: argparse.Namespace) -> int:
    from . import catalogue
    with _bar(f"fetch {args.name}") as progress:
        paths = catalogue.fetch(args.name, args.source, progress)
    for path in paths:
        print(path)
    print(f"{args.name}: ready ({catalogue.entry(args.name).license})")
    return 0


def _run_quicklook(args: argparse.Namespace) -> int:
    from .quicklook import quicklook
    print(quicklook(args.classes, args.output, args.source, args.side))
    return 0


def _run_similar(args: argparse.Namespace) -> int:
    from .params import SimilarParams
    result = _run(SimilarParams(args.embeddings, args.output, args.positive, args.negative, args.overwrite),
                  args.embeddings)
    print(f"{result.output}: similarity of {result.cells} cells, {result.min:.3f} to {result.max:.3f} "
          f"in {result.seconds:.2f} s")
    return 0


def _run_reclassify(args: argparse.Namespace) -> int:
    from coredino_contract.classes import save_classes
    from .params import ReclassifyParams
    classes: dict[str, list[int]] = {}
    for name, ids in args.classes:
        if name in classes:
            raise UserError(f"--class {name} is given twice")
        classes[name] = ids
    result = _run(ReclassifyParams(args.input, args.output, classes, args.classes_file, args.overwrite), args.input)
    if args.save_classes:
        save_classes(args.save_classes, result.mapping, result.codebook_sha256)
        print(f"{args.save_classes}: classes saved")
    for row in result.classes:
        print(f"{row.value:3d} {row.name}: {row.cells} cells, {row.area_m2:.0f} m2 ({row.area_ha:.3f} ha)")
    print(f"{result.output}: class map; {result.csv}: areas")
    return 0


def _run_polygonize(args: argparse.Namespace) -> int:
    from .params import PolygonizeParams
    result = _run(PolygonizeParams(args.input, args.output, args.class_name, args.value, args.overwrite), args.input)
    print(f"{result.output}: layer {result.layer}, {result.features} polygons, "
          f"{result.area_m2:.0f} m2 ({result.area_ha:.3f} ha)")
    return 0


def _run_learn(args: argparse.Namespace) -> int:
    from coredino_contract import LearnParams
    points: dict[str, list[tuple[float, float]]] = {}
    for name, xy in args.point:
        points.setdefault(name, []).append(xy)
    result = _run(LearnParams(args.input, args.output, points, args.examples, args.field, args.similar,
                              args.classifier, args.model, args.save_model, args.min_confidence,
                              args.confidence), args.input)
    for score in result.scores:
        accuracy = "n/a (fewer than 2 examples)" if score.accuracy is None else f"{100 * score.accuracy:.0f} %"
        print(f"{score.name}: {score.examples} examples ({score.cells} cells), cross-validated accuracy {accuracy}")
    if result.confusion is not None:
        names = [s.name for s in result.scores]
        print(f"overall cross-validated accuracy {100 * result.accuracy:.1f} %; confusion (rows: true, "
              f"columns: predicted {', '.join(names)}):")
        for name, row in zip(names, result.confusion):
            print(f"  {name:>16}: {' '.join(f'{v:5d}' for v in row)}")
    if result.skipped:
        print(f"coredino: warning: {result.skipped} examples outside the map or on nodata were skipped",
              file=sys.stderr)
    for row in result.classes:
        print(f"{row.value:3d} {row.name}: {row.cells} cells, {row.area_m2:.0f} m2 ({row.area_ha:.3f} ha)")
    outputs = [result.output, result.csv, result.confidence, result.margin, result.model]
    print(f"{', '.join(o for o in outputs if o)} in {result.seconds:.2f} s")
    return 0


def _run_levels(args: argparse.Namespace) -> int:
    from coredino_contract import LevelsParams
    result = _run(LevelsParams(args.input, args.level, args.output, args.codebook), args.input)
    for view in result.views:
        largest = view.groups[0] if view.groups else None
        share = f"; largest group {largest.group}: {largest.area_m2 / 1e4:.2f} ha" if largest else ""
        print(f"{view.path}: {view.level} groups, {len(view.groups)} present{share}")
    return 0


def _run_codebook_upgrade(args: argparse.Namespace) -> int:
    from .codebook import upgrade
    for path in args.codebooks:
        codebook, changed = upgrade(path)
        print(f"{path}: {'upgraded (cluster tree and embedding basis added)' if changed else 'already complete'}; "
              f"sha256 {codebook.sha256[:12]}")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from .about import environment
    from .device import describe, pick_device
    from .encoders import FAMILIES
    from . import catalogue
    from .encoders.runtime import installed_runtimes
    from .engine import load_codebook
    info = {"coredino": __version__, **describe(pick_device(args.device)), **environment(),
            "runtimes": installed_runtimes(),
            "model_families": sorted(FAMILIES), "catalogue": catalogue.describe()}
    codebook = load_codebook(args.codebook)
    info["codebook"] = {**codebook.summary(), "license": catalogue.license_for(codebook.recipe)}
    print(json.dumps(info, indent=2))
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .service.server import serve
    return serve(args.host, args.port, Path(args.token_file) if args.token_file else None,
                 [Path(d) for d in args.codebooks])


if __name__ == "__main__":
    sys.exit(main())
