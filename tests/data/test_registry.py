"""Dataset registry and layout detection."""

import pytest

from csdn.data import DATASETS, LLCM, SYSUMM01, RegDB, detect_dataset, open_dataset
from csdn.data.synthetic import make_regdb


def test_registry_names():
    assert DATASETS == {"sysu": SYSUMM01, "regdb": RegDB, "llcm": LLCM}


def test_open_dataset_by_name_alias_and_detection(tmp_path):
    root = make_regdb(tmp_path / "r", num_ids=4, images_per_id=1, num_trials=2)
    reader = open_dataset("RegDB", root, trial=2)
    assert isinstance(reader, RegDB) and reader.trial == 2
    assert isinstance(open_dataset(None, root), RegDB)
    with pytest.raises(ValueError, match="Unknown dataset 'market'. Valid names are 'sysu', 'regdb', 'llcm'"):
        open_dataset("market", root)


def test_detection_errors(tmp_path):
    with pytest.raises(ValueError, match="Cannot recognise the dataset layout"):
        detect_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        detect_dataset(tmp_path / "missing")
