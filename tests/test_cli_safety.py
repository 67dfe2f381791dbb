"""Safety of the command line: corrupted files, shared run folders, SIGTERM, failed starts, files that run code."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from csdn.cli import main
from csdn.data.synthetic import make_sysu
from csdn.engine import config_to_dict, get_preset, save_checkpoint

TINY = [
    "data.height=32", "data.width=16", "data.pad=2", "data.num_workers=0", "stage1.epochs=1", "stage1.batch_size=8",
    "stage2.epochs=1", "stage2.batch_size=16", "stage3.epochs=2", "stage3.num_ids=4", "stage3.num_pos=2",
    "stage3.warmup_epochs=0", "stage3.milestones=", "runtime.progress=false", "runtime.checkpoint_every=1",
]  # fmt: skip


def _train_argv(root, out, *extra):
    sets = [x for item in [*TINY, f"runtime.output_dir={out}", *extra] for x in ("--set", item)]
    return ["-q", "train", "--preset", "demo", "--root", str(root), *sets, "--no-eval"]


def run_cli(capsys, *argv):
    code = main(list(map(str, argv)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety") / "sysu"
    make_sysu(root, num_train_ids=6, num_val_ids=2, num_test_ids=4, images_per_cam=2, image_size=(32, 16), seed=5)
    return root


@pytest.fixture(scope="module")
def run_dir(sysu_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("safety") / "run"
    assert main(_train_argv(sysu_root, out)) == 0
    return out


def _largest_tensor(state):
    return max(state["model"].values(), key=torch.Tensor.numel)


# ------------------------------------------------------------------------------------------------- integrity


def test_eval_refuses_a_final_pt_with_64_flipped_bytes(capsys, run_dir, sysu_root, tmp_path, flip_tensor_bytes):
    final = tmp_path / "final.pt"
    shutil.copy(run_dir / "checkpoints" / "final.pt", final)
    flip_tensor_bytes(final, _largest_tensor(torch.load(final, weights_only=True)))
    code, out, err = run_cli(capsys, "-q", "eval", "--root", sysu_root, "--checkpoint", final, "--trials", 1)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"csdn: error: {str(final)!r} is corrupted: " + err.split("is corrupted: ")[1].strip()
    ]
    assert "does not match the sha256 digest" in err


def test_resume_refuses_a_last_pt_with_64_flipped_bytes(capsys, run_dir, sysu_root, tmp_path, flip_tensor_bytes):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    last = copy / "checkpoints" / "last.pt"
    flip_tensor_bytes(last, _largest_tensor(torch.load(last, weights_only=True)))
    code, _, err = run_cli(capsys, *_train_argv(sysu_root, copy), "--resume")
    assert code == 2 and f"csdn: error: {str(last)!r} is corrupted" in err


def test_resume_refuses_a_last_pt_of_another_shape_in_one_line(capsys, run_dir, sysu_root, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    last = copy / "checkpoints" / "last.pt"
    state = {k: v for k, v in torch.load(last, weights_only=True).items() if k not in ("format", "sha256")}
    state["model"]["head_proj.bn.weight"] = torch.ones(3)  # a valid digest, a shape this model does not have
    save_checkpoint(state, last)
    code, _, err = run_cli(capsys, *_train_argv(sysu_root, copy), "--resume")
    assert code == 2 and err.count("\n") == 1, err
    assert f"csdn: error: checkpoint {str(last)!r} does not fit the model" in err and "head_proj.bn.weight" in err


# ------------------------------------------------------------------------------------------ shared run folders

HOLD = textwrap.dedent("""
    import sys
    from csdn.engine.run_dir import claim_run_folder
    with claim_run_folder(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()
""")


def test_a_second_training_on_a_held_folder_exits_2_naming_the_holder(capsys, sysu_root, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        code, _, err = run_cli(capsys, *_train_argv(sysu_root, out))
        left = sorted(p.name for p in out.iterdir())
    finally:
        holder.communicate(timeout=30)
    assert code == 2 and f"csdn: error: run folder {str(out)!r} is in use by pid {holder.pid} on host" in err
    assert "started 20" in err and len(err.strip().splitlines()) == 1
    assert left == ["run.lock"]  # the refused run wrote nothing (not even train.log)


# --------------------------------------------------------------------------------------------- SIGTERM, resume

TERMINATE_AFTER_FIRST_STAGE3_EPOCH = textwrap.dedent("""
    import os, signal, sys
    from csdn.engine import trainer

    init = trainer.Trainer.__init__

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        def stop(tr, stage, epoch):
            if (stage, epoch) == (3, 0):
                os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends
        self.callbacks.append(stop)

    trainer.Trainer.__init__ = patched
    from csdn.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_stops_with_143_and_the_run_resumes_cleanly(capsys, sysu_root, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", TERMINATE_AFTER_FIRST_STAGE3_EPOCH, *_train_argv(sysu_root, out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert "csdn: terminated by SIGTERM" in proc.stderr and "--resume" in proc.stderr
    assert not (out / "checkpoints" / "final.pt").exists() and not (out / "run.lock").exists()
    # leftovers of a kill: a temp file of a dead writer, and an epoch line logged just before a killed save
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    temp = out / "checkpoints" / f".last.{int(dead.stdout)}.0badc0de.tmp.pt"
    temp.write_bytes(b"half a checkpoint")
    with (out / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"time": 0, "event": "stage3/epoch", "step": 1, "loss": 9.0}) + "\n")
    code, _, err = run_cli(capsys, *_train_argv(sysu_root, out), "--resume")
    assert code == 0, err
    assert not temp.exists() and (out / "checkpoints" / "final.pt").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [(r["event"], r["step"]) for r in records if r["event"].endswith("/epoch")]
    assert epochs == [("stage1/epoch", 0), ("stage2/epoch", 0), ("stage3/epoch", 0), ("stage3/epoch", 1)]
    assert all(r.get("loss") != 9.0 for r in records)


# ------------------------------------------------------------------------------------------- failed starts


def test_a_failed_start_leaves_no_new_folder(capsys, sysu_root, tmp_path):
    out = tmp_path / "runs" / "new"
    code, _, err = run_cli(capsys, *_train_argv(sysu_root, out, f"model.clip={tmp_path / 'missing.pt'}"))
    assert code == 2 and "model.clip=" in err and "not found" in err
    assert not out.exists()


def test_a_failed_start_in_an_existing_folder_keeps_its_files(capsys, sysu_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    code, _, _ = run_cli(capsys, *_train_argv(sysu_root, out, f"model.clip={tmp_path / 'missing.pt'}"))
    assert code == 2 and [p.name for p in out.iterdir()] == ["notes.txt"]


# ----------------------------------------------------------------------------------------- CLIP files, code


def test_an_unreachable_clip_name_is_one_line_saying_where_to_put_the_file(capsys, monkeypatch, sysu_root, tmp_path):
    from csdn.clip import pretrained

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sha = "0" * 64
    monkeypatch.setitem(pretrained._MODELS, "RN50", f"http://127.0.0.1:{port}/{sha}/RN50.pt")
    monkeypatch.setenv("CSDN_CLIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *_train_argv(sysu_root, out, "model.clip=RN50"))
    assert code == 2 and err.count("\n") == 1 and err.startswith("csdn: error: could not download http://127.0.0.1")
    assert f"put it at {tmp_path / 'cache' / 'RN50.pt'}" in err and not out.exists()


def test_an_old_checkpoint_never_makes_its_clip_file_run_code_without_trust_code(
    capfd, sysu_root, tmp_path, save_self_restoring_archive
):
    archive = save_self_restoring_archive(tmp_path / "clip.pt")
    config = config_to_dict(get_preset("demo"))
    config["model"]["clip"] = str(archive)  # an old checkpoint: no clip_arch, the config names the CLIP file
    model = {"head_global.classifier.weight": torch.zeros(4, 8)}
    save_checkpoint({"stage": "final", "model": model, "config": config, "num_classes": 4}, tmp_path / "old.pt")
    capfd.readouterr()
    extract = ["extract", "--images", sysu_root / "cam3", "--out", tmp_path / "f.pt", "--modality", "visible"]
    for command in (["eval", "--root", sysu_root], extract):
        code = main(list(map(str, ["-q", *command, "--checkpoint", tmp_path / "old.pt"])))
        captured = capfd.readouterr()  # the file the checkpoint names is not even opened
        assert code == 2 and "has no CLIP architecture record" in captured.err and "--clip PATH_OR_NAME" in captured.err
        assert "code from the archive ran" not in captured.out and captured.err.count("\n") == 1
        code = main(list(map(str, ["-q", *command, "--checkpoint", tmp_path / "old.pt", "--clip", archive])))
        captured = capfd.readouterr()  # the user's --clip is read as data only
        assert code == 2 and "restores itself with its own code" in captured.err
        assert "code from the archive ran" not in captured.out
    argv = ["-q", "eval", "--root", sysu_root, "--checkpoint", tmp_path / "old.pt", "--clip", archive, "--trust-code"]
    code = main(list(map(str, argv)))
    captured = capfd.readouterr()
    assert "TorchScript code from the archive ran" in captured.out  # the opt-in reached the CLIP reader
    assert code == 2 and "csdn: error:" in captured.err  # and the archive is no CLIP


def test_ablate_runs_archive_code_only_with_trust_code(capfd, sysu_root, tmp_path, save_self_restoring_archive):
    archive = save_self_restoring_archive(tmp_path / "clip.pt")
    base = ["-q", "ablate", "--root", sysu_root, "--preset", "demo", "--variants", "baseline", "--no-report",
            "--set", f"model.clip={archive}"]  # fmt: skip
    capfd.readouterr()
    code = main(list(map(str, [*base, "--out", tmp_path / "study"])))
    captured = capfd.readouterr()
    assert code == 2 and "restores itself with its own code" in captured.err
    assert "code from the archive ran" not in captured.out
    code = main(list(map(str, [*base, "--out", tmp_path / "study2", "--trust-code"])))
    captured = capfd.readouterr()
    assert "TorchScript code from the archive ran" in captured.out  # the opt-in reached the CLIP reader
    assert code == 2 and "csdn: error:" in captured.err  # and the archive is no CLIP
