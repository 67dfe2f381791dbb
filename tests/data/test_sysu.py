"""SYSU-MM01 reader against a hand-built layout with known query/gallery lists."""

import os
import random

import numpy as np
import pytest

from csdn.data import SYSUMM01, Sample

TEST_IDS = [12, 5, 7]  # written unsorted on purpose
# (camera folder, pid) -> number of files; files are created in reverse name order.
GALLERY_FOLDERS = {
    ("cam1", 5): 12,
    ("cam2", 5): 10,
    ("cam5", 5): 11,
    ("cam4", 7): 10,
    ("cam2", 12): 13,
    ("cam4", 12): 10,
}


@pytest.fixture
def sysu_root(tmp_path, write_folder):
    # The root itself contains "cam" twice: ids/cams must come from paths relative to it.
    root = tmp_path / "cam9_data" / "SYSU-cam3"
    (root / "exp").mkdir(parents=True)
    (root / "exp" / "train_id.txt").write_text("3,1\n")
    (root / "exp" / "val_id.txt").write_text("2\n")
    (root / "exp" / "test_id.txt").write_text(",".join(map(str, TEST_IDS)) + "\n")
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir()
    train = {
        ("cam1", 1): ["b.jpg", "a.jpg"],
        ("cam3", 1): ["x.jpg"],
        ("cam2", 2): ["c.jpg"],
        ("cam6", 2): ["z.jpg", "y.jpg"],
        ("cam4", 3): ["d.jpg"],
        ("cam5", 3): ["e.jpg"],
        ("cam3", 3): ["w.jpg"],
    }
    for (cam, pid), names in train.items():
        write_folder(root / cam / f"{pid:04d}", names)
    for (cam, pid), count in GALLERY_FOLDERS.items():
        write_folder(root / cam / f"{pid:04d}", [f"img_{i:02d}.jpg" for i in reversed(range(count))])
    write_folder(root / "cam3" / "0005", ["q_c.jpg", "q_a.jpg", "q_b.jpg"])
    write_folder(root / "cam6" / "0005", ["r_1.jpg", "r_0.jpg"])
    write_folder(root / "cam6" / "0007", ["r_1.jpg", "r_0.jpg"])
    write_folder(root / "cam3" / "0012", ["q_z.jpg"])
    return str(root)


def reference_gallery(data_path, mode, trial, gall_mode="single"):
    """Literal re-statement of the AGW/CSDN ``process_gallery_sysu`` loop (global RNG, as the reference)."""
    random.seed(trial)
    rgb_cameras = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    ids = [f"{x:04d}" for x in TEST_IDS]
    files_rgb = []
    for pid in sorted(ids):
        for cam in rgb_cameras:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                if gall_mode == "single":
                    files_rgb.append(random.choice(new_files))
                else:
                    files_rgb.extend(np.random.choice(new_files, 10, replace=False))
    return files_rgb


def test_query_is_every_infrared_image_in_id_camera_file_order(sysu_root):
    expected = [
        ("cam3/0005/q_a.jpg", 5, 3),
        ("cam3/0005/q_b.jpg", 5, 3),
        ("cam3/0005/q_c.jpg", 5, 3),
        ("cam6/0005/r_0.jpg", 5, 6),
        ("cam6/0005/r_1.jpg", 5, 6),
        ("cam6/0007/r_0.jpg", 7, 6),
        ("cam6/0007/r_1.jpg", 7, 6),
        ("cam3/0012/q_z.jpg", 12, 3),
    ]
    reader = SYSUMM01(sysu_root)
    for mode in ("all", "indoor"):
        split = reader.test(mode=mode, trial=3)
        assert split.query == [Sample(os.path.join(sysu_root, p), pid, cam, "infrared") for p, pid, cam in expected]
        assert split.protocol == "sysu"
        assert (split.query_modality, split.gallery_modality) == ("infrared", "visible")


@pytest.mark.parametrize("mode", ["all", "indoor"])
@pytest.mark.parametrize("trial", [0, 1, 7])
def test_single_shot_gallery_matches_reference_draws(sysu_root, keep_global_rng, mode, trial):
    expected = reference_gallery(sysu_root, mode, trial)
    state = random.getstate()
    gallery = SYSUMM01(sysu_root).test(mode=mode, shot="single", trial=trial).gallery
    assert random.getstate() == state, "the reader must not touch the global RNG"
    assert [s.path for s in gallery] == expected
    folders = [("cam1", 5), ("cam2", 5), ("cam5", 5), ("cam4", 7), ("cam2", 12), ("cam4", 12)]
    if mode == "indoor":
        folders = [("cam1", 5), ("cam2", 5), ("cam2", 12)]
    assert [(f"cam{s.cam}", s.pid) for s in gallery] == folders
    assert all(s.modality == "visible" and s.label == -1 for s in gallery)


@pytest.mark.parametrize("trial", [0, 4])
def test_multi_shot_gallery_matches_reference_seeded_by_trial(sysu_root, keep_global_rng, trial):
    mode = "all"
    np.random.seed(trial)
    expected = reference_gallery(sysu_root, mode, trial, gall_mode="multi")
    gallery = SYSUMM01(sysu_root).test(mode=mode, shot="multi", trial=trial).gallery
    assert [s.path for s in gallery] == expected
    assert len(gallery) == 10 * 6


def test_trials_differ_and_settings(sysu_root):
    reader = SYSUMM01(sysu_root)
    draws = {tuple(s.path for s in reader.test(trial=t).gallery) for t in reader.trials}
    assert len(draws) > 1
    assert reader.trials == tuple(range(10))
    assert reader.test_settings() == [
        {"mode": "all", "shot": "single"},
        {"mode": "indoor", "shot": "single"},
        {"mode": "all", "shot": "multi"},
        {"mode": "indoor", "shot": "multi"},
    ]


def test_camera_facts(sysu_root):
    reader = SYSUMM01(sysu_root)
    split = reader.test(mode="all")
    assert {s.cam for s in split.query} == {3, 6}
    assert {s.cam for s in split.gallery} == {1, 2, 4, 5}  # cam-2 items stay; the sysu metric drops them for cam-3
    assert {s.cam for s in reader.test(mode="indoor").gallery} == {1, 2}
    for s in split.query + split.gallery:
        rel = os.path.relpath(s.path, reader.root).split(os.sep)
        assert rel[0] == f"cam{s.cam}" and int(rel[1]) == s.pid


def test_train_is_train_and_val_ids_relabelled_in_sorted_order(sysu_root):
    train = SYSUMM01(sysu_root).train
    assert train.num_classes == 3
    rel = lambda s: os.path.relpath(s.path, sysu_root)  # noqa: E731
    assert [(rel(s), s.pid, s.cam, s.label) for s in train.visible] == [
        ("cam1/0001/a.jpg", 1, 1, 0),
        ("cam1/0001/b.jpg", 1, 1, 0),
        ("cam2/0002/c.jpg", 2, 2, 1),
        ("cam4/0003/d.jpg", 3, 4, 2),
        ("cam5/0003/e.jpg", 3, 5, 2),
    ]
    assert [(rel(s), s.pid, s.cam, s.label) for s in train.infrared] == [
        ("cam3/0001/x.jpg", 1, 3, 0),
        ("cam6/0002/y.jpg", 2, 6, 1),
        ("cam6/0002/z.jpg", 2, 6, 1),
        ("cam3/0003/w.jpg", 3, 3, 2),
    ]
    assert train.pids == [1, 2, 3]


def test_describe_lists_split_sizes(sysu_root):
    text = SYSUMM01(sysu_root).describe()
    assert "train: 3 ids, 5 visible + 4 infrared images" in text
    assert "sysu all-search single-shot" in text and "sysu indoor-search multi-shot" in text


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"mode": "outdoor"}, "Unknown value 'outdoor' for argument mode"),
        ({"shot": "x"}, "argument shot"),
        ({"trial": -1}, "Unknown trial -1"),
    ],
)
def test_bad_arguments(sysu_root, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        SYSUMM01(sysu_root).test(**kwargs)


def _corrupt(root, case, write_image):
    exp = os.path.join(root, "exp")
    if case == "missing_exp":
        for f in os.listdir(exp):
            os.remove(os.path.join(exp, f))
        os.rmdir(exp)
    elif case == "missing_id_file":
        os.remove(os.path.join(exp, "test_id.txt"))
    elif case == "missing_cam":
        os.rename(os.path.join(root, "cam6"), os.path.join(root, "cam6_old"))
    elif case == "empty_list":
        open(os.path.join(exp, "val_id.txt"), "w").close()
    elif case == "malformed":
        open(os.path.join(exp, "test_id.txt"), "w").write("5,7a,12\n")
    elif case == "duplicate":
        open(os.path.join(exp, "test_id.txt"), "w").write("5,7,5\n")
    elif case == "overlap":
        open(os.path.join(exp, "val_id.txt"), "w").write("3\n")
    elif case == "leak_train":
        open(os.path.join(exp, "test_id.txt"), "w").write("12,5\n7,1\n")
    elif case == "leak_val":
        open(os.path.join(exp, "test_id.txt"), "w").write("12\n5\n7\n\n2\n")
    elif case == "no_images":
        open(os.path.join(exp, "test_id.txt"), "w").write("12,5,7,99\n")
    elif case == "no_train_images":
        open(os.path.join(exp, "train_id.txt"), "w").write("3,1\n\n40\n")
    elif case == "duplicate_line":
        open(os.path.join(exp, "test_id.txt"), "w").write("12,5\n7\n5\n")
    elif case == "extra_line":
        open(os.path.join(exp, "test_id.txt"), "w").write("12,5,7\nids of the test set\n")
    elif case == "non_image":
        open(os.path.join(root, "cam1", "0005", "notes.txt"), "w").write("x")
    elif case == "truncated":
        path = os.path.join(root, "cam2", "0012", "img_03.jpg")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif case == "empty_folder":
        os.makedirs(os.path.join(root, "cam4", "0005"))


@pytest.mark.parametrize(
    "case, error, phrases",
    [
        ("missing_exp", FileNotFoundError, ["exp", "not found"]),
        ("missing_id_file", FileNotFoundError, ["test_id.txt", "not found"]),
        ("missing_cam", FileNotFoundError, ["cam6", "not found"]),
        ("empty_list", ValueError, ["val_id.txt", "is empty"]),
        ("malformed", ValueError, ["test_id.txt", "malformed id '7a'"]),
        ("duplicate", ValueError, ["test_id.txt", "duplicate id 5"]),
        ("overlap", ValueError, ["val_id.txt line 1 lists id 3, which is also a train id", "train_id.txt line 1"]),
        ("leak_train", ValueError, ["test_id.txt line 2 lists id 1, which is also a training id", "train_id.txt"]),
        ("leak_val", ValueError, ["test_id.txt line 5 lists id 2, which is also a training id", "val_id.txt line 1"]),
        ("no_images", ValueError, ["test_id.txt line 1 lists id 99, which has no images", "0099/"]),
        ("no_train_images", ValueError, ["train_id.txt line 3 lists id 40, which has no images"]),
        ("duplicate_line", ValueError, ["test_id.txt line 3 has a duplicate id 5 (first on line 1)"]),
        ("extra_line", ValueError, ["test_id.txt line 2 has a malformed id 'ids'"]),
        ("non_image", ValueError, ["notes.txt", "is not an image file"]),
        ("truncated", ValueError, ["img_03.jpg", "truncated or corrupt image"]),
        ("empty_folder", ValueError, ["0005", "is an empty folder"]),
    ],
)
def test_bad_layouts_raise_one_clear_error(sysu_root, write_image, case, error, phrases):
    _corrupt(sysu_root, case, write_image)
    with pytest.raises(error) as info:
        SYSUMM01(sysu_root)
    for phrase in phrases:
        assert phrase in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["12\n5\n7\n", "\ufeff12,5,7\n", "\n\n12, 5\r\n\n7", "12 5\t7", "\ufeff\n12,\n5,\n7\n\n"],
    ids=["per-line", "bom", "blank-lines-crlf", "whitespace", "bom-trailing-commas"],
)
def test_id_lists_accept_commas_whitespace_lines_bom_and_blank_lines(sysu_root, text):
    expected = SYSUMM01(sysu_root).test(trial=3)
    with open(os.path.join(sysu_root, "exp", "test_id.txt"), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    reader = SYSUMM01(sysu_root)
    assert reader.test_ids == TEST_IDS  # every id, in file order, not just the first line
    assert reader.test(trial=3) == expected


def test_missing_root():
    with pytest.raises(FileNotFoundError, match="not found"):
        SYSUMM01("/nonexistent/sysu")


def test_verify_images_false_skips_content_checks_only(sysu_root):
    path = os.path.join(sysu_root, "cam2", "0012", "img_03.jpg")
    open(path, "wb").write(b"\xff\xd8 truncated")
    assert len(SYSUMM01(sysu_root, verify_images=False).test().query) == 8
    open(os.path.join(sysu_root, "cam2", "0012", "x.txt"), "w").write("x")
    with pytest.raises(ValueError, match="is not an image file"):
        SYSUMM01(sysu_root, verify_images=False)
