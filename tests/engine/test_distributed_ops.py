"""Whole-batch losses on 2 gloo ranks under DDP give exactly the single-process gradient."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from csdn.engine.distributed_ops import check_global_batch, gather_chunks, gather_with_grad, global_mean, rank_slice

SCRIPT = Path(__file__).parent / "distributed_scripts" / "loss_grads.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("loss_grads_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(script: Path, out_dir: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    done = subprocess.run([*cmd, str(out_dir)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_helpers_are_the_identity_in_one_process():
    x = torch.randn(6, 3, requires_grad=True)
    assert gather_with_grad(x) is x
    assert torch.equal(gather_chunks(x, 3), x)
    assert torch.equal(global_mean(x), x.mean())
    assert rank_slice(list(range(6))) == list(range(6))
    assert rank_slice(list(range(6)), rank=1, world_size=3) == [2, 3]
    assert check_global_batch(16, 4, "stage1.batch_size") == 4
    with pytest.raises(ValueError, match=r"stage1.batch_size=10: the global batch of 10 items cannot be split evenly"):
        check_global_batch(10, 4, "stage1.batch_size")
    with pytest.raises(ValueError, match="cannot be cut into 4 equal parts"):
        gather_chunks(x, 4)


def test_two_ranks_ddp_gradients_equal_one_process(tmp_path):
    script = _load_script()
    _torchrun(SCRIPT, tmp_path)
    state, visible, infrared, labels = script.problem()
    net = script.Net().double()
    net.load_state_dict(state)
    expected = script.gradients(net, net.classifier, visible, infrared, labels)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name in script.CASES:
        for key, value in expected[name].items():
            for rank in ranks:
                assert torch.allclose(rank[name][key], value, rtol=1e-9, atol=1e-12), (name, key)
        assert expected[name]["image.1.num_batches_tracked"] > 0
        grad_norm = sum(v.norm() for k, v in expected[name].items() if v.is_floating_point() and k != "loss")
        assert grad_norm > 1e-3, name  # a real gradient, not zeros that match trivially
