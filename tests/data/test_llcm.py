"""LLCM reader against a hand-built layout with known query lists and reference gallery draws."""

import os
import random

import pytest

from csdn.data import LLCM

VIS = {"cam1/0008": 3, "cam9/0008": 2, "cam3/0020": 4, "cam1/0020": 1}
NIR = {"cam2/0008": 2, "cam3/0008": 2, "cam8/0020": 3}  # no nir cam3 in the protocol: that folder is ignored


@pytest.fixture
def llcm_root(tmp_path, write_image, write_folder):
    root = tmp_path / "llcm_cam5" / "LLCM"
    for rel in [
        "train_vis/cam2/0003/a.jpg",
        "train_vis/cam7/0001/b.jpg",
        "train_nir/cam4/0001/c.jpg",
        "train_nir/cam9/0003/d.jpg",
    ]:
        write_image(root / rel)
    (root / "idx").mkdir()
    (root / "idx" / "train_vis.txt").write_text("train_vis/cam2/0003/a.jpg 1\ntrain_vis/cam7/0001/b.jpg 0\n")
    (root / "idx" / "train_nir.txt").write_text("train_nir/cam4/0001/c.jpg 0\ntrain_nir/cam9/0003/d.jpg 1\n")
    (root / "idx" / "test_id.txt").write_text("20,8\n")
    for sub, folders in (("test_vis", VIS), ("test_nir", NIR)):
        for folder, count in folders.items():
            write_folder(root / sub / folder, [f"{i:03d}.jpg" for i in reversed(range(count))])
    return str(root)


def reference_gallery_llcm(data_path, mode, trial):
    """Literal re-statement of LLCM's ``process_gallery_llcm`` (mode 1 = visible cams, 2 = nir cams)."""
    random.seed(trial)
    if mode == 1:
        cameras = [f"test_vis/cam{k}" for k in range(1, 10)]
    else:
        cameras = [f"test_nir/cam{k}" for k in (1, 2, 4, 5, 6, 7, 8, 9)]
    ids = [f"{x:04d}" for x in [20, 8]]
    files = []
    for pid in sorted(ids):
        for cam in cameras:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                files.append(random.choice(new_files))
    return files


def test_query_lists_per_direction(llcm_root):
    reader = LLCM(llcm_root)
    rel = lambda split: [(os.path.relpath(s.path, llcm_root), s.pid, s.cam, s.modality) for s in split.query]  # noqa: E731
    assert rel(reader.test("ir2vis")) == [
        ("test_nir/cam2/0008/000.jpg", 8, 2, "infrared"),
        ("test_nir/cam2/0008/001.jpg", 8, 2, "infrared"),
        ("test_nir/cam8/0020/000.jpg", 20, 8, "infrared"),
        ("test_nir/cam8/0020/001.jpg", 20, 8, "infrared"),
        ("test_nir/cam8/0020/002.jpg", 20, 8, "infrared"),
    ]
    assert rel(reader.test("vis2ir")) == [
        ("test_vis/cam1/0008/000.jpg", 8, 1, "visible"),
        ("test_vis/cam1/0008/001.jpg", 8, 1, "visible"),
        ("test_vis/cam1/0008/002.jpg", 8, 1, "visible"),
        ("test_vis/cam9/0008/000.jpg", 8, 9, "visible"),
        ("test_vis/cam9/0008/001.jpg", 8, 9, "visible"),
        ("test_vis/cam1/0020/000.jpg", 20, 1, "visible"),
        ("test_vis/cam3/0020/000.jpg", 20, 3, "visible"),
        ("test_vis/cam3/0020/001.jpg", 20, 3, "visible"),
        ("test_vis/cam3/0020/002.jpg", 20, 3, "visible"),
        ("test_vis/cam3/0020/003.jpg", 20, 3, "visible"),
    ]
    assert reader.test("ir2vis").protocol == "llcm"
    assert reader.test_settings() == [{"direction": "ir2vis"}, {"direction": "vis2ir"}]


@pytest.mark.parametrize("trial", [0, 1, 5])
def test_gallery_matches_reference_and_empty_folders_are_skipped(llcm_root, keep_global_rng, trial):
    expected_vis = reference_gallery_llcm(llcm_root, 1, trial)
    expected_nir = reference_gallery_llcm(llcm_root, 2, trial)
    # Empty camera and id folders exist in the real dataset: accepted silently, no draw consumed.
    os.makedirs(os.path.join(llcm_root, "test_nir", "cam5"))
    os.makedirs(os.path.join(llcm_root, "test_nir", "cam1", "0008"))
    os.makedirs(os.path.join(llcm_root, "test_vis", "cam2", "0020"))
    reader = LLCM(llcm_root)
    state = random.getstate()
    ir2vis, vis2ir = reader.test("ir2vis", trial=trial), reader.test("vis2ir", trial=trial)
    assert random.getstate() == state
    assert [s.path for s in ir2vis.gallery] == expected_vis
    assert [s.path for s in vis2ir.gallery] == expected_nir
    assert [(s.pid, s.cam) for s in ir2vis.gallery] == [(8, 1), (8, 9), (20, 1), (20, 3)]
    assert [(s.pid, s.cam) for s in vis2ir.gallery] == [(8, 2), (20, 8)]


def test_id_list_one_per_line_with_bom(llcm_root):
    expected = LLCM(llcm_root).test("vis2ir", trial=2)
    open(os.path.join(llcm_root, "idx", "test_id.txt"), "w", encoding="utf-8").write("\ufeff20\n\n8\n")
    reader = LLCM(llcm_root)
    assert reader.test_ids == [20, 8] and reader.test("vis2ir", trial=2) == expected


def test_train_lists(llcm_root):
    train = LLCM(llcm_root).train
    assert train.num_classes == 2
    assert [(os.path.relpath(s.path, llcm_root), s.pid, s.cam, s.label) for s in train.visible] == [
        ("train_vis/cam2/0003/a.jpg", 1, 2, 1),
        ("train_vis/cam7/0001/b.jpg", 0, 7, 0),
    ]
    assert [(s.pid, s.cam, s.label) for s in train.infrared] == [(0, 4, 0), (1, 9, 1)]


@pytest.mark.parametrize(
    "case, error, phrases",
    [
        ("no_nir", FileNotFoundError, ["test_nir", "not found"]),
        ("no_train_list", FileNotFoundError, ["train_nir.txt", "not found"]),
        ("bad_ids", ValueError, ["test_id.txt", "malformed id 'x'"]),
        ("missing_image", FileNotFoundError, ["train_vis.txt line 2 points to a missing image"]),
        ("non_image", ValueError, ["Thumbs.db", "is not an image file"]),
        ("duplicate_line", ValueError, ["train_nir.txt line 3 repeats train_nir/cam4/0001/c.jpg (already on line 1)"]),
        ("label_vs_folder", ValueError, ["train_nir.txt line 2 labels train_nir/cam9/0003/d.jpg as 0", "folder 3"]),
        ("label_two_folders", ValueError, ["train_vis.txt line 2 gives label 1 to identity folder 1, but"]),
        ("id_without_images", ValueError, ["test_id.txt line 3 lists id 31, which has no test images"]),
        ("id_only_empty_folders", ValueError, ["test_id.txt line 1 lists id 44, which has no test images"]),
        ("garbage_line", ValueError, ["test_id.txt line 2 has a malformed id 'test'"]),
    ],
)
def test_bad_layouts(llcm_root, case, error, phrases):
    if case == "no_nir":
        os.rename(os.path.join(llcm_root, "test_nir"), os.path.join(llcm_root, "nir"))
    elif case == "no_train_list":
        os.remove(os.path.join(llcm_root, "idx", "train_nir.txt"))
    elif case == "bad_ids":
        open(os.path.join(llcm_root, "idx", "test_id.txt"), "w").write("20,x\n")
    elif case == "missing_image":
        os.remove(os.path.join(llcm_root, "train_vis", "cam7", "0001", "b.jpg"))
    elif case == "duplicate_line":
        with open(os.path.join(llcm_root, "idx", "train_nir.txt"), "a") as handle:
            handle.write("train_nir/cam4/0001/c.jpg 0\n")
    elif case == "label_vs_folder":
        open(os.path.join(llcm_root, "idx", "train_nir.txt"), "w").write(
            "train_nir/cam4/0001/c.jpg 0\ntrain_nir/cam9/0003/d.jpg 0\n"
        )
    elif case == "label_two_folders":
        open(os.path.join(llcm_root, "idx", "train_vis.txt"), "w").write(
            "train_vis/cam2/0003/a.jpg 1\ntrain_vis/cam7/0001/b.jpg 1\n"
        )
    elif case == "id_without_images":
        open(os.path.join(llcm_root, "idx", "test_id.txt"), "w").write("20\n8\n31\n")
    elif case == "id_only_empty_folders":
        os.makedirs(os.path.join(llcm_root, "test_vis", "cam1", "0044"))
        open(os.path.join(llcm_root, "idx", "test_id.txt"), "w").write("44,20,8\n")
    elif case == "garbage_line":
        open(os.path.join(llcm_root, "idx", "test_id.txt"), "w").write("20,8\ntest ids\n")
    else:
        open(os.path.join(llcm_root, "test_vis", "cam9", "0008", "Thumbs.db"), "wb").write(b"x")
    with pytest.raises(error) as info:
        LLCM(llcm_root)
    for phrase in phrases:
        assert phrase in str(info.value)
