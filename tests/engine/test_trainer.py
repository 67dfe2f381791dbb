import itertools
import json
import math
import random

import pytest
import torch

import csdn
from csdn.engine import apply_ablation, build_csdn, load_checkpoint, load_trained_model
from csdn.engine.feature_bank import sampled_bank_split
from csdn.engine.inputs import holdout_validation
from csdn.engine.trainer import NonFiniteLossError, Trainer

# parameter-name prefixes each stage may change, written out from SPEC §1
STAGE_PREFIXES = {
    1: ("prompt_learners.",),
    2: ("integrator.",),
    3: ("image_encoder.", "head_global.", "head_proj."),
}


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_each_stage_updates_only_its_parameters(tiny_cfg, sysu_train):
    cfg = tiny_cfg()
    model = build_csdn(cfg, sysu_train.num_classes)
    snaps = {0: snapshot(model)}
    last_epoch = {1: cfg.stage1.epochs - 1, 2: cfg.stage2.epochs - 1, 3: cfg.stage3.epochs - 1}

    def record(trainer, stage, epoch):
        if epoch == last_epoch[stage]:
            snaps[stage] = snapshot(trainer.model)

    Trainer(cfg, model, sysu_train, callbacks=[record]).fit()
    for stage, prefixes in STAGE_PREFIXES.items():
        diff = changed(snaps[stage - 1], snaps[stage])
        assert diff, f"stage {stage} changed nothing"
        outside = sorted(k for k in diff if not k.startswith(prefixes) and not k.startswith("hse."))
        assert outside == [], f"stage {stage} changed {outside}"
    assert any(k.startswith("image_encoder.stems.visible") for k in changed(snaps[2], snaps[3]))
    assert any(k.startswith("image_encoder.stems.infrared") for k in changed(snaps[2], snaps[3]))
    assert "hse.text_bank" in changed(snaps[2], snaps[3])  # the fixed bank is set once, at the start of stage 3
    # the text side never changes after stage 2, the prompts never after stage 1
    assert not any(k.startswith(("prompt_learners.", "text_encoder.")) for k in changed(snaps[1], snaps[3]))


def test_run_folder_metrics_and_final_model(tiny_cfg, sysu_train):
    cfg = tiny_cfg()
    final = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    out = final.parents[1]
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "last.pt").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == cfg.runtime.seed and run["torch"] == torch.__version__
    assert run["csdn"] == csdn.__version__  # the code that ran, whether or not it is pip-installed
    events = [json.loads(line)["event"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events == ["stage1/epoch"] * 2 + ["stage2/epoch"] * 2 + ["stage3/epoch"] * 3
    model, loaded_cfg, _ = load_trained_model(final)
    assert loaded_cfg == cfg and not model.training
    images = torch.rand(2, 3, 32, 16)
    assert model.encode_image(images, "infrared").shape == (2, model.embed_dim)


def test_existing_run_needs_resume_and_same_config(tiny_cfg, sysu_train):
    cfg = tiny_cfg("stage3.epochs=1")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit(resume=True)
    Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    other = tiny_cfg("stage3.epochs=1", "stage3.lr=0.5")
    with pytest.raises(ValueError, match=r"different configuration \(stage3.lr"):
        Trainer(other, build_csdn(other, sysu_train.num_classes), sysu_train).fit(resume=True)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_cfg, sysu_train):
    cfg = tiny_cfg()

    def poison(trainer, stage, epoch):
        if (stage, epoch) == (3, 0):
            with torch.no_grad():
                trainer.model.head_proj.classifier.weight.fill_(float("nan"))

    trainer = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train, callbacks=[poison])
    with pytest.raises(NonFiniteLossError, match=r"stage 3 epoch 2 iteration 1: the loss is not finite") as info:
        trainer.fit()
    assert "last good checkpoint" in str(info.value) and "--resume" in str(info.value)
    state = load_checkpoint(trainer.checkpoint_path)
    assert (state["stage"], state["epoch"]) == (3, 1)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    clipped = tiny_cfg("runtime.grad_clip_norm=5.0")  # runtime.* may change when resuming
    final = Trainer(clipped, build_csdn(clipped, sysu_train.num_classes), sysu_train).fit(resume=True)
    assert load_checkpoint(final)["stage"] == "final"


def test_periodic_evaluation_does_not_change_training(tiny_cfg, sysu_train):
    calls = []

    def fake_eval(model, trials):
        assert not model.training
        torch.rand(100)  # consumes the global RNG like a real evaluator's DataLoader would
        calls.append(trials)
        return {"rank1": 0.5, "mAP": 0.25}

    results = {}
    for name, evaluate in (("plain", None), ("eval", fake_eval)):
        cfg = tiny_cfg("runtime.eval_every=1", "runtime.eval_trials=2", output=name)
        model = build_csdn(cfg, sysu_train.num_classes)
        Trainer(cfg, model, sysu_train, evaluate=evaluate).fit()
        results[name] = snapshot(model)
    assert calls == [2, 2, 2]
    assert changed(results["plain"], results["eval"]) == set()
    lines = tiny_cfg(output="eval").runtime.output_dir + "/metrics.jsonl"
    evals = [json.loads(x) for x in open(lines) if '"stage3/eval"' in x]
    assert [e["rank1"] for e in evals] == [0.5] * 3


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # fp16 scaler skips steps
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_and_channels_last_train(tiny_cfg, sysu_train, amp):
    cfg = tiny_cfg(
        "stage1.epochs=1",
        "stage2.epochs=1",
        "stage3.epochs=1",
        f"runtime.amp={amp}",
        "runtime.channels_last=true",
        "runtime.grad_clip_norm=1.0",
    )
    Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    lines = open(cfg.runtime.output_dir + "/metrics.jsonl").read().splitlines()
    assert all(math.isfinite(json.loads(x).get("loss", 0.0)) for x in lines)


def test_holdout_validation_split(sysu_train):
    train, val = holdout_validation(sysu_train, 2, seed=0)
    held = {s.pid for s in val.query} | {s.pid for s in val.gallery}
    kept = sorted({s.pid for s in train.visible})
    assert len(held) == 2 and not held & set(kept) and len(kept) == sysu_train.num_classes - 2
    assert train.num_classes == len(kept)
    assert {s.label for s in train.visible} == set(range(len(kept)))
    assert all(s.label == kept.index(s.pid) for s in train.visible + train.infrared)  # sorted-pid order
    assert {s.modality for s in val.query} == {"infrared"} and {s.modality for s in val.gallery} == {"visible"}
    assert val.protocol == "regdb" and all(s.label == -1 for s in val.query)
    assert holdout_validation(sysu_train, 2, seed=0)[1] == val  # deterministic for a seed
    # the seed matters: the held-out ids are random.Random(seed).sample(sorted pids, n), seed by seed
    draws = {seed: {s.pid for s in holdout_validation(sysu_train, 2, seed=seed)[1].query} for seed in range(6)}
    assert all(draws[seed] == set(random.Random(seed).sample(sorted(sysu_train.pids), 2)) for seed in draws)
    assert len({frozenset(d) for d in draws.values()}) > 1
    assert (val.query_modality, val.gallery_modality) == ("infrared", "visible")
    assert val.name == "validation (2 held-out train ids)"
    # the documented bounds 1..C-2 at both edges (C = 8 training ids here)
    for num_ids in (1, sysu_train.num_classes - 2):
        assert holdout_validation(sysu_train, num_ids)[0].num_classes == sysu_train.num_classes - num_ids
    for num_ids in (0, sysu_train.num_classes - 1):
        with pytest.raises(ValueError, match=f"data.val_ids={num_ids} is invalid: expected 1..6 for 8 train ids"):
            holdout_validation(sysu_train, num_ids)


@pytest.mark.parametrize(
    ("ablation", "stages", "hse"),
    [("baseline", ["stage3"], False), ("clip_vireid", ["stage1", "stage3"], True),
     ("csdn_add", ["stage1", "stage3"], True), ("csdn_none", ["stage1", "stage3"], True)],
)  # fmt: skip
def test_ablations_train_the_right_stages(tiny_cfg, sysu_train, ablation, stages, hse):
    cfg = apply_ablation(tiny_cfg("stage1.epochs=1", "stage3.epochs=1", output=ablation), ablation)
    model = build_csdn(cfg, sysu_train.num_classes)
    assert ("shared" in model.prompt_learners) == (ablation == "clip_vireid")
    trainer = Trainer(cfg, model, sysu_train)
    trainer.fit()
    records = [json.loads(x) for x in open(cfg.runtime.output_dir + "/metrics.jsonl")]
    assert sorted({r["event"].split("/")[0] for r in records}) == stages
    assert ("hse_vis" in records[-1]) == hse and ("hse_ir" in records[-1]) == hse
    if ablation == "csdn_none":  # each modality is aligned with its own prompts' text features
        assert not torch.equal(trainer.text_banks["visible"], trainer.text_banks["infrared"])
    if ablation == "clip_vireid":  # one shared prompt learner: both modalities use the same bank
        assert torch.equal(trainer.text_banks["visible"], trainer.text_banks["infrared"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_with_amp_and_channels_last(tiny_cfg, sysu_train):
    extra = ("runtime.device=cuda", "runtime.amp=bf16", "runtime.channels_last=true", "runtime.deterministic=false")
    cfg = tiny_cfg(*extra)
    model = build_csdn(cfg, sysu_train.num_classes, "cuda")
    Trainer(cfg, model, sysu_train).fit()
    assert next(model.parameters()).device.type == "cuda"
    state = load_checkpoint(cfg.runtime.output_dir + "/checkpoints/final.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_official_bn_train_extraction_only_in_stage2_with_stage1_batch_size(tiny_cfg, sysu_train):
    # Official script: the stage-1 features are extracted before anything calls train(), and CLIP's modules come out
    # of clip.build_model in eval mode, so BN uses its running statistics; the stage-2 features are extracted after
    # stage 1's set_train(), through the same loader (batch_size=stage1_batch_size), so BN uses batch statistics
    # of stage1.batch_size images, never of the stage-2 batch size.
    cfg = tiny_cfg("quirks.bn_train_extraction=true", "stage3.epochs=1", "stage1.epochs=1", "stage2.epochs=1")
    assert (cfg.stage1.batch_size, cfg.stage2.batch_size, cfg.data.extract_batch_size) == (8, 16, 256)
    model = build_csdn(cfg, sysu_train.num_classes)
    calls = []
    original = model.clip_image_features

    def spy(images, modality):
        bn_training = [m.training for m in model.image_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert len(set(bn_training)) == 1
        calls.append((bn_training[0], modality, images.shape[0]))
        return original(images, modality)

    model.clip_image_features = spy
    Trainer(cfg, model, sysu_train).fit()
    nv, ni = len(sysu_train.visible), len(sysu_train.infrared)
    stage1 = [(False, "visible", nv), (False, "infrared", ni)]  # eval mode, extract_batch_size 256 > n: one pass
    # stage 2 in the official loop's order: visible batch j, infrared batch j, ...; then the longer modality's rest
    vis, ir = ([8] * (n // 8) + ([n % 8] if n % 8 else []) for n in (nv, ni))
    pairs = itertools.zip_longest([("visible", s) for s in vis], [("infrared", s) for s in ir])
    stage2 = [(True, *step) for pair in pairs for step in pair if step is not None]
    assert calls == stage1 + stage2


def test_sampled_bank_split_is_one_official_identity_sampler_epoch(sysu_train):
    # official get_train_normal_loader: IdentitySampler(P=8 ids, K=4) yields (N // 32 + 1) * 32 aligned pairs,
    # N = max(#visible, #infrared), in blocks of P identities x K images, images drawn with replacement
    p, k = 3, 2
    split = sampled_bank_split(sysu_train, p, k, seed=5, stage=1)
    n = max(len(sysu_train.visible), len(sysu_train.infrared))
    assert len(split.visible) == len(split.infrared) == (n // (p * k) + 1) * (p * k)
    assert [s.label for s in split.visible] == [s.label for s in split.infrared]
    assert {s.path for s in split.visible} <= {s.path for s in sysu_train.visible}
    assert {s.path for s in split.infrared} <= {s.path for s in sysu_train.infrared}
    for start in range(0, len(split.visible), p * k):
        labels = [s.label for s in split.visible[start : start + p * k]]
        assert len(set(labels)) == p and all(labels.count(x) == k for x in set(labels))
    assert sampled_bank_split(sysu_train, p, k, seed=5, stage=1) == split  # deterministic per (seed, stage)
    assert sampled_bank_split(sysu_train, p, k, seed=5, stage=2) != split  # drawn again for stage 2


def test_sampled_feature_bank_gives_the_official_step_counts(tiny_cfg, sysu_train):
    cfg = tiny_cfg("quirks.sampled_feature_bank=true", "stage3.epochs=1")
    Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    records = [json.loads(x) for x in open(cfg.runtime.output_dir + "/metrics.jsonl")]
    steps = {e: [r["steps"] for r in records if r["event"] == e] for e in ("stage1/epoch", "stage2/epoch")}
    # bank of M = (N // (P*K) + 1) * P*K pairs (P*K = 4 * 2 here); stage 1 steps over M pairs, stage 2 over 2M features
    m = (max(len(sysu_train.visible), len(sysu_train.infrared)) // 8 + 1) * 8
    assert steps["stage1/epoch"] == [m // cfg.stage1.batch_size] * cfg.stage1.epochs
    assert steps["stage2/epoch"] == [2 * m // cfg.stage2.batch_size] * cfg.stage2.epochs
