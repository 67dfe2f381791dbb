"""Dataset readers of one's own from the command line: entry points, --plugin, re-registration, the error."""

import shutil
import sys
from pathlib import Path

import pytest

from csdn.cli.main import main
from csdn.data import CSVDataset, register_dataset
from csdn.data.registry import DATASETS
from csdn.data.synthetic import make_csv

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugin"


@pytest.fixture
def isolated_plugin(restore_registry):
    """Forget the example plug-in after the test (its module and its registration)."""
    yield
    for name in [n for n in sys.modules if n.endswith("csdn_folders")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def folders_root(tmp_path_factory):
    """A dataset in the example reader's layout: ``{train,query,gallery}/<modality>/<pid>_c<cam>_<name>``."""
    csv = CSVDataset(make_csv(tmp_path_factory.mktemp("csv"), num_train_ids=2, num_test_ids=2, images_per_cam=1))
    root = tmp_path_factory.mktemp("folders")
    split = csv.test("ir2vis")
    for part, samples in (("train", csv.train.visible + csv.train.infrared), ("query", split.query),
                          ("gallery", split.gallery)):  # fmt: skip
        for s in samples:
            target = root / part / s.modality / f"{s.pid}_c{s.cam}_{Path(s.path).name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, target)
    return root


def install_as_dist_info(site: Path) -> None:
    """What ``pip install examples/plugin`` puts in site-packages: the module and a dist-info with its entry points."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    shutil.copy(PLUGIN / "csdn_folders.py", site)
    info = site / f"csdn_folders-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"{name} = {value}" for name, value in project["entry-points"]["csdn.datasets"].items()]
    (info / "entry_points.txt").write_text("[csdn.datasets]\n" + "\n".join(lines) + "\n")


def test_registering_the_same_factory_again_is_a_no_op(restore_registry):
    class Reader:
        pass

    assert register_dataset("twice", Reader) is Reader
    assert register_dataset("TWICE", Reader) is Reader  # no error: the same reader
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("twice", type("Other", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("csv", Reader)
    assert DATASETS["twice"] is Reader


def test_the_example_package_installed_serves_dataset_from_the_cli(
    tmp_path, monkeypatch, capsys, isolated_plugin, folders_root
):
    install_as_dist_info(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "folders" not in DATASETS
    # the entry point imports the module, whose decorator registered the class already: no "already registered"
    assert main(["data", "stats", "--dataset", "folders", str(folders_root)]) == 0
    assert "folders infrared->visible" in capsys.readouterr().out


@pytest.mark.parametrize("form", ["path", "module"])
def test_plugin_option_loads_a_module_that_registers_readers(
    form, tmp_path, monkeypatch, capsys, isolated_plugin, folders_root
):
    if form == "module":  # a module in the current folder, as a user's own readers.py next to the data
        shutil.copy(PLUGIN / "csdn_folders.py", tmp_path)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
        plugin = "csdn_folders"
    else:
        plugin = str(PLUGIN / "csdn_folders.py")
    argv = ["data", "stats", "--plugin", plugin, "--plugin", plugin, "--dataset", "folders", str(folders_root)]
    assert main(argv) == 0
    assert "folders infrared->visible" in capsys.readouterr().out


def test_unknown_dataset_and_broken_plugin_are_one_line_naming_the_cli_route(tmp_path, capsys, restore_registry):
    make_csv(tmp_path / "d", num_train_ids=2, num_test_ids=2, images_per_cam=1)
    assert main(["data", "stats", "--dataset", "mine", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "Unknown dataset 'mine'" in err and "--plugin MODULE" in err and "'csdn.datasets' entry-point" in err
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no reader here')\n")
    for plugin, reason in ((str(broken), "no reader here"), ("no_such_module_xyz", "No module named")):
        assert main(["data", "stats", "--plugin", plugin, str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"--plugin {plugin!r} failed to load: {reason}" in err
