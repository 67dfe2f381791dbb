import json

import pytest

from csdn.engine.config import TrainConfig, apply_overrides, config_to_dict, load_config, save_config
from csdn.engine.presets import ABLATIONS, apply_ablation, get_preset
from csdn.models.factory import resolve_ablation


def test_defaults_are_the_official_hyper_parameters():
    cfg = TrainConfig()
    # values written out from the official main.py / base.py
    assert (cfg.data.height, cfg.data.width, cfg.model.last_stride, cfg.model.n_ctx) == (288, 144, 1, 4)
    s1, s2, s3 = cfg.stage1, cfg.stage2, cfg.stage3
    assert (s1.epochs, s1.batch_size, s1.lr, s1.weight_decay) == (60, 32, 3e-4, 1e-4)
    assert (s1.warmup_epochs, s1.warmup_lr_init, s1.lr_min, s1.temperature) == (5, 1e-5, 1e-6, 1.0)
    assert (s2.epochs, s2.batch_size, s2.lr) == (60, 64, 3e-4)
    assert (s3.epochs, s3.num_ids, s3.num_pos, s3.lr, s3.weight_decay) == (120, 8, 4, 3e-4, 5e-4)
    assert (s3.warmup_epochs, s3.warmup_factor, s3.milestones, s3.gamma) == (10, 0.01, (40, 70), 0.1)
    assert (s3.lambda1, s3.lambda2, s3.lambda3, s3.fast_lr_mult) == (0.15, 0.05, 0.1, 2.0)
    assert cfg.data.exchange_gray == 2 and cfg.model.integrator == "attention" and cfg.data.flip_p == 0.5
    assert cfg.model.template == "A photo of a X X X X person." and cfg.data.pad == 10


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_file_round_trip(tmp_path, suffix):
    cfg = apply_overrides(get_preset("demo"), ["stage3.milestones=5,8", "runtime.amp=bf16"])
    path = save_config(cfg, tmp_path / f"cfg{suffix}")
    assert load_config(path) == cfg
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_partial_file_keeps_section_defaults(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"stage2": {"epochs": 3}, "data": {"dataset": "llcm"}}))
    cfg = load_config(path)
    assert cfg.stage2.epochs == 3 and cfg.stage2.batch_size == 64 and cfg.data.dataset == "llcm"
    assert cfg.stage1 == TrainConfig().stage1


def test_overrides_are_typed():
    cfg = apply_overrides(
        TrainConfig(),
        ["stage1.epochs=7", "stage3.lr=1e-3", "quirks.bn_train_extraction=true", "model.clip=/x/RN50.pt"],
    )
    assert cfg.stage1.epochs == 7 and isinstance(cfg.stage1.epochs, int)
    assert cfg.stage3.lr == 1e-3 and cfg.quirks.bn_train_extraction is True and cfg.model.clip == "/x/RN50.pt"
    assert TrainConfig().stage1.epochs == 60  # the input is not modified


@pytest.mark.parametrize(
    ("item", "phrase"),
    [
        ("stage3.nope=1", "unknown config key 'stage3.nope'"),
        ("nope.epochs=1", "unknown config key 'nope.epochs'"),
        ("stage3.epochs=2.5", "expected an integer"),
        ("stage3.lr=fast", "expected a number"),
        ("runtime.amp=fp8", "expected one of 'none', 'bf16', 'fp16'"),
        ("quirks.dropout_text_bank=maybe", "expected true or false"),
        ("stage3.milestones=70,40", "increasing epochs"),
        ("stage3.num_pos=1", "at least 2 images per identity"),
        ("epochs", "expected section.key=value"),
    ],
)
def test_bad_overrides_give_clear_errors(item, phrase):
    with pytest.raises(ValueError, match=phrase.replace("(", r"\(").replace(".", r"\.")):
        apply_overrides(TrainConfig(), [item])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(ValueError, match="unknown extension"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.json").write_text('{"stage1": {"epochs": 1}, "extra": 1}')
    with pytest.raises(ValueError, match="unknown config key 'extra'"):
        load_config(tmp_path / "c.json")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "d.json")


def test_yaml_missing_gives_install_hint(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError("no yaml")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.raises(ValueError, match=r"pip install 'csdn\[yaml\]'"):
        save_config(TrainConfig(), tmp_path / "c.yaml")


def test_presets_and_ablations():
    for name in ("sysu", "regdb", "llcm"):
        cfg = get_preset(name)
        assert cfg.data.dataset == name and cfg.stage3 == TrainConfig().stage3
    assert get_preset("demo").model.clip.startswith("tiny")
    with pytest.raises(ValueError, match="valid presets: sysu, regdb, llcm, sysu-clean, regdb-clean, llcm-clean, demo"):
        get_preset("market")
    assert set(ABLATIONS) == {"csdn", "csdn_add", "csdn_none", "clip_vireid", "baseline"}
    plans = {name: resolve_ablation(apply_ablation(get_preset("sysu"), name).model) for name in ABLATIONS}
    assert {name: plan.stages for name, plan in plans.items()} == {
        "csdn": (1, 2, 3), "csdn_add": (1, 3), "csdn_none": (1, 3), "clip_vireid": (1, 3), "baseline": (3,)
    }  # fmt: skip
    assert {name: plan.integrator for name, plan in plans.items()} == {
        "csdn": "attention", "csdn_add": "add", "csdn_none": "none", "clip_vireid": "none", "baseline": "none"
    }  # fmt: skip
    assert [name for name, plan in plans.items() if plan.shared_prompts] == ["clip_vireid"]
    assert [name for name, plan in plans.items() if not plan.use_text] == ["baseline"]
    with pytest.raises(ValueError, match="unknown ablation"):
        apply_ablation(get_preset("sysu"), "nope")
    assert config_to_dict(get_preset("sysu"))["stage3"]["milestones"] == [40, 70]


def test_dataset_presets_run_the_official_procedure_and_clean_variants_do_not():
    official = {"bn_train_extraction": True, "dropout_text_bank": True, "sampled_feature_bank": True}
    clean = dict.fromkeys(official, False)
    for dataset in ("sysu", "regdb", "llcm"):
        cfg, cleaned = config_to_dict(get_preset(dataset)), config_to_dict(get_preset(f"{dataset}-clean"))
        assert cfg["quirks"] == official, dataset  # `csdn train --dataset X` reproduces the paper's procedure
        assert cleaned["quirks"] == clean, dataset
        assert cleaned["runtime"]["output_dir"] == f"runs/{dataset}-clean"
        for section in ("model", "data", "stage1", "stage2", "stage3"):  # only the procedure differs
            assert cfg[section] == cleaned[section], (dataset, section)
    assert config_to_dict(get_preset("demo"))["quirks"] == clean  # the demo keeps its numbers
