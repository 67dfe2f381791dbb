"""Dataset registry and layout detection."""

import pytest

import csdn.data.registry as registry
from csdn.data import (
    DATASETS,
    LLCM,
    SYSUMM01,
    CSVDataset,
    RegDB,
    VIReIDDataset,
    detect_dataset,
    open_dataset,
    register_dataset,
)
from csdn.data.synthetic import make_csv, make_regdb


def test_registry_names():
    assert DATASETS == {"sysu": SYSUMM01, "regdb": RegDB, "llcm": LLCM, "csv": CSVDataset}


def test_open_dataset_by_name_alias_and_detection(tmp_path):
    root = make_regdb(tmp_path / "r", num_ids=4, images_per_id=1, num_trials=2)
    reader = open_dataset("RegDB", root, trial=2)
    assert isinstance(reader, RegDB) and reader.trial == 2
    assert isinstance(open_dataset(None, root), RegDB)
    with pytest.raises(ValueError, match="Unknown dataset 'market'. Valid names are 'sysu', 'regdb', 'llcm', 'csv' "):
        open_dataset("market", root)


def test_detection_errors(tmp_path):
    with pytest.raises(ValueError, match="Cannot recognise the dataset layout"):
        detect_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        detect_dataset(tmp_path / "missing")


def test_aliases_and_describe(tmp_path):
    from csdn.data.synthetic import make_llcm, make_sysu

    sysu = make_sysu(tmp_path / "s", num_train_ids=2, num_val_ids=1, num_test_ids=2, images_per_cam=1)
    assert isinstance(open_dataset("SYSU-MM01", sysu), SYSUMM01)
    llcm = open_dataset("llcm", make_llcm(tmp_path / "l", num_train_ids=2, num_test_ids=2, images_per_cam=1))
    text = llcm.describe()
    assert "LLCM at" in text and "llcm infrared->visible" in text and "llcm visible->infrared" in text
    stats = llcm.stats()
    assert stats["train_ids"] == 2 and [row["setting"] for row in stats["test"]] == [
        "llcm infrared->visible",
        "llcm visible->infrared",
    ]


def test_modality_parse():
    from csdn.data import Modality

    assert Modality.parse("Visible") is Modality.VISIBLE and Modality.parse(Modality.INFRARED) is Modality.INFRARED
    assert Modality.VISIBLE == "visible" and str(Modality.INFRARED) == "infrared"
    assert Modality.parse("IR") is Modality.INFRARED  # an alias (csdn._modality.ALIASES)
    with pytest.raises(ValueError, match="Unknown modality 'uv'. Valid values are 'visible', 'infrared'"):
        Modality.parse("uv")


class FlatReader(VIReIDDataset):
    """A user's reader: wraps a CSV dataset under another name and with an option of its own."""

    name = "Flat"

    def __init__(self, root, scale=1):
        self.root, self.scale, self._csv = str(root), scale, CSVDataset(root)

    @property
    def train(self):
        return self._csv.train

    def test(self, direction="ir2vis", trial=0):
        return self._csv.test(direction, trial)

    @property
    def trials(self):
        return (0,)

    def test_settings(self):
        return self._csv.test_settings()


def test_register_dataset_call_and_decorator(tmp_path, restore_registry):
    root = make_csv(tmp_path / "c", num_train_ids=2, num_test_ids=2, images_per_cam=1)
    assert register_dataset("flat", FlatReader) is FlatReader
    reader = open_dataset("FLAT", root, scale=3)
    assert isinstance(reader, FlatReader) and reader.scale == 3 and reader.test().query == CSVDataset(root).test().query

    @register_dataset("flat-2")
    def build(root, **options):
        return FlatReader(root, scale=7)

    assert DATASETS["flat-2"] is build and open_dataset("flat-2", root).scale == 7
    with pytest.raises(ValueError, match="Valid names are 'sysu', 'regdb', 'llcm', 'csv', 'flat', 'flat-2' "):
        open_dataset("flat3", root)


@pytest.mark.parametrize(
    "name, factory, error, phrase",
    [
        ("csv", FlatReader, ValueError, "Dataset name 'csv' is already registered (to 'CSVDataset')"),
        ("Regdb", FlatReader, ValueError, "Dataset name 'Regdb' is already registered (to 'RegDB')"),
        ("sysu-mm01", FlatReader, ValueError, "Dataset name 'sysu-mm01' is already registered (to 'SYSUMM01')"),
        ("my data", FlatReader, ValueError, "Invalid dataset name 'my data'"),
        ("", FlatReader, ValueError, "Invalid dataset name ''"),
        ("flat", "FlatReader", TypeError, "needs a reader class or function, got 'FlatReader'"),
    ],
)
def test_register_dataset_errors(restore_registry, name, factory, error, phrase):
    with pytest.raises(error) as info:
        register_dataset(name, factory)
    assert phrase in str(info.value)
    assert list(DATASETS) == ["sysu", "regdb", "llcm", "csv"]


def test_duplicate_registration_is_refused(restore_registry):
    register_dataset("flat", FlatReader)
    with pytest.raises(ValueError, match="'flat' is already registered .* Registered names are .*'flat'"):
        register_dataset("flat", CSVDataset)
    assert DATASETS["flat"] is FlatReader


def test_factory_must_return_a_reader(tmp_path, restore_registry):
    register_dataset("broken", lambda root: object())
    with pytest.raises(TypeError, match="dataset 'broken' returned object, not a csdn.data.VIReIDDataset"):
        open_dataset("broken", tmp_path)


class _EntryPoint:
    def __init__(self, name, value, target):
        self.name, self.value, self._target = name, value, target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_entry_points_register_installed_readers(tmp_path, restore_registry, monkeypatch, caplog):
    calls = []

    def entry_points(group):
        calls.append(group)
        return [
            _EntryPoint("plugged", "pkg.reader:FlatReader", FlatReader),
            _EntryPoint("csv", "pkg.reader:Other", object),  # a built-in name is never replaced
            _EntryPoint("bad", "pkg.missing:Reader", ImportError("No module named 'pkg.missing'")),
        ]

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", entry_points)
    root = make_csv(tmp_path / "c", num_train_ids=2, num_test_ids=2, images_per_cam=1)
    assert isinstance(open_dataset("csv", root), CSVDataset) and calls == []  # registered names need no lookup
    assert isinstance(open_dataset("plugged", root), FlatReader) and calls == ["csdn.datasets"]
    assert DATASETS["csv"] is CSVDataset and "bad" not in DATASETS
    assert "dataset entry point 'bad' (pkg.missing:Reader) failed to load: No module named 'pkg.missing'" in caplog.text


def test_cli_data_stats_detects_a_csv_dataset(tmp_path, capsys):
    from csdn.cli import main

    root = make_csv(tmp_path / "c", num_train_ids=2, num_test_ids=2, images_per_cam=1)
    assert main(["data", "stats", root]) == 0
    out = capsys.readouterr().out
    assert f"CSV at {root}" in out and "train: 2 ids, 4 visible + 4 infrared images" in out
    assert "csv infrared->visible" in out
