"""GlobalBatchNorm on 2 gloo ranks equals plain BatchNorm on the whole batch; convert_sync_batchnorm."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from csdn.engine.sync_batchnorm import GlobalBatchNorm, convert_sync_batchnorm

SCRIPT = Path(__file__).parent / "distributed_scripts" / "sync_bn.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("sync_bn_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_ranks_match_batchnorm_on_the_whole_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT)]
    done = subprocess.run([*cmd, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    script = _load_script()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, model in script.models().items():
        expected = script.run(name, model, 0, 1)  # plain BatchNorm, one process, whole batch
        assert expected["buffer.num_batches_tracked" if name != "conv_bn" else "buffer.1.num_batches_tracked"] == 2
        for key, value in expected.items():
            if key.startswith(("out", "x_grad", "eval")):  # per-row: the ranks' halves concatenated
                got = torch.cat([r[name][key] for r in ranks])
                assert torch.allclose(got, value, rtol=1e-9, atol=1e-10), (name, key)
            else:  # parameter gradients (summed over ranks) and buffers: equal on every rank
                for r in ranks:
                    assert torch.allclose(r[name][key], value, rtol=1e-9, atol=1e-10), (name, key)
                    assert r[name][key].dtype == value.dtype, (name, key)


def test_conversion_shares_parameters_and_is_plain_batchnorm_in_one_process():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.Sequential(nn.BatchNorm1d(2)))
    weight, running_mean = model[1].weight, model[1].running_mean
    reference = nn.BatchNorm2d(4, momentum=0.3)
    reference.load_state_dict(model[1].state_dict())
    converted = convert_sync_batchnorm(model, "cpu")
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[2][0], GlobalBatchNorm)
    assert converted[1].weight is weight and converted[1].running_mean is running_mean
    assert converted[1].momentum == 0.3
    x = torch.randn(5, 4, 6, 6)
    assert torch.equal(converted[1](x), reference(x))  # no process group: plain BatchNorm, stats included
    assert torch.equal(converted[1].running_var, reference.running_var)
    converted.eval(), reference.eval()
    assert torch.equal(converted[1](x), reference(x))
    cuda = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(4)), "cuda")
    assert isinstance(cuda[0], nn.SyncBatchNorm)
    assert isinstance(convert_sync_batchnorm(nn.BatchNorm1d(3), "cpu"), GlobalBatchNorm)
    with pytest.raises(ValueError, match=r"expects \(N, C, \*\) input"):
        GlobalBatchNorm(3)(torch.randn(3))
