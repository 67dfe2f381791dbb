"""Index a folder of gallery images with a trained model and search it with query images of the other modality.

    python examples/extract_and_search.py --checkpoint runs/sysu/checkpoints/final.pt \
        --gallery gallery_rgb/ --gallery-modality visible --query night1.jpg night2.jpg --topk 5 --plot ranked.png

    python examples/extract_and_search.py --synthetic          # tiny untrained model on generated images

The gallery index (features + paths) is cached in a ``.pt`` file, like ``csdn extract`` writes. ``--onnx``
additionally exports the query encoder to ONNX and repeats the search with onnxruntime (needs csdn[onnx]).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import torch

from csdn.data.images import list_images, preprocess
from csdn.data.synthetic import make_sysu
from csdn.engine import build_csdn, config_to_dict, get_preset, load_checkpoint, save_checkpoint
from csdn.inference import FeatureExtractor, SearchResult, search
from csdn.models.checkpoint import final_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint written by `csdn train`")
    parser.add_argument("--gallery", help="folder of gallery images (searched recursively)")
    parser.add_argument("--gallery-modality", default="visible", choices=["visible", "infrared"])
    parser.add_argument("--query", nargs="+", help="query image files")
    parser.add_argument("--query-modality", default="infrared", choices=["visible", "infrared"])
    parser.add_argument("--topk", type=int, default=5, help="matches printed per query")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (needs several queries)")
    parser.add_argument("--index", help="gallery index .pt file to reuse or create (default: kept in memory)")
    parser.add_argument("--plot", help="write a ranked-list PNG here (needs csdn[viz])")
    parser.add_argument("--onnx", action="store_true", help="also search with an ONNX export of the query encoder")
    parser.add_argument("--synthetic", action="store_true", help="generate images and an untrained tiny model")
    args = parser.parse_args(argv)
    if not args.synthetic and not (args.checkpoint and args.gallery and args.query):
        parser.error("pass --checkpoint, --gallery and --query, or --synthetic")
    return args


def synthetic_inputs(folder: Path) -> tuple[Path, Path, list[str]]:
    """An untrained tiny checkpoint, a visible gallery folder and a few infrared queries (SYSU-MM01 layout)."""
    root = Path(make_sysu(folder / "sysu", num_train_ids=2, num_val_ids=1, num_test_ids=5, images_per_cam=2))
    cfg = get_preset("demo")
    state = final_checkpoint(build_csdn(cfg, 3), config_to_dict(cfg))  # what `csdn train` writes as final.pt
    checkpoint = save_checkpoint(state, folder / "untrained.pt")
    queries = list_images(root / "cam3")[::4]  # cam3 is an infrared camera
    return checkpoint, root / "cam1", queries  # cam1 is a visible camera


def gallery_index(extractor: FeatureExtractor, folder: Path, cache: str | None) -> tuple[torch.Tensor, list[str]]:
    """Embed every image under ``folder`` once; reuse the cached index when it covers the same files."""
    paths = list_images(folder)
    if cache and Path(cache).is_file():
        index = load_checkpoint(cache)
        if index["paths"] == paths:
            return index["features"], paths
    features = extractor(paths)
    if cache:
        save_checkpoint({"features": features, "paths": paths, "modality": extractor.modality}, cache)
    return features, paths


def search_with_onnx(checkpoint, queries, modality, gallery_feats, topk, folder: Path) -> SearchResult:
    """Export the query encoder to ONNX and embed the queries with onnxruntime instead of torch."""
    import onnxruntime

    from csdn.export import export_onnx

    path = export_onnx(checkpoint, folder / f"{modality}.onnx", modality, flip=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    height, width = session.get_inputs()[0].shape[2:]
    (feats,) = session.run(None, {"images": preprocess(queries, (height, width)).numpy()})
    return search(torch.from_numpy(feats), gallery_feats, topk=topk)


def run(args: argparse.Namespace, checkpoint, gallery: Path, queries: list[str], work: Path) -> None:
    # flip=True: the official test feature (image + mirrored image), the evaluator's default too.
    extractor = FeatureExtractor(checkpoint, modality=args.gallery_modality, batch_size=64, flip=True)
    print(extractor)
    gallery_feats, gallery_paths = gallery_index(extractor, gallery, args.index)
    query_feats = extractor(queries, modality=args.query_modality)
    result = search(query_feats, gallery_feats, topk=args.topk, rerank=args.rerank, k1=5, k2=2)
    print(
        f"{len(gallery_paths)} gallery images ({args.gallery_modality}), {len(queries)} queries ({args.query_modality})"
    )
    for query, indices, distances in zip(queries, result.indices, result.distances, strict=True):
        print(f"\n{query}")
        for rank, (g, d) in enumerate(zip(indices.tolist(), distances.tolist(), strict=True), start=1):
            print(f"  #{rank}  {d:.4f}  {gallery_paths[g]}")
    if args.plot:
        if importlib.util.find_spec("matplotlib") is None:
            raise SystemExit("--plot needs matplotlib: pip install 'csdn[viz]'")
        from csdn.viz import plot_ranked_lists

        pids = None if not args.synthetic else ([Path(q).parent.name for q in queries],
                                                [Path(g).parent.name for g in gallery_paths])  # fmt: skip
        plot_ranked_lists(queries, gallery_paths, result.indices, args.plot, distances=result.distances,
                          query_pids=pids and pids[0], gallery_pids=pids and pids[1], topk=args.topk)  # fmt: skip
        print(f"\nranked lists: {args.plot}")
    if args.onnx:
        onnx_result = search_with_onnx(checkpoint, queries, args.query_modality, gallery_feats, args.topk, work)
        same = torch.equal(onnx_result.indices, result.indices) or args.rerank
        diff = (onnx_result.distances - result.distances).abs().max().item() if not args.rerank else float("nan")
        print(f"\nONNX search: same rankings as torch: {same}; max distance difference {diff:.2e}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="csdn-search-") as tmp:
        work = Path(tmp)
        if args.synthetic:
            checkpoint, gallery, queries = synthetic_inputs(work)
        else:
            checkpoint, gallery, queries = Path(args.checkpoint), Path(args.gallery), args.query
        run(args, checkpoint, gallery, queries, work)


if __name__ == "__main__":
    main()
