"""RegDB reader against hand-built split files."""

import os

import pytest

from csdn.data import RegDB, Sample

FILES = {
    "train_visible_1": "Visible/3/v3a.bmp 1\nVisible/1/v1a.bmp 0\n",
    "train_thermal_1": "Thermal/1/t1a.bmp 0\n\nThermal/3/t3a.bmp 1\n",
    "test_visible_1": "Visible/2/v2a.bmp 0\nVisible/4/v4a.bmp 1\n",
    "test_thermal_1": "Thermal/4/t4a.bmp 1\nThermal/2/t2a.bmp 0\nThermal/2/t2b.bmp 0\n",
    "train_visible_2": "Visible/2/v2a.bmp 0\n",
    "train_thermal_2": "Thermal/2/t2a.bmp 0\n",
    "test_visible_2": "Visible/1/v1a.bmp 0\nVisible/3/v3a.bmp 1\n",
    "test_thermal_2": "Thermal/3/t3a.bmp 1\n",
}


@pytest.fixture
def regdb_root(tmp_path, write_image):
    root = tmp_path / "cam_regdb"
    for rel in [
        "Visible/1/v1a.bmp",
        "Visible/1/v1b.bmp",
        "Visible/2/v2a.bmp",
        "Visible/3/v3a.bmp",
        "Visible/4/v4a.bmp",
    ]:
        write_image(root / rel)
    for rel in [
        "Thermal/1/t1a.bmp",
        "Thermal/2/t2a.bmp",
        "Thermal/2/t2b.bmp",
        "Thermal/3/t3a.bmp",
        "Thermal/4/t4a.bmp",
    ]:
        write_image(root / rel, mode="L")
    (root / "idx").mkdir()
    for name, text in FILES.items():
        (root / "idx" / f"{name}.txt").write_text(text)
    return str(root)


def _s(root, rel, pid, cam, modality, label=-1):
    return Sample(os.path.join(root, rel), pid, cam, modality, label)


def test_directions_use_whole_test_lists(regdb_root):
    reader = RegDB(regdb_root, trial=1)
    vis = [_s(regdb_root, "Visible/2/v2a.bmp", 0, 1, "visible"), _s(regdb_root, "Visible/4/v4a.bmp", 1, 1, "visible")]
    ir = [
        _s(regdb_root, "Thermal/4/t4a.bmp", 1, 2, "infrared"),
        _s(regdb_root, "Thermal/2/t2a.bmp", 0, 2, "infrared"),
        _s(regdb_root, "Thermal/2/t2b.bmp", 0, 2, "infrared"),
    ]
    t2v = reader.test(direction="t2v")
    assert (t2v.query, t2v.gallery, t2v.protocol) == (ir, vis, "regdb")
    assert (t2v.query_modality, t2v.gallery_modality, t2v.trial) == ("infrared", "visible", 1)
    v2t = reader.test(direction="v2t")
    assert (v2t.query, v2t.gallery) == (vis, ir)
    assert reader.trials == (1,)
    assert reader.test_settings() == [{"direction": "v2t"}, {"direction": "t2v"}]


def test_trial_selects_split_file(regdb_root):
    reader = RegDB(regdb_root, trial=2)
    split = reader.test(direction="v2t")
    assert [os.path.relpath(s.path, regdb_root) for s in split.query] == ["Visible/1/v1a.bmp", "Visible/3/v3a.bmp"]
    assert [s.pid for s in split.gallery] == [1] and split.trial == 2
    assert reader.trials == (2,)
    assert [os.path.relpath(s.path, regdb_root) for s in reader.train.visible] == ["Visible/2/v2a.bmp"]
    # the reader's default trial can be overridden per call
    assert len(RegDB(regdb_root, trial=1).test("t2v", trial=2).query) == 1


def test_train_labels(regdb_root):
    train = RegDB(regdb_root).train
    assert train.num_classes == 2
    assert [(os.path.relpath(s.path, regdb_root), s.pid, s.cam, s.label) for s in train.visible] == [
        ("Visible/3/v3a.bmp", 1, 1, 1),
        ("Visible/1/v1a.bmp", 0, 1, 0),
    ]
    assert [(s.pid, s.cam, s.label, s.modality) for s in train.infrared] == [
        (0, 2, 0, "infrared"),
        (1, 2, 1, "infrared"),
    ]


@pytest.mark.parametrize(
    "edit, error, phrases",
    [
        (("train_visible_1", None), FileNotFoundError, ["train_visible_1.txt", "not found"]),
        (("test_thermal_1", "Thermal/4/t4a.bmp\n"), ValueError, ["test_thermal_1.txt line 1 is malformed"]),
        (("test_thermal_1", "Thermal/4/t4a.bmp one\n"), ValueError, ["line 1 is malformed"]),
        (
            ("test_visible_1", "Visible/2/v2a.bmp 0\nVisible/9/v9.bmp 3\n"),
            FileNotFoundError,
            ["test_visible_1.txt line 2 points to a missing image", "v9.bmp"],
        ),
        (("train_thermal_1", ""), ValueError, ["train_thermal_1.txt is empty"]),
        (("train_thermal_1", "idx/test_visible_1.txt 0\n"), ValueError, ["test_visible_1.txt is not an image file"]),
        (
            ("test_thermal_1", "Thermal/4/t4a.bmp 1\nThermal/2/t2a.bmp 0\n\nThermal/4/t4a.bmp 1\n"),
            ValueError,
            ["test_thermal_1.txt line 4 repeats Thermal/4/t4a.bmp (already on line 1)"],
        ),
        (
            ("test_thermal_1", "Thermal/4/t4a.bmp 1\nThermal/2/t2a.bmp 0\nThermal/2/t2b.bmp 1\n"),
            ValueError,
            ["test_thermal_1.txt line 3 labels Thermal/2/t2b.bmp as 1, but identity folder 2 has label 0", "line 1"],
        ),
        (
            ("test_thermal_1", "Thermal/4/t4a.bmp 0\nThermal/2/t2a.bmp 0\n"),
            ValueError,
            ["test_thermal_1.txt line 1 labels Thermal/4/t4a.bmp as 0, but identity folder 4 has label 1"],
        ),
        (
            ("test_thermal_1", "Thermal/2/t2a.bmp 0\nThermal/3/t3a.bmp 1\n"),
            ValueError,
            ["test_thermal_1.txt line 2 gives label 1 to identity folder 3, but", "test_visible_1.txt line 2"],
        ),
        (
            ("test_visible_1", "Visible/2/v2a.bmp 0\nVisible/4/v4a.bmp 1\nVisible/3/v3a.bmp 2\n"),
            ValueError,
            ["test_visible_1.txt line 3 lists image Visible/3/v3a.bmp, which is also a training image"],
        ),
        (
            ("test_thermal_1", "Thermal/4/t4a.bmp 1\nThermal/2/t2a.bmp 0\nThermal/1/t1a.bmp 2\n"),
            ValueError,
            ["test_thermal_1.txt line 3 lists image Thermal/1/t1a.bmp, which is also a training image"],
        ),
        (
            ("test_visible_1", "Visible/2/v2a.bmp 0\nVisible/4/v4a.bmp 1\nVisible/1/v1b.bmp 2\n"),
            ValueError,
            ["test_visible_1.txt line 3 lists identity folder 1, which is also a training identity folder", "line 2"],
        ),
    ],
)
def test_bad_index_files(regdb_root, edit, error, phrases):
    name, text = edit
    path = os.path.join(regdb_root, "idx", f"{name}.txt")
    if text is None:
        os.remove(path)
    else:
        open(path, "w").write(text)
    with pytest.raises(error) as info:
        RegDB(regdb_root)
    for phrase in phrases:
        assert phrase in str(info.value)


def test_split_files_accept_bom_blank_lines_and_crlf(regdb_root):
    expected = RegDB(regdb_root).test("t2v")
    path = os.path.join(regdb_root, "idx", "test_thermal_1.txt")
    text = "\ufeff\n" + open(path).read().replace("\n", "\r\n") + "\n\n"
    open(path, "w", newline="").write(text)
    assert RegDB(regdb_root).test("t2v") == expected


def test_non_numeric_folders_are_not_label_checked(regdb_root, write_image):
    write_image(os.path.join(regdb_root, "Visible", "misc", "x.bmp"))
    write_image(os.path.join(regdb_root, "Visible", "misc", "y.bmp"))
    open(os.path.join(regdb_root, "idx", "test_visible_1.txt"), "w").write(
        "Visible/misc/x.bmp 0\nVisible/misc/y.bmp 1\n"
    )
    assert [s.pid for s in RegDB(regdb_root).test("v2t").query] == [0, 1]


def test_truncated_bmp(regdb_root):
    path = os.path.join(regdb_root, "Thermal", "2", "t2b.bmp")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])
    with pytest.raises(ValueError, match="t2b.bmp is a truncated or corrupt image"):
        RegDB(regdb_root)


def test_missing_idx_folder_and_bad_arguments(regdb_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="idx not found"):
        RegDB(tmp_path)
    with pytest.raises(ValueError, match="Unknown value 'i2v' for argument direction"):
        RegDB(regdb_root).test(direction="i2v")


@pytest.mark.parametrize("trial", [0, 3, 11, "1", True])
def test_unknown_trials_name_the_trial_and_the_trials_present(regdb_root, trial):
    expected = f"Unknown RegDB trial {trial!r}: no split files idx/{{train,test}}_{{visible,thermal}}_{trial}.txt. "
    expected += "Valid trials are 1, 2 (the split files in "
    with pytest.raises(ValueError) as info:
        RegDB(regdb_root, trial=trial)
    assert str(info.value).startswith(expected)
    with pytest.raises(ValueError) as info:
        RegDB(regdb_root).test(trial=trial)
    assert str(info.value).startswith(expected)


def test_trial_list_is_compact(regdb_root):
    for t in (3, 4, 5, 7):
        open(os.path.join(regdb_root, "idx", f"train_visible_{t}.txt"), "w").write("Visible/1/v1a.bmp 0\n")
    with pytest.raises(ValueError, match=r"Valid trials are 1\.\.5, 7 "):
        RegDB(regdb_root, trial=6)
    with pytest.raises(FileNotFoundError, match="train_thermal_3.txt not found; RegDB trial 3 needs all four"):
        RegDB(regdb_root, trial=3)  # present but incomplete
