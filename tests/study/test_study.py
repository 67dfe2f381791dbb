"""``csdn study`` end to end on a synthetic RegDB: kill and resume, hand-checked table, submitit, locks, refusals."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from csdn.cli import main
from csdn.study import ProcessExecutor, Study, Variant, execute_run

from .conftest import TINY, study_args

RUNS = ["baseline/seed1/trial1", "baseline/seed2/trial1", "baseline/seed1/trial2", "baseline/seed2/trial2"]


@pytest.fixture(scope="module")
def resumed(regdb_root, tmp_path_factory):
    """A study killed (SIGKILL) once its first run finished, then continued in this process.

    Returns ``(study folder, {run: final.pt mtime after the kill}, stdout of the continuation)``.
    """
    out = tmp_path_factory.mktemp("study") / "regdb"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-m", "csdn", "-q", *study_args(regdb_root, out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    log = out / "study.log"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and child.poll() is None:
        if log.is_file() and "[1/4]" in log.read_text():
            break
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert "[1/4]" in log.read_text() and "[4/4]" not in log.read_text(), "the kill must land in the middle"
    stamps = {r: (out / r / "checkpoints" / "final.pt").stat().st_mtime_ns for r in RUNS
              if (out / r / "eval.json").is_file()}  # fmt: skip
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["-q", *study_args(regdb_root, out)]) == 0
    return out, stamps, buffer.getvalue()


def test_a_killed_study_resumes_without_retraining_finished_runs(resumed):
    out, stamps, stdout = resumed
    assert stamps, "at least the first run finished before the kill"
    for run, stamp in stamps.items():  # not retrained, not re-evaluated
        assert (out / run / "checkpoints" / "final.pt").stat().st_mtime_ns == stamp
    assert f"4 runs, {len(stamps)} finished earlier, {4 - len(stamps)} to run" in stdout
    assert all((out / r / "eval.json").is_file() and (out / r / "metrics.jsonl").is_file() for r in RUNS)
    lines = [line for line in stdout.splitlines() if line.startswith("[")]
    assert len(lines) == 4 - len(stamps) and lines[-1].endswith("0 runs left, done")
    assert "runs left, ETA" in lines[0] or len(lines) == 1
    plan = json.loads((out / "study_plan.json").read_text())
    assert [r["name"] for r in plan["runs"]] == RUNS
    assert [r["config"]["data"]["trial"] for r in plan["runs"]] == [1, 1, 2, 2]
    assert [r["config"]["runtime"]["seed"] for r in plan["runs"]] == [1, 2, 1, 2]
    assert "regdb visible->thermal" in stdout.split("done\n", 1)[1]  # the table is printed at the end


def _hand_bootstrap(units, resamples=4000, seed=7):
    """Two-level percentile bootstrap written as plainly as possible: runs, then each drawn run's queries."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(resamples):
        drawn = [units[i] for i in rng.integers(0, len(units), len(units))]
        stats.append(np.mean([u[rng.integers(0, len(u), len(u))].mean() for u in drawn]))
    return np.quantile(stats, [0.025, 0.975])


def test_the_table_is_what_a_hand_computation_from_eval_json_gives(resumed):
    out = resumed[0]
    results = json.loads((out / "study.json").read_text())
    evals = {r: json.loads((out / r / "eval.json").read_text()) for r in RUNS}
    assert results["settings"] == ["regdb visible->thermal", "regdb thermal->visible"]
    for setting in results["settings"]:
        cell = next(c for c in results["cells"] if c["setting"] == setting)
        assert cell["variant"] == "baseline" and cell["runs"] == 4
        records = [next(rec for rec in evals[r]["records"] if rec["setting"] == setting) for r in RUNS]
        for rec in records:  # the per-query values eval.json now holds are the record's own numbers
            assert np.mean(rec["query_rank1"]) == pytest.approx(rec["rank1"])
            assert np.mean(rec["query_ap"]) == pytest.approx(rec["mAP"], abs=1e-6)
        for metric in ("rank1", "mAP", "rank10", "mINP"):
            values = [rec[metric] for rec in records]
            assert cell[metric]["mean"] == pytest.approx(sum(values) / 4)
            mean = sum(values) / 4
            assert cell[metric]["std"] == pytest.approx((sum((v - mean) ** 2 for v in values) / 3) ** 0.5)
        for metric, key in (("rank1", "query_rank1"), ("mAP", "query_ap")):
            low, high = _hand_bootstrap([np.asarray(rec[key], dtype=float) for rec in records])
            assert cell[metric]["ci"] == pytest.approx([low, high], abs=0.03), metric
    md = (out / "study.md").read_text()
    assert "| baseline | 4 |" in md and "percentile bootstrap" in md and "sample standard deviation" in md
    html = (out / "index.html").read_text()
    assert "percentile bootstrap" in html and 'href="baseline/seed1/trial1/eval.json"' in html


def test_submitit_local_executor_extends_the_study(resumed, regdb_root, capsys):
    pytest.importorskip("submitit")
    out = resumed[0]
    stamps = {r: (out / r / "checkpoints" / "final.pt").stat().st_mtime_ns for r in RUNS}
    args = study_args(regdb_root, out, "--executor", "submitit-local", "--threads", "1")
    args[args.index("--seeds") + 1] = "3"
    assert main(["-q", *args]) == 0
    stdout = capsys.readouterr().out
    assert "6 runs, 4 finished earlier, 2 to run (submitit (local)" in stdout
    assert all((out / r / "checkpoints" / "final.pt").stat().st_mtime_ns == s for r, s in stamps.items())
    for split in (1, 2):
        assert json.loads((out / f"baseline/seed3/trial{split}" / "eval.json").read_text())["records"]
    assert list((out / "submitit").glob("*_result.pkl")), "the runs went through submitit's jobs"
    cell = json.loads((out / "study.json").read_text())["cells"][0]
    assert cell["runs"] == 6


def test_process_pool_executor_skips_finished_runs(resumed, regdb_root):
    study = Study(resumed[0], regdb_root, dataset="regdb", preset="demo", variants=[Variant("baseline", "baseline")],
                  seeds=[1, 2], splits=[1, 2], overrides=TINY)  # fmt: skip
    outcomes = list(ProcessExecutor(workers=2, threads=1).map(study.runs))
    assert sorted(o.name for o in outcomes) == sorted(RUNS) and {o.status for o in outcomes} == {"done"}


def test_a_run_folder_held_by_another_process_is_left_to_it(regdb_root, tmp_path):
    study = Study(tmp_path / "s", regdb_root, dataset="regdb", preset="demo",
                  variants=[Variant("baseline", "baseline")], overrides=TINY)  # fmt: skip
    run = study.runs[0]
    run.run_dir.mkdir(parents=True)
    with open(run.run_dir / "run.lock", "w") as holder:  # another executor's claim (an OS lock, as the engine's)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        outcome = execute_run(run)
    assert outcome.status == "busy" and "is in use" in outcome.message
    assert not (run.run_dir / "checkpoints").exists()


def test_a_study_folder_refuses_other_settings_and_bad_options(regdb_root, tmp_path, capsys):
    out = tmp_path / "s"
    Study(out, regdb_root, dataset="regdb", preset="demo", overrides=TINY).record_plan()
    assert main(["study", "--protocol", "regdb", "--preset", "demo", "--root", str(regdb_root), "--out", str(out),
                 *[x for item in [*TINY, "stage3.lr=0.1"] for x in ("--set", item)]]) == 2  # fmt: skip
    assert "holds a study run with other settings (csdn/seed1/trial1: stage3.lr: " in capsys.readouterr().err
    for bad, message in [
        (["--seeds", "0"], "--seeds 0 is invalid"),
        (["--trials", "one"], "--trials 'one' is invalid: expected numbers and ranges"),
        (["--variants", "nope"], "--variants 'nope' is not a paper ablation"),
        (["--set", "runtime.seed=3"], "the study sets runtime.seed itself"),
    ]:
        assert main(["study", "--root", str(regdb_root), "--out", str(tmp_path / "x"), *bad]) == 2
        assert message in capsys.readouterr().err, bad


def test_a_preempted_slurm_task_is_requeued_as_the_same_run(tmp_path):
    pytest.importorskip("submitit")
    from submitit.helpers import DelayedSubmission

    from csdn.study.executors import _SubmittedRun
    from csdn.study.grid import RunSpec

    run = RunSpec("csdn/seed1", "csdn", 1, None, {"runtime": {"output_dir": str(tmp_path / "run")}})
    requeued = _SubmittedRun(run, threads=4, trust_code=True).checkpoint()
    assert isinstance(requeued, DelayedSubmission)  # submitit requeues it; execute_run then resumes from last.pt
    assert (requeued.function.run, requeued.function.threads, requeued.function.trust_code) == (run, 4, True)
