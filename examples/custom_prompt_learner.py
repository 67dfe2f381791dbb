"""Swap in your own component: a prompt learner with an extra context shared by all identities, then train.

CSDN is assembled from plain ``nn.Module`` components (``csdn.models``). Subclass one, build the model from
explicit parts with ``CSDN(...)``, and hand it to the same ``Trainer`` ``csdn train`` uses: each stage trains
whatever parameters the model exposes for it (here stage 1 also trains ``shared_ctx``).

    python examples/custom_prompt_learner.py --synthetic --quick      # under a minute on a CPU
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import csdn.clip
from csdn.data import SYSUMM01
from csdn.data.synthetic import make_sysu
from csdn.engine import apply_overrides, get_preset
from csdn.engine.trainer import Trainer
from csdn.evaluation import VIReIDEvaluator
from csdn.models import CSDN, ModalityPromptLearner, Prompts, SemanticIntegrator, TextEncoder, build_image_encoder


class SharedContextPromptLearner(ModalityPromptLearner):
    """Per-identity context (CSDN) plus one context shared by every identity of the modality (CoOp-style).

    Prompt of identity ``c``: ``[SOT, "a photo of a", ctx[c] + shared_ctx, "person.", EOT]``. ``shared_ctx``
    starts at zero, so the learner starts exactly as CSDN's.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shared_ctx = nn.Parameter(torch.zeros(self.n_ctx, self.ctx.shape[-1], dtype=self.ctx.dtype))

    def forward(self, labels: torch.Tensor) -> Prompts:
        prompts = super().forward(labels)  # embeddings (B, L, W), eot_index (B,)
        start = self.token_prefix.shape[1]  # the context tokens follow the prefix
        after = prompts.embeddings.shape[1] - start - self.n_ctx
        shift = F.pad(self.shared_ctx, (0, 0, start, after))  # (L, W), zero outside the context positions
        return Prompts(prompts.embeddings + shift, prompts.eot_index)


def build_custom_csdn(num_classes: int, image_size: tuple[int, int]) -> CSDN:
    """Assemble CSDN from explicit components around a (tiny, random) CLIP, with the custom prompt learners."""
    clip = csdn.clip.build_model(csdn.clip.tiny_state_dict("RN", seed=0), image_size=image_size, last_stride=1)
    # with real weights: clip, _ = csdn.clip.load("RN50"); then build_model(clip.state_dict(), image_size=...)
    embed_dim = clip.text_projection.shape[1]
    learners = {
        m: SharedContextPromptLearner(clip.token_embedding, num_classes, n_ctx=4) for m in ("visible", "infrared")
    }
    return CSDN(
        image_encoder=build_image_encoder(clip.visual, stem_relu="official"),
        prompt_learners=learners,
        text_encoder=TextEncoder(clip),
        integrator=SemanticIntegrator(embed_dim, dropout=0.1),
        num_classes=num_classes,
    )


def run(root: Path, out: Path, quick: bool) -> None:
    dataset = SYSUMM01(root)
    quick_overrides = ["stage1.epochs=3", "stage2.epochs=1", "stage3.epochs=1", "stage3.warmup_epochs=1",
                       "stage3.milestones=1", "runtime.progress=false"]  # fmt: skip
    cfg = apply_overrides(get_preset("demo"), [f"runtime.output_dir={out}", *(quick_overrides if quick else [])])
    torch.manual_seed(cfg.runtime.seed)  # examples may seed the global RNG; the library never touches it
    model = build_custom_csdn(dataset.train.num_classes, (cfg.data.height, cfg.data.width))
    before = {m: model.prompt_learners[m].shared_ctx.detach().clone() for m in ("visible", "infrared")}

    final = Trainer(cfg, model, dataset.train).fit()

    for modality, start in before.items():
        moved = (model.prompt_learners[modality].shared_ctx.detach().cpu() - start).norm().item()
        print(f"{modality} shared context moved by {moved:.4f} during stage 1")
    evaluator = VIReIDEvaluator(dataset, height=cfg.data.height, width=cfg.data.width)
    report = evaluator.run(model.eval(), trials=1, chance=True)  # the table ends with the chance level
    print(report.to_table())
    # A custom model is reloaded by building it again and loading the checkpoint's state dict:
    state = torch.load(final, map_location="cpu", weights_only=True)["model"]
    build_custom_csdn(dataset.train.num_classes, (cfg.data.height, cfg.data.width)).load_state_dict(state)
    print(f"checkpoint {final} reloads into a fresh custom model")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="SYSU-MM01 folder (default with --synthetic: a generated one)")
    parser.add_argument("--synthetic", action="store_true", help="generate a small synthetic SYSU-MM01")
    parser.add_argument("--quick", action="store_true", help="a few epochs (CI)")
    args = parser.parse_args(argv)
    if not args.synthetic and not args.root:
        parser.error("pass --root or --synthetic")
    with tempfile.TemporaryDirectory(prefix="csdn-custom-") as tmp:
        root = Path(args.root) if args.root else Path(
            make_sysu(Path(tmp) / "sysu", num_train_ids=8, num_val_ids=2, num_test_ids=4, images_per_cam=2)
        )  # fmt: skip
        run(root, Path(tmp) / "run", args.quick)


if __name__ == "__main__":
    main()
