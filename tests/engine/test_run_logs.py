"""Progress lines, train.log, per-iteration metrics, step callbacks and epoch snapshots of a tiny Trainer.fit."""

import json
import logging
import re
import types

import pytest
import torch

from csdn.engine import build_csdn, load_checkpoint
from csdn.engine.trainer import Trainer

LINE = re.compile(
    r"stage (\d) epoch (\d+)/(\d+) iter (\d+)/(\d+) (.*) lr=\S+ [\d.]+ img/s data [\d.]+s "
    r"eta \d+:\d\d:\d\d run ~?\d+:\d\d:\d\d"
)


@pytest.fixture
def clean_logging():
    """No handler on the csdn or root logger (as in a plain Python session), restored afterwards."""
    package, root = logging.getLogger("csdn"), logging.getLogger()
    saved = (package.handlers[:], package.level, root.handlers[:], package.propagate)
    package.handlers.clear()
    root.handlers.clear()
    package.setLevel(logging.NOTSET)
    yield package
    package.handlers[:], root.handlers[:] = saved[0], saved[2]
    package.setLevel(saved[1])


def epoch_steps(out):
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {(r["event"][5], r["step"]): r["steps"] for r in records if r["event"].endswith("/epoch")}, records


def test_iteration_lines_in_train_log_and_metrics_off_a_terminal(tiny_cfg, sysu_train, clean_logging, capsys):
    cfg = tiny_cfg("runtime.log_every=2", "runtime.log_lines=0")  # the fixed interval alone
    trainer = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    root = logging.getLogger()
    pytest_handlers, root.handlers[:] = root.handlers[:], []  # pytest's capture handlers, added after fixtures
    try:
        trainer.fit()
    finally:
        root.handlers[:] = pytest_handlers
    out = cfg_dir(cfg)
    steps, records = epoch_steps(out)
    # expected: one line at every 2nd iteration of every epoch (counted from the epoch records' step counts)
    expected = [(int(s), e, i) for (s, e), n in sorted(steps.items()) for i in range(2, n + 1, 2)]
    assert expected, "the tiny run has no epoch with 2 iterations"
    log_text = (out / "train.log").read_text()
    found = [(int(m[1]), int(m[2]) - 1, int(m[4])) for m in LINE.finditer(log_text)]
    assert found == expected
    totals = {(int(m[1]), int(m[2]) - 1): int(m[5]) for m in LINE.finditer(log_text)}
    assert all(totals[(s, e)] == steps[(str(s), e)] for s, e in totals)
    assert all(int(m[3]) == {1: 2, 2: 2, 3: 3}[int(m[1])] for m in LINE.finditer(log_text))  # epochs per stage
    terms = {int(m[1]): set(re.findall(r"(\w+)=", m[6])) for m in LINE.finditer(log_text)}
    assert terms[1] == terms[2] == {"loss", "i2t", "t2i"} and {"loss", "hse_vis", "hse_ir"} <= terms[3]
    # the same lines reached the console (stderr) through the default handler fit() attached
    err = capsys.readouterr().err
    assert [(int(m[1]), int(m[2]) - 1, int(m[4])) for m in LINE.finditer(err)] == expected
    iters = [r for r in records if r["event"].endswith("/iter")]
    assert [(int(r["event"][5]), r["epoch"], r["iteration"]) for r in iters] == expected
    for r in iters:
        assert r["eta_stage_s"] >= 0 and r["eta_run_s"] >= r["eta_stage_s"] and r["images_per_s"] > 0
        assert (
            r["data_s"] >= 0
            and r["lr"] > 0
            and "loss" in r
            and r["step"] == r["epoch"] * r["iterations"] + r["iteration"] - 1
        )
    # handlers are removed after fit: nothing is left attached to the csdn logger
    assert clean_logging.handlers == [] and clean_logging.level == logging.NOTSET


def test_fit_does_not_duplicate_lines_with_user_handlers(tiny_cfg, sysu_train, clean_logging, tmp_path, capsys):
    cfg = tiny_cfg("runtime.log_every=0", "stage3.epochs=1")
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    user = Collect()
    root_before = logging.getLogger().handlers[:]
    logging.getLogger().addHandler(user)  # the user configured logging: fit adds no console handler
    logging.getLogger("csdn").setLevel(logging.INFO)
    (tmp_path / "run").mkdir()
    file_handler = logging.FileHandler(tmp_path / "run" / "train.log", encoding="utf-8")
    try:
        logging.getLogger("csdn").addHandler(file_handler)  # as csdn train does: fit must not add a second one
        Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    finally:
        logging.getLogger().removeHandler(user)
        logging.getLogger("csdn").removeHandler(file_handler)
        file_handler.close()
    assert capsys.readouterr().err == ""  # no console handler of fit's own
    epoch_lines = [m for m in records if re.match(r"stage \d epoch \d+/\d+ ", m)]
    assert len(epoch_lines) == 2 + 2 + 1
    log_lines = (tmp_path / "run" / "train.log").read_text().splitlines()
    assert len([line for line in log_lines if re.search(r"stage \d epoch \d+/\d+ ", line)]) == 5
    assert logging.getLogger("csdn").handlers == [] and logging.getLogger().handlers == root_before


def test_step_callbacks_see_every_optimizer_step_with_its_losses(tiny_cfg, sysu_train):
    cfg = tiny_cfg("stage3.epochs=2", "runtime.log_every=0")
    model = build_csdn(cfg, sysu_train.num_classes)
    calls = []

    def before(trainer, stage, epoch, iteration, losses):
        calls.append(("before", stage, epoch, iteration, dict(losses), trainer.model.prompt_learners.state_dict()))

    def after(trainer, stage, epoch, iteration, losses):
        calls.append(("after", stage, epoch, iteration, dict(losses), None))

    Trainer(cfg, model, sysu_train, before_step=[before], after_step=[after]).fit()
    steps, records = epoch_steps(cfg_dir(cfg))
    expected = [(s, e, i) for (s, e), n in sorted(steps.items()) for i in range(n) for s in [int(s)]]
    befores = [c for c in calls if c[0] == "before"]
    afters = [c for c in calls if c[0] == "after"]
    assert [c[1:4] for c in befores] == [c[1:4] for c in afters] == expected
    assert [c[0] for c in calls] == ["before", "after"] * len(expected)  # strictly alternating around each step
    for b, a in zip(befores, afters, strict=True):
        assert b[4] == a[4] and all(isinstance(v, float) for v in b[4].values())
    assert set(befores[0][4]) == {"loss", "i2t", "t2i"}
    assert befores[0][4]["loss"] == pytest.approx(befores[0][4]["i2t"] + befores[0][4]["t2i"], rel=1e-5)
    stage3 = [c[4] for c in befores if c[1] == 3]
    assert {"loss", "hse_vis", "hse_ir"} <= set(stage3[0])
    # the epoch records' loss means are the means of what the callbacks received
    for (stage, epoch), n in steps.items():
        got = [c[4] for c in befores if (c[1], c[2]) == (int(stage), epoch)]
        record = next(r for r in records if r["event"] == f"stage{stage}/epoch" and r["step"] == epoch)
        key = "i2t" if stage != "3" else "loss"
        assert record[key] == pytest.approx(sum(g[key] for g in got) / n, rel=1e-5)


def cfg_dir(cfg):
    from pathlib import Path

    return Path(cfg.runtime.output_dir)


@pytest.mark.parametrize("keep", [0, 2])
def test_keep_last_epoch_snapshots(tiny_cfg, sysu_train, keep):
    cfg = tiny_cfg(f"runtime.keep_last={keep}", "runtime.log_every=0", output=f"keep{keep}")
    final = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train).fit()
    folder = final.parent
    snapshots = sorted(p.name for p in folder.glob("epoch_*.pt"))
    if keep == 0:
        assert snapshots == []
        return
    assert snapshots == ["epoch_3_2.pt", "epoch_3_3.pt"]  # the two most recent of 2 + 2 + 3 epoch checkpoints
    assert (folder / "last.pt").is_file() and (folder / "final.pt").is_file()
    state = load_checkpoint(folder / "epoch_3_2.pt")
    assert (state["stage"], state["epoch"]) == (3, 2)
    last = load_checkpoint(folder / "last.pt")
    newest = load_checkpoint(folder / "epoch_3_3.pt")
    assert (newest["stage"], newest["epoch"]) == (last["stage"], last["epoch"]) == (3, 3)


def test_keep_last_and_log_every_are_validated(tiny_cfg):
    with pytest.raises(ValueError, match="runtime.keep_last=-1 is invalid"):
        tiny_cfg("runtime.keep_last=-1")
    with pytest.raises(ValueError, match="runtime.log_every=-1 is invalid"):
        tiny_cfg("runtime.log_every=-1")


def test_feature_bank_extraction_reports_progress(tiny_cfg, sysu_train):
    from csdn.engine.feature_bank import extract_clip_features

    cfg = tiny_cfg()
    model = build_csdn(cfg, sysu_train.num_classes)
    calls = []
    samples = sysu_train.infrared
    feats = extract_clip_features(
        model, samples, "infrared", cfg.data, torch.device("cpu"), batch_size=4,
        progress=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    n = len(samples)
    assert calls == [(min(i + 4, n), n) for i in range(0, n, 4)] and feats.shape[0] == n


def test_eta_of_the_stage_and_of_the_run_hand_computed(monkeypatch):
    from csdn.engine import logs
    from csdn.engine.tracking import MetricsLogger

    clock = iter(range(100))  # every perf_counter call is one second later
    monkeypatch.setattr(logs, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    log = logs.IterationLog(MetricsLogger(None), log_every=0, bar=False, stage_epochs={1: 2, 3: 4})
    log.start_epoch(1, 0, 10, lr=0.1)  # clock 0
    for i in range(5):
        log.step(i, {"loss": 1.0}, samples=8)  # 1 s per iteration
    # stage 1: 5 iterations left in epoch 1 + 10 in epoch 2 = 15 s; stage 3 (not started): 4 epochs x 10 x 1 s
    assert log.eta(4) == (15.0, 55.0)
    log.start_epoch(3, 0, 3, lr=0.1)  # a new stage: its pace is its own (clock 6 -> 2 s per iteration below)
    next(clock)
    log.step(0, {"loss": 1.0}, samples=8)
    assert log.eta(0) == (2.0 * (3 * 4 - 1), 2.0 * (3 * 4 - 1))


def test_progress_bar_on_a_terminal_shows_the_running_loss(tiny_cfg, sysu_train, monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    cfg = tiny_cfg("runtime.progress=true", "runtime.log_every=0", "stage3.epochs=1")
    trainer = Trainer(cfg, build_csdn(cfg, sysu_train.num_classes), sysu_train)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    trainer.fit()
    assert re.search(r"stage 3 epoch 1/1: .*loss=\d", terminal.getvalue())
    assert re.search(r"stage 1 epoch 2/2: .*loss=\d", terminal.getvalue())
