"""CSV-list datasets: a hand-made good dataset end to end, every kind of broken row, the evaluation rule."""

import os

import numpy as np
import pytest

from csdn.data import CSVDataset, Sample, open_dataset
from csdn.evaluation import evaluate

FILES = {
    "train": "path,pid,cam,modality\n"
    "t/1a.jpg,10,1,visible\nt/1b.jpg,10,2,infrared\nt/2a.jpg,4,1,visible\nt/2b.jpg,4,3,infrared\n",
    "query": "path,pid,cam,modality\nq/a.jpg,7,1,infrared\nq/b.jpg,8,3,infrared\nq/c.jpg,7,2,visible\n",
    "gallery": "path,pid,cam,modality\n"
    "g/a.jpg,7,1,visible\ng/b.jpg,7,2,visible\ng/c.jpg,8,2,visible\ng/d.jpg,7,3,infrared\n",
}


@pytest.fixture
def csv_root(tmp_path, write_image):
    root = tmp_path / "my dataset"
    for text in FILES.values():
        for line in text.splitlines()[1:]:
            write_image(root / line.split(",")[0])
    write_image(root / "q" / "spare.png")
    (root / "q" / "notes.txt").write_text("not an image")
    for split, text in FILES.items():
        (root / f"{split}.csv").write_text(text)
    return str(root)


def _s(root, rel, pid, cam, modality, label=-1):
    return Sample(os.path.join(root, rel), pid, cam, modality, label)


def test_train_split_is_relabelled_in_sorted_pid_order(csv_root):
    train = CSVDataset(csv_root).train
    assert train.num_classes == 2 and train.pids == [4, 10]
    assert train.visible == [
        _s(csv_root, "t/1a.jpg", 10, 1, "visible", 1),
        _s(csv_root, "t/2a.jpg", 4, 1, "visible", 0),
    ]
    assert train.infrared == [
        _s(csv_root, "t/1b.jpg", 10, 2, "infrared", 1),
        _s(csv_root, "t/2b.jpg", 4, 3, "infrared", 0),
    ]


def test_test_splits_keep_original_pids_cams_and_file_order(csv_root):
    reader = CSVDataset(csv_root)
    assert reader.test_settings() == [{"direction": "ir2vis"}, {"direction": "vis2ir"}] and reader.trials == (0,)
    ir2vis = reader.test("ir2vis")
    assert ir2vis.query == [_s(csv_root, "q/a.jpg", 7, 1, "infrared"), _s(csv_root, "q/b.jpg", 8, 3, "infrared")]
    assert ir2vis.gallery == [
        _s(csv_root, "g/a.jpg", 7, 1, "visible"),
        _s(csv_root, "g/b.jpg", 7, 2, "visible"),
        _s(csv_root, "g/c.jpg", 8, 2, "visible"),
    ]
    assert (ir2vis.protocol, ir2vis.query_modality, ir2vis.gallery_modality) == ("market", "infrared", "visible")
    assert ir2vis.name == "csv infrared->visible" and ir2vis.trial == 0
    vis2ir = reader.test("vis2ir")
    assert vis2ir.query == [_s(csv_root, "q/c.jpg", 7, 2, "visible")]
    assert vis2ir.gallery == [_s(csv_root, "g/d.jpg", 7, 3, "infrared")]
    stats = reader.stats()
    assert (stats["train_ids"], stats["train_visible"], stats["train_infrared"]) == (2, 2, 2)
    assert [(r["query"], r["gallery"]) for r in stats["test"]] == [(2, 3), (1, 1)]


def _metrics(split, dist):
    res = evaluate(
        dist,
        [s.pid for s in split.query],
        [s.pid for s in split.gallery],
        [s.cam for s in split.query],
        [s.cam for s in split.gallery],
        protocol=split.protocol,
        max_rank=3,
    )
    return res.rank(1), res.mAP


def test_default_rule_drops_the_querys_identity_seen_by_its_camera(csv_root):
    # q/a (pid 7, cam 1) is closest to g/a (pid 7, cam 1): that same-camera match does not count, so g/c (pid 8)
    # ranks first and the true match g/b second: AP 1/2. q/b (pid 8, cam 3): g/a wrong, then g/c right: AP 1/2.
    dist = np.array([[0.1, 0.5, 0.3], [0.2, 0.9, 0.4]])
    assert _metrics(CSVDataset(csv_root).test("ir2vis"), dist) == pytest.approx((0.0, 0.5))
    # protocol="regdb" keeps everything: q/a finds g/a first (AP (1 + 2/3) / 2), q/b as before.
    split = CSVDataset(csv_root, protocol="regdb").test("ir2vis")
    assert split.protocol == "regdb"
    assert _metrics(split, dist) == pytest.approx((0.5, ((1 + 2 / 3) / 2 + 0.5) / 2))
    assert CSVDataset(csv_root, protocol="llcm").test("vis2ir").protocol == "llcm"


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffpath,pid,cam,modality\r\nq/a.jpg,7,1,infrared\r\n\r\nq/b.jpg,8,3,infrared\r\nq/c.jpg,7,2,visible\r\n",
        "\n modality , path,cam,pid\n\nInfrared, q/a.jpg ,1,7\n infrared,q/b.jpg,3, 8\nVISIBLE,q/c.jpg,2,7\n\n",
        'path,pid,cam,modality\n"q/a.jpg",7,1,infrared\nq/b.jpg,8,3,infrared\n"q/c.jpg","7","2","visible"\n',
    ],
    ids=["bom-crlf-blank", "column-order-spaces-case", "quoted"],
)
def test_accepted_spellings_read_the_same(csv_root, text):
    expected = [CSVDataset(csv_root).test(d) for d in ("ir2vis", "vis2ir")]
    with open(os.path.join(csv_root, "query.csv"), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    assert [CSVDataset(csv_root).test(d) for d in ("ir2vis", "vis2ir")] == expected


HEADER = "path,pid,cam,modality\n"


@pytest.mark.parametrize(
    "split, text, error, phrase",
    [
        ("query", "path,pid,modality\nq/a.jpg,7,infrared\n", ValueError, "line 1: bad header, missing column 'cam'"),
        ("query", "path,pid,cam,modality,note\n", ValueError, "line 1: bad header, unknown column 'note'"),
        ("query", "q/a.jpg,7,1,infrared\n", ValueError, "line 1: bad header, unknown column 'q/a.jpg'"),
        ("query", "path,pid,cam,pid\n", ValueError, "line 1: bad header, column 'pid' appears twice"),
        ("query", HEADER + "q/a.jpg,7,1\n", ValueError, "line 2: missing column 'modality'"),
        ("query", HEADER + "q/a.jpg,7,1,infrared,x\n", ValueError, "line 2: 5 fields but the header has 4"),
        ("query", HEADER + "q/a.jpg,,1,infrared\n", ValueError, "line 2: column 'pid' is empty"),
        ("query", HEADER + "q/a.jpg,seven,1,infrared\n", ValueError, "line 2: pid 'seven' is not a non-negative"),
        ("query", HEADER + "q/a.jpg,7,-1,infrared\n", ValueError, "line 2: cam '-1' is not a non-negative integer"),
        ("query", HEADER + "q/a.jpg,7,1.5,infrared\n", ValueError, "line 2: cam '1.5' is not a non-negative"),
        ("query", HEADER + "q/a.jpg,7,1,uv\n", ValueError, "line 2: unknown modality 'uv'; expected"),
        ("gallery", HEADER + "g/a.jpg,7,1,visible\n\ng/zz.jpg,7,1,visible\n", FileNotFoundError, "line 4: image"),
        ("query", HEADER + "/etc/hosts.jpg,7,1,infrared\n", ValueError, "line 2: path '/etc/hosts.jpg' is absolute"),
        ("query", HEADER + "C:\\data\\a.jpg,7,1,infrared\n", ValueError, "is absolute"),
        ("query", HEADER + "C:a.jpg,7,1,infrared\n", ValueError, "line 2: path 'C:a.jpg' is absolute"),
        ("query", HEADER + "../outside.jpg,7,1,infrared\n", ValueError, "line 2: path '../outside.jpg' escapes"),
        ("query", HEADER + "q/../../x/a.jpg,7,1,infrared\n", ValueError, "escapes the dataset root"),
        ("query", HEADER + "q\\..\\..\\a.jpg,7,1,infrared\n", ValueError, "escapes the dataset root"),
        ("query", HEADER + "q/notes.txt,7,1,infrared\n", ValueError, "notes.txt is not an image file"),
        ("query", HEADER + "q/a.jpg,7,1,infrared\n./q/a.jpg,7,1,infrared\n", ValueError, "already listed on line 2"),
        ("query", HEADER + "q/a.jpg,7,1,infrared\nq/spare.png,10,1,infrared\n", ValueError, "pid 10 is also a train"),
        ("gallery", HEADER + "g/a.jpg,4,1,visible\n", ValueError, "gallery.csv line 2: pid 4 is also a training"),
        ("query", HEADER, ValueError, "query.csv lists no image"),
        ("query", "", ValueError, "query.csv lists no image"),
        ("train", None, FileNotFoundError, "train.csv not found; expected a CSV list with header"),
        ("gallery", HEADER + "g/a.jpg,7,1,visible\n", ValueError, "query.csv line 4 is a visible query image, but"),
        ("query", HEADER + "q/c.jpg,7,2,visible\n", ValueError, "gallery.csv line 2 is a visible gallery image, but"),
        ("query", b"path,pid,cam,modality\nq/\xe9.jpg,7,1,infrared\n", ValueError, "query.csv is not UTF-8 text"),
        ("query", 'path,pid,cam,modality\n"q/a.jpg,7,1,infrared\n', ValueError, "query.csv is not a valid CSV"),
    ],
)
def test_every_broken_row_is_one_error_naming_file_and_line(csv_root, split, text, error, phrase):
    path = os.path.join(csv_root, f"{split}.csv")
    if text is None:
        os.remove(path)
    else:
        with open(path, "wb" if isinstance(text, bytes) else "w") as handle:
            handle.write(text)
    with pytest.raises(error) as info:
        CSVDataset(csv_root)
    message = str(info.value)
    assert phrase in message and "\n" not in message
    if phrase.startswith("line"):
        assert message.startswith(f"CSV: {path} {phrase}")


def test_bad_arguments(csv_root, tmp_path):
    with pytest.raises(ValueError, match="Unknown value 'cmc' for argument protocol. Valid values are 'sysu'"):
        CSVDataset(csv_root, protocol="cmc")
    with pytest.raises(ValueError, match="Unknown trial 1. Valid trials are 0"):
        CSVDataset(csv_root).test(trial=1)
    with pytest.raises(ValueError, match="Unknown value 'v2t' for argument direction"):
        CSVDataset(csv_root).test(direction="v2t")
    with pytest.raises(FileNotFoundError, match="not found; expected a folder holding train.csv"):
        CSVDataset(tmp_path / "missing")


def test_unmatched_queries_are_reported(csv_root, caplog):
    with open(os.path.join(csv_root, "query.csv"), "a") as handle:
        handle.write("q/spare.png,99,1,infrared\n")
    split = CSVDataset(csv_root).test("ir2vis")
    assert split.query[-1].pid == 99
    assert "1 query ids have no gallery image and are left out of the metrics: [99]" in caplog.text


def test_open_by_name_and_detection(csv_root):
    assert isinstance(open_dataset("csv", csv_root), CSVDataset)
    assert open_dataset(None, csv_root, protocol="llcm").test().protocol == "llcm"


def test_synthetic_csv_dataset(tmp_path):
    from csdn.data.synthetic import make_csv

    reader = CSVDataset(make_csv(tmp_path / "c", num_train_ids=3, num_test_ids=2, images_per_cam=1))
    assert reader.train.num_classes == 3 and len(reader.train.visible) == len(reader.train.infrared) == 6
    split = reader.test()
    assert {s.cam for s in split.query} == {1, 3} and {s.cam for s in split.gallery} == {1, 2}
    assert {s.pid for s in split.query} == {s.pid for s in split.gallery} and len(split.query) == 4
    assert not {s.pid for s in split.query} & set(reader.train.pids)
