"""The data-only TorchScript reader: same state dict as torch.jit.load, and no code from the file ever runs."""

import builtins
import logging
import os
import pickle
import shlex
import zipfile

import pytest
import torch

from csdn.clip import ArchiveReadError, build_model, load, read_state_dict, read_torchscript_state_dict, tiny_state_dict

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*torch.jit.*deprecated")


def _jit_state_dict(path):
    return torch.jit.load(str(path), map_location="cpu").state_dict()


def _assert_same_state_dict(actual, expected):
    assert list(actual) == list(expected)  # same keys, same order
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and actual[key].shape == value.shape, key
        assert torch.equal(actual[key], value), key


@pytest.fixture(scope="module")
def clip_archives(tmp_path_factory):
    """Traced tiny CLIPs as OpenAI ships them (plus their 3 scalar buffers), fp32 and fp16 (OpenAI's are fp16)."""
    root, paths = tmp_path_factory.mktemp("archives"), {}
    for arch in ("RN", "ViT"):
        model = build_model(tiny_state_dict(arch, seed=7))
        for key, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
            model.__dict__.pop(key, None)
            model.register_buffer(key, torch.tensor(value))
        inputs = {
            "encode_image": (torch.zeros(1, 3, 224, 224),),
            "encode_text": (torch.zeros(1, 77, dtype=torch.long),),
        }
        traced = torch.jit.trace_module(model, inputs, check_trace=False)
        torch.jit.save(traced, root / f"{arch}-fp32.pt")
        torch.jit.save(traced.half(), root / f"{arch}-fp16.pt")  # as OpenAI's CUDA-traced fp16 releases
        paths[arch, "fp32"], paths[arch, "fp16"] = root / f"{arch}-fp32.pt", root / f"{arch}-fp16.pt"
    return paths


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("arch", ["RN", "ViT"])
def test_clip_archives_read_like_torch_jit_load(clip_archives, arch, precision):
    path = clip_archives[arch, precision]
    state = read_torchscript_state_dict(path)
    _assert_same_state_dict(state, _jit_state_dict(path))
    assert state["positional_embedding"].dtype == (torch.float16 if precision == "fp16" else torch.float32)
    assert state["input_resolution"].dtype == torch.int64 and int(state["input_resolution"]) == 224
    _assert_same_state_dict(read_state_dict(path), _jit_state_dict(path))
    model, _ = load(path)  # the whole path builds the model from the data-only state dict
    assert model.dtype == torch.float32 and model.image_size == (224, 224)


def test_cuda_located_storages_are_read_on_the_cpu(clip_archives, tmp_path):
    """OpenAI traced its archives on CUDA: their storage records say 'cuda:0'. Read on the CPU all the same."""
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"  # BINUNICODE 'cpu' -> 'cuda:0'
    with zipfile.ZipFile(clip_archives["ViT", "fp16"]) as src, zipfile.ZipFile(tmp_path / "cuda.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                assert cpu in data
                data = data.replace(cpu, cuda)
            dst.writestr(info, data)
    state = read_torchscript_state_dict(tmp_path / "cuda.pt")
    assert all(value.device.type == "cpu" for value in state.values())
    _assert_same_state_dict(state, _jit_state_dict(clip_archives["ViT", "fp16"]))


class _Mixed(torch.nn.Module):
    """Views with storage offsets and transposed strides, many dtypes, a bias-free and a nested submodule,
    and a tensor attribute that is neither parameter nor buffer (not in the state dict)."""

    def __init__(self):
        super().__init__()
        base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
        self.weight = torch.nn.Parameter(base.clone())
        self.register_buffer("offset_view", base[1:3, 2:5])  # storage offset 8, strides (6, 1)
        self.register_buffer("transposed", base.t())  # strides (1, 6)
        for name, dtype in (("b16", torch.bfloat16), ("f64", torch.float64), ("i8", torch.int8),
                            ("u8", torch.uint8), ("i32", torch.int32), ("flag", torch.bool),
                            ("c64", torch.complex64)):  # fmt: skip
            self.register_buffer(name, (torch.arange(5) - 2).to(dtype))
        self.register_buffer("empty", torch.zeros(0, 3))
        self.late = torch.nn.Parameter(torch.ones(2))  # after the buffers: still listed before them
        self.note = torch.ones(2)  # a plain tensor attribute
        self.proj = torch.nn.Linear(6, 2, bias=False)
        self.blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))])

    def forward(self, x):
        return self.blocks[0](self.proj(x * self.weight[0] + self.note.sum()))


def test_views_dtypes_and_plain_attributes_read_like_torch_jit_load(tmp_path):
    torch.jit.save(torch.jit.script(_Mixed()), tmp_path / "mixed.pt")
    state = read_torchscript_state_dict(tmp_path / "mixed.pt")
    _assert_same_state_dict(state, _jit_state_dict(tmp_path / "mixed.pt"))
    torch.testing.assert_close(state["offset_view"], torch.tensor([[8.0, 9, 10], [14, 15, 16]]), rtol=0, atol=0)
    assert "note" not in state and "proj.bias" not in state and "blocks.0.1.weight" in state


def test_big_endian_archive_is_byte_swapped(tmp_path):
    module = torch.nn.Linear(3, 4)  # float32 storages only: every record swaps in 4-byte groups
    torch.jit.save(torch.jit.script(module), tmp_path / "little.pt")
    with zipfile.ZipFile(tmp_path / "little.pt") as src, zipfile.ZipFile(tmp_path / "big.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))
            dst.writestr(info, data)
    _assert_same_state_dict(read_torchscript_state_dict(tmp_path / "big.pt"), module.state_dict())


def test_only_the_class_declarations_are_read_from_the_code(tmp_path):
    """Code that is not even Python around the class block does not matter: only the declarations are read."""
    module = torch.nn.Linear(3, 4)
    torch.jit.save(torch.jit.script(module), tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(tmp_path / "odd.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".py"):
                data = b"def broken(:\n  pass\n" + data + b"class Other(Module):\n  __parameters__ = []\n"
            dst.writestr(info, data)
    _assert_same_state_dict(read_torchscript_state_dict(tmp_path / "odd.pt"), module.state_dict())


def test_class_with_own_setstate_is_refused_unless_trust_code(tmp_path, caplog, capfd, save_self_restoring_archive):
    path = save_self_restoring_archive(tmp_path / "restores.pt")
    capfd.readouterr()
    with pytest.raises(ArchiveReadError, match="restores itself with its own code.*trust_code=True") as info:
        read_state_dict(path)
    assert str(path) in str(info.value) and "code from the archive ran" not in capfd.readouterr().out
    with caplog.at_level(logging.WARNING, logger="csdn.clip.pretrained"):
        state = read_state_dict(path, trust_code=True)  # torch.jit.load ran the archive's __setstate__
    assert "trust_code=True: loading it with torch.jit.load" in caplog.text and str(path) in caplog.text
    assert list(state) == ["w"] and torch.equal(state["w"], torch.full((3,), 3.0))
    assert "TorchScript code from the archive ran" in capfd.readouterr().out


def _write_sentinel(path):
    with open(path, "w") as file:
        file.write("code from the archive ran")


class _SetstateWritesSentinel:
    def __init__(self, path):
        self.path = path

    def __setstate__(self, state):
        _write_sentinel(state["path"])


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(sentinel):
    """name -> pickle bytes that create ``sentinel`` when unpickled by an unrestricted unpickler."""
    quoted = shlex.quote(str(sentinel))
    return {
        "reduce-os.system": pickle.dumps(_Reduce(os.system, (f"touch {quoted}",)), protocol=2),
        "reduce-builtins.exec": pickle.dumps(
            _Reduce(builtins.exec, (f"open({str(sentinel)!r}, 'w').write('x')",)), protocol=2
        ),
        "reduce-function": pickle.dumps(_Reduce(_write_sentinel, (str(sentinel),)), protocol=2),
        "setstate": pickle.dumps(_SetstateWritesSentinel(str(sentinel)), protocol=2),
    }


def _archive(path, data_pkl, code="class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n"):
    """A hand-written TorchScript-like archive: ``evil/data.pkl`` plus the usual records."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", data_pkl)
        archive.writestr("evil/code/__torch__/m.py", code)
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("evil/byteorder", "little")
        archive.writestr("evil/version", "3\n")
    return path


def _inside_module(payload):
    """``payload`` as the value of attribute ``w`` of a TorchScript module object ``__torch__.m.M``."""
    return b"\x80\x02c__torch__.m\nM\n)\x81}X\x01\x00\x00\x00w" + payload[2:-1] + b"sb."


@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "inside-a-module"])
@pytest.mark.parametrize("kind", ["reduce-os.system", "reduce-builtins.exec", "reduce-function", "setstate"])
def test_code_in_data_pkl_never_runs(tmp_path, kind, nested):
    sentinel = tmp_path / "sentinel"
    payload = _payloads(sentinel)[kind]
    pickle.loads(payload)  # control: an unrestricted unpickler does run it
    assert sentinel.exists()
    sentinel.unlink()
    path = _archive(tmp_path / f"{kind}.pt", _inside_module(payload) if nested else payload)
    for read in (read_torchscript_state_dict, read_state_dict, load):
        with pytest.raises(ArchiveReadError, match="not a tensor or plain container.*trust_code=True") as info:
            read(path)
        assert str(path) in str(info.value)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "data_pkl, phrase",
    [
        (pickle.dumps(torch.nn.Linear(2, 2), protocol=2), "torch.nn.modules.linear.Linear, which is not a tensor"),
        (b"\x80\x02ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00aK\x01sb.", "sets the state of a OrderedDict"),
        (b"\x80\x02c__torch__.m\nM\n)\x81}b}b.", "sets the state of a M"),  # BUILD twice: refused
        (b"\x80\x02c__torch__.m\nNotDefined\n)\x81}b.", "code has no class __torch__.m.NotDefined"),
        (b"\x80\x02c__torch__.m\nM\n)\x81(tb.", "restores itself with its own code"),  # non-dict state
        (b"\x80\x02c__torch__.m\nM\nK\x01\x85\x81}b.", "built with arguments"),
        (b"\x80\x02]q\x00.", "holds a list, not a TorchScript module"),
        (b"\x80\x02c__torch__.m\nM\n", "EOFError"),  # truncated pickle
    ],
    ids=[
        "foreign-class",
        "build-on-container",
        "build-twice",
        "unknown-class",
        "custom-state",
        "ctor-args",
        "list",
        "truncated",
    ],  # fmt: skip
)
def test_unreadable_archives_are_one_clear_error(tmp_path, data_pkl, phrase):
    path = _archive(tmp_path / "bad.pt", data_pkl)
    with pytest.raises(ArchiveReadError, match=f"cannot read TorchScript archive {path} as data only: .*{phrase}"):
        read_torchscript_state_dict(path)


def test_module_class_with_a_setstate_in_its_code_is_refused_even_with_a_dict_state(tmp_path):
    code = (
        "class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n  def __setstate__(self, state: Any):\n    pass\n"
    )
    path = _archive(tmp_path / "setstate.pt", b"\x80\x02c__torch__.m\nM\n)\x81}b.", code=code)
    with pytest.raises(ArchiveReadError, match="restores itself with its own code"):
        read_torchscript_state_dict(path)
    _archive(tmp_path / "plain.pt", b"\x80\x02c__torch__.m\nM\n)\x81}b.")  # control: without it, readable
    assert read_torchscript_state_dict(tmp_path / "plain.pt") == {}


_STORAGE_0 = b"X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x0c"  # ('storage', Float, '0', 'cpu', 12)
_DAMAGES = {  # damage -> (record name suffix, new bytes or None to drop it, expected phrase)
    "missing-storage": ("/data/0", lambda data: None, "record .*data/0 is missing"),
    "short-storage": ("/data/0", lambda data: data[:-1], "storage data/0 has 47 bytes, expected 48"),
    "byteorder": ("/byteorder", lambda data: b"middle", "byteorder record says 'middle'"),
    "no-code": (".py", lambda data: None, "record .*code/.*linear.*py is missing"),  # the class's source
    "view-outside": (  # storage 0 declared and stored as 4 floats, still viewed as (4, 3)
        "/data.pkl",
        lambda data: data.replace(_STORAGE_0, _STORAGE_0[:-1] + b"\x04"),
        "view lies outside its storage",
    ),
}


@pytest.mark.parametrize("damage", list(_DAMAGES))
def test_damaged_records_are_one_clear_error(tmp_path, damage):
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 4)), tmp_path / "ok.pt")
    suffix, change, phrase = _DAMAGES[damage]
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(tmp_path / "bad.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if damage == "view-outside" and info.filename.endswith("/data/0"):
                data = data[:16]
            if info.filename.endswith(suffix):
                assert damage != "view-outside" or _STORAGE_0 in data  # the pickle layout this test assumes
                data = change(data)
            if data is not None:
                dst.writestr(info, data)
    with pytest.raises(ArchiveReadError, match=phrase):
        read_torchscript_state_dict(tmp_path / "bad.pt")
