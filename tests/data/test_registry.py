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
    with pytest.raises(ValueError, match="Unknown modality 'ir'. Valid values are 'visible', 'infrared'"):
        Modality.parse("ir")
