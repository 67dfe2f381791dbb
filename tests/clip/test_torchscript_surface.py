"""The data-only TorchScript reader's safety surface, pinned: the exact allow-list, every pickle spelling of a
dangerous builtin refused, class declarations that must be complete, and sizes bounded before allocation."""

import builtins
import collections
import copyreg
import io
import pickle
import struct
import zipfile

import pytest
import torch

from csdn.clip import ArchiveReadError, read_state_dict, read_torchscript_state_dict
from csdn.clip import torchscript as ts

# ------------------------------------------------------------------------------------------- the allow-list

PINNED = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("collections", "OrderedDict"),
    ("torch.jit._pickle", "build_intlist"),
    ("torch.jit._pickle", "build_doublelist"),
    ("torch.jit._pickle", "build_boollist"),
    ("torch.jit._pickle", "build_tensorlist"),
    ("torch.jit._pickle", "restore_type_tag"),
    *(("torch", name) for name in ts._STORAGE_DTYPES),
}


def test_the_allow_list_is_exactly_the_pinned_one():
    """Any addition (builtins.eval, a torch function, ...) must be a deliberate change of this test."""
    assert set(ts._ALLOWED) == PINNED
    assert len(ts._STORAGE_DTYPES) == 12 and all(isinstance(v, ts._StorageType) for k, v in ts._ALLOWED.items()
                                                   if k[0] == "torch")  # fmt: skip
    assert ts._ALLOWED["collections", "OrderedDict"] is collections.OrderedDict  # a container, nothing else


def _module(payload_ops: bytes) -> bytes:
    """A protocol-2 ``data.pkl`` whose TorchScript module ``__torch__.m.M`` has attribute ``w`` = the object the
    opcodes ``payload_ops`` push (no PROTO/STOP of their own)."""
    return b"\x80\x02c__torch__.m\nM\n)\x81}X\x01\x00\x00\x00w" + payload_ops + b"sb."


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


ARG = b"X\x04\x00\x00\x00pass"  # the string the callable would be called with


def _spellings(module: str, name: str) -> dict[str, bytes]:
    """Every opcode sequence that makes an unpickler look ``module.name`` up and (for most) call it on ARG."""
    ref = f"{module}\n{name}\n".encode()
    return {
        "GLOBAL+REDUCE": b"c" + ref + ARG + b"\x85R",  # protocols 0-3
        "STACK_GLOBAL+REDUCE": _unicode(module) + _unicode(name) + b"\x93" + ARG + b"\x85R",  # protocols 4-5
        "INST": b"(" + ARG + b"i" + ref,  # protocol 0: class lookup and call in one opcode
        "OBJ": b"(c" + ref + ARG + b"o",  # protocol 1
        "NEWOBJ": b"c" + ref + b")\x81",  # protocol 2
        "NEWOBJ_EX": b"c" + ref + b")}\x92",  # protocol 4
        "EXT1": b"\x82\xf0",  # protocol 2 extension registry (registered by the test)
    }


DANGEROUS = [(m, n) for m in ("builtins", "__builtin__") for n in ("eval", "exec", "compile", "getattr", "open",
             "__import__", "setattr", "globals", "breakpoint", "input")]  # fmt: skip
DANGEROUS += [("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("nt", "system"), ("torch", "load"),
              ("torch.serialization", "load"), ("torch.jit", "load"), ("pickle", "loads"),
              ("copyreg", "_reconstructor"), ("torch._utils", "_rebuild_parameter"), ("collections", "defaultdict"),
              ("functools", "partial")]  # fmt: skip


@pytest.fixture()
def extension():
    """Register extension code 0xF0 for each test's global (the EXT opcodes go through find_class too)."""
    registered = []

    def register(module, name):
        copyreg.add_extension(module, name, 0xF0)
        registered.append((module, name))

    yield register
    for module, name in registered:
        copyreg.remove_extension(module, name, 0xF0)


@pytest.mark.parametrize("module, name", DANGEROUS, ids=[f"{m}.{n}" for m, n in DANGEROUS])
def test_every_spelling_of_a_dangerous_global_is_refused(tmp_path, extension, module, name):
    extension(module, name)
    for spelling, ops in _spellings(module, name).items():
        for top_level in (True, False):
            data = b"\x80\x02" + ops + b"." if top_level else _module(ops)
            path = _archive(tmp_path / "evil.pt", data)
            with pytest.raises(ArchiveReadError, match="not a tensor or plain container") as info:
                read_torchscript_state_dict(path)
            assert f"{module}.{name}" in str(info.value), spelling


@pytest.mark.parametrize("protocol", range(6))
def test_builtin_exec_pickled_with_every_protocol_is_refused(tmp_path, protocol):
    """What pickle itself writes for builtins.exec at each protocol (GLOBAL with __builtin__ below 3, STACK_GLOBAL
    from 4), as a reduce payload."""

    class Payload:
        def __reduce__(self):
            return builtins.exec, ("raise SystemExit('ran')",)

    data = pickle.dumps(Payload(), protocol=protocol)
    with pytest.raises(SystemExit):
        pickle.loads(data)  # control: an unrestricted unpickler runs it
    path = _archive(tmp_path / f"p{protocol}.pt", data)
    spelling = "__builtin__.exec" if protocol < 3 else "builtins.exec"
    with pytest.raises(ArchiveReadError, match=f"{spelling}, which is not a tensor or plain container"):
        read_torchscript_state_dict(path)


# ------------------------------------------------------------------------------------ class declarations


def _archive(path, data_pkl, code="class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n", storages=None):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", data_pkl)
        archive.writestr("evil/code/__torch__/m.py", code)
        archive.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("evil/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"evil/data/{key}", raw)
    return path


EMPTY_MODULE = b"\x80\x02c__torch__.m\nM\n)\x81}b."


@pytest.mark.parametrize(
    "code, phrase",
    [
        ("class M(Module):\n  __parameters__ = []\n", "does not declare its __buffers__"),
        ("class M(Module):\n  __buffers__ = []\n", "does not declare its __parameters__"),
        ("class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n  __buffers__ = []\n", "__buffers__ twice"),
        ("class M(nn.Module):\n  __parameters__ = []\n  __buffers__ = ['b']\n", "is not a module class"),
        ("class M(Module):\n  __parameters__ = []\n  __buffers__ = ['b']\n", r"declares \['b'\] .*holds no such"),
    ],
    ids=["no-buffers", "no-parameters", "twice", "not-a-module", "declared-not-held"],
)
def test_incomplete_or_inconsistent_declarations_are_refused(tmp_path, code, phrase):
    """Each of these would make declared buffers vanish silently from the state dict."""
    path = _archive(tmp_path / "decl.pt", EMPTY_MODULE, code=code)
    with pytest.raises(ArchiveReadError, match=phrase):
        read_torchscript_state_dict(path)


# ------------------------------------------------------------------------------------ sizes before allocation


def _tensor_ops(numel_stored: int, size: tuple, stride: tuple) -> bytes:
    """Opcodes pushing ``_rebuild_tensor_v2(storage '0' of numel_stored floats, 0, size, stride, False, {})``."""

    class Ref:
        pass

    class Tensor:
        def __reduce__(self):
            args = (Ref(), 0, size, stride, False, collections.OrderedDict())
            return torch._utils._rebuild_tensor_v2, args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel_stored) if isinstance(obj, Ref) else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(Tensor())
    return buffer.getvalue()[2:-1]


BUFFER_W = "class M(Module):\n  __parameters__ = []\n  __buffers__ = ['w']\n"


def test_a_stride_0_view_declaring_4_gb_is_refused_before_allocation(tmp_path):
    ops = _tensor_ops(1, (1 << 30,), (0,))  # 4 GiB of float32 from one stored float
    path = _archive(tmp_path / "wide.pt", _module(ops), code=BUFFER_W, storages={"0": struct.pack("<f", 1.0)})
    with pytest.raises(ArchiveReadError, match=r"view of shape \(1073741824,\) .*expands beyond its storage of 1 "):
        read_torchscript_state_dict(path)
    with pytest.raises(ArchiveReadError, match="expands beyond its storage"):
        read_state_dict(path)  # the path that builds a model copies every tensor
    control = _archive(tmp_path / "ok.pt", _module(_tensor_ops(1, (1,), (1,))), code=BUFFER_W,
                       storages={"0": struct.pack("<f", 1.0)})  # fmt: skip
    assert torch.equal(read_torchscript_state_dict(control)["w"], torch.ones(1))


def test_views_sharing_one_storage_are_bounded_together(tmp_path, monkeypatch):
    view = _tensor_ops(256, (256,), (1,))
    two = b"(" + view + view + b"l"  # a list of two views of one 1 KiB storage
    path = _archive(tmp_path / "two.pt", _module(two), code=BUFFER_W, storages={"0": bytes(1024)})
    monkeypatch.setenv("CSDN_MAX_TENSOR_BYTES", "1500")  # one view (1024 bytes) fits, two do not
    with pytest.raises(ts.ArchiveLimitError, match="its tensors together declares 2,048 bytes.*CSDN_MAX_TENSOR_BYTES"):
        read_torchscript_state_dict(path)


def _patch_declared_size(path, entry: str, size: int):
    """Rewrite the central directory's uncompressed size of ``entry`` (the data stays as it is)."""
    raw = bytearray(path.read_bytes())
    name = entry.encode()
    at = 0
    while True:
        at = raw.index(b"PK\x01\x02", at)
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46 : at + 46 + length] == name:
            struct.pack_into("<I", raw, at + 24, size)
            break
        at += 4
    path.write_bytes(bytes(raw))


def test_declared_entry_sizes_are_checked_against_the_budget_before_reading(tmp_path, monkeypatch):
    path = _archive(tmp_path / "big.pt", EMPTY_MODULE, storages={"0": b"1234"})
    _patch_declared_size(path, "evil/data/0", 3_000_000_000)  # declares 3 GB, holds 4 bytes
    monkeypatch.setenv("CSDN_MAX_TENSOR_BYTES", str(1 << 30))
    with pytest.raises(ts.ArchiveLimitError, match=r"tensor records together declares 3,000,000,000 bytes, more than"
                       r" the limit of 1,073,741,824 bytes; .*CSDN_MAX_TENSOR_BYTES=BYTES") as info:  # fmt: skip
        read_torchscript_state_dict(path)
    assert str(path) in str(info.value)
    with pytest.raises(ts.ArchiveLimitError):
        read_state_dict(path, trust_code=True)  # the opt-in to code lifts no budget
    _patch_declared_size(path, "evil/data.pkl", 300 << 20)
    monkeypatch.delenv("CSDN_MAX_TENSOR_BYTES")
    with pytest.raises(ts.ArchiveLimitError, match="record evil/data.pkl declares .*CSDN_MAX_RECORD_BYTES"):
        read_torchscript_state_dict(path)


def test_a_deflated_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", EMPTY_MODULE)
        archive.writestr("evil/code/__torch__/m.py", "class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n")
        archive.writestr("evil/data/0", bytes(8 << 20), compress_type=zipfile.ZIP_DEFLATED)  # 8 MiB -> ~8 KB
    assert path.stat().st_size < 100_000
    with pytest.raises(
        ts.ArchiveLimitError, match=r"entry evil/data/0 inflates [\d,]+ compressed bytes to a declared 8,388,608"
    ):
        read_torchscript_state_dict(path)


def test_control_characters_in_a_global_name_are_escaped(tmp_path):
    data = b"\x80\x02cos\x1b[2J\nsys\x07tem\n)R."
    path = _archive(tmp_path / "esc.pt", data)
    with pytest.raises(ArchiveReadError) as info:
        read_torchscript_state_dict(path)
    message = str(info.value)
    assert r"os\x1b[2J.sys\x07tem" in message and "\x1b" not in message and "\x07" not in message


def test_a_stride_0_tensor_in_a_plain_state_dict_is_refused(tmp_path):
    torch.save({"visual.proj": torch.zeros(1).expand(1 << 30)}, tmp_path / "sd.pt")  # 4 GiB declared, 4 B held
    with pytest.raises(ValueError, match=r"sd.pt: tensor \['visual.proj'\] of shape \(1073741824,\) declares"):
        read_state_dict(tmp_path / "sd.pt")
