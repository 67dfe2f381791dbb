"""A run SIGKILLed mid-stage and resumed ends with exactly the weights of an uninterrupted run (CPU)."""

import os
import signal
import subprocess
import sys
import textwrap

import torch

from csdn.engine import load_checkpoint

from .conftest import TINY_OVERRIDES

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    import torch
    from csdn.data import SYSUMM01
    from csdn.engine import apply_overrides, get_preset
    from csdn.engine import build_csdn
    from csdn.engine.trainer import Trainer

    torch.set_num_threads(1)
    root, out, kill, resume, *overrides = sys.argv[1:]
    cfg = apply_overrides(get_preset("demo"), [*overrides, f"runtime.output_dir={out}"])
    train = SYSUMM01(root).train

    def killer(trainer, stage, epoch):
        if kill == f"{stage}:{epoch}":  # right after this epoch's checkpoint
            os.kill(os.getpid(), signal.SIGKILL)
        if kill == f"timer-{stage}:{epoch}":  # somewhere in the middle of what follows
            threading.Timer(0.15, os.kill, (os.getpid(), signal.SIGKILL)).start()

    Trainer(cfg, build_csdn(cfg, train.num_classes), train, callbacks=[killer]).fit(resume=resume == "resume")
    """
)


def run(script, root, out, kill, resume, overrides):
    cmd = [sys.executable, str(script), str(root), str(out), kill, resume, *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_sigkill_then_resume_is_bit_exact(tmp_path, sysu_root):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    overrides = [*TINY_OVERRIDES, "stage3.epochs=4", "data.num_workers=1"]
    ref = run(script, sysu_root, tmp_path / "ref", "none", "fresh", overrides)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    first = run(script, sysu_root, out, "3:1", "fresh", overrides)  # killed mid stage 3 (epochs 2-3 left)
    assert first.returncode == -signal.SIGKILL, first.stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (state["stage"], state["epoch"]) == (3, 2) and not (out / "checkpoints" / "final.pt").exists()
    second = run(script, sysu_root, out, "timer-3:2", "resume", overrides)  # killed again, inside epoch 4
    assert second.returncode == -signal.SIGKILL, second.stderr
    third = run(script, sysu_root, out, "none", "resume", overrides)
    assert third.returncode == 0, third.stderr
    expected = load_checkpoint(tmp_path / "ref" / "checkpoints" / "final.pt")["model"]
    resumed = load_checkpoint(out / "checkpoints" / "final.pt")["model"]
    assert expected.keys() == resumed.keys()
    assert [k for k in expected if not torch.equal(expected[k], resumed[k])] == []
    assert not [p for p in os.listdir(out / "checkpoints") if p.endswith(".tmp")]


def test_official_quirks_kill_between_and_inside_stages_then_resume(tmp_path, sysu_root):
    # identity-sampled train-mode BN extraction (features cached next to the checkpoint), train-mode text-bank dropout
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    quirks = ["quirks.bn_train_extraction=true", "quirks.dropout_text_bank=true", "quirks.sampled_feature_bank=true"]
    overrides = [*TINY_OVERRIDES, "stage3.epochs=1", *quirks]
    assert run(script, sysu_root, tmp_path / "ref", "none", "fresh", overrides).returncode == 0
    out = tmp_path / "killed"
    assert run(script, sysu_root, out, "1:1", "fresh", overrides).returncode == -signal.SIGKILL  # stage 1 done
    assert run(script, sysu_root, out, "2:0", "resume", overrides).returncode == -signal.SIGKILL  # mid stage 2
    assert (out / "checkpoints" / "features_stage2.pt").is_file()
    assert run(script, sysu_root, out, "none", "resume", overrides).returncode == 0
    assert sorted(os.listdir(out / "checkpoints")) == ["final.pt", "last.pt"]  # feature caches removed
    expected = load_checkpoint(tmp_path / "ref" / "checkpoints" / "final.pt")["model"]
    resumed = load_checkpoint(out / "checkpoints" / "final.pt")["model"]
    assert [k for k in expected if not torch.equal(expected[k], resumed[k])] == []
