"""Every deprecated alias (docs/development.md, "Deprecation policy") warns, names its replacement, and works."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

from csdn.data.samplers import CrossModalityIdentitySampler
from csdn.engine import build_csdn
from csdn.engine.build import load_trained_model
from csdn.engine.feature_bank import extract_clip_features
from csdn.inference import FeatureExtractor
from csdn.losses import pairwise
from csdn.models import checkpoint


def _fresh_import(name: str):  # a module's import-time warning fires once per import
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize(
    ("module", "name", "new", "target"),
    [
        ("csdn.engine", "build_model", "csdn.engine.build_csdn", build_csdn),
        ("csdn.engine.feature_bank", "extract_features", "extract_clip_features", extract_clip_features),
    ],
)
def test_renamed_function_warns_and_is_the_new_one(module: str, name: str, new: str, target: object) -> None:
    mod = importlib.import_module(module)
    with pytest.warns(FutureWarning, match=rf"{module}\.{name} is deprecated since csdn 0\.2\.0 .* use .*{new}"):
        alias = getattr(mod, name)
    assert alias is target
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        mod.not_a_name  # noqa: B018


@pytest.mark.parametrize(
    ("module", "new", "names"),
    [
        ("csdn.losses.distance", "csdn.losses.pairwise", {"pairwise_euclidean": pairwise.pairwise_euclidean}),
        (
            "csdn.engine.modeling",
            "csdn.engine.build",
            {"build_model": build_csdn, "load_trained_model": load_trained_model},
        ),
        ("csdn.engine.checkpoint", "csdn.models.checkpoint", {"save_checkpoint": checkpoint.save_checkpoint}),
        ("csdn.extract", "csdn.inference", {"FeatureExtractor": FeatureExtractor}),
    ],
)
def test_renamed_module_warns_and_reexports(module: str, new: str, names: dict[str, object]) -> None:
    with pytest.warns(FutureWarning, match=rf"{module} is deprecated since csdn 0\.2\.0 .* use {new}"):
        mod = _fresh_import(module)
    for name, target in names.items():
        assert getattr(mod, name) is target


def test_old_pairwise_module_computes() -> None:
    with pytest.warns(FutureWarning):
        distance = _fresh_import("csdn.losses.distance")
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert torch.allclose(distance.pairwise_euclidean(x, x), torch.tensor([[0.0, 5.0], [5.0, 0.0]]), atol=1e-4)


def test_sampler_num_instances_warns_and_sets_num_pos() -> None:
    labels = [i // 4 for i in range(16)]
    with pytest.warns(FutureWarning, match=r"num_instances=\.\.\.\) is deprecated .* use num_pos"):
        old = CrossModalityIdentitySampler(labels, labels, num_ids=2, num_instances=2, seed=3)
    new = CrossModalityIdentitySampler(labels, labels, num_ids=2, num_pos=2, seed=3)
    assert old.num_pos == 2
    assert list(old) == list(new)


def test_importing_csdn_warns_nothing() -> None:
    """Only using an old name warns: importing the package and its subpackages stays silent."""
    code = "import csdn, csdn.engine, csdn.engine.feature_bank, csdn.data.samplers, csdn.losses, csdn.inference"
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
