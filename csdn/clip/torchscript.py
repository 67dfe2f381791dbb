"""Data-only reader of TorchScript archives (OpenAI's CLIP releases): their state dict, without running their code.

A TorchScript archive (``torch.jit.save``) is a zip holding ``<name>/data.pkl`` (the module tree, pickled),
``<name>/data/<key>`` (one raw record per tensor storage), ``<name>/byteorder`` and ``<name>/code/`` (the
TorchScript source of every class). ``torch.jit.load`` compiles and runs that code (a class's ``__setstate__``
included). This reader never does: it unpickles ``data.pkl`` with an allow-list of tensor-rebuilding functions,
turns every TorchScript object into a placeholder that only records its attributes, reads the storages as raw
bytes, and reads from ``code/`` only the ``__parameters__``/``__buffers__`` declarations (parsed as text, never
executed) to tell parameters and buffers from other attributes. The result equals
``torch.jit.load(path, map_location="cpu").state_dict()``: same keys in the same order, same dtypes and values.

Sizes the archive declares are bounded before anything is allocated: every zip entry's declared size against a
budget (``CSDN_MAX_TENSOR_BYTES`` for the tensor records together, ``CSDN_MAX_RECORD_BYTES`` for each other
record), compressed entries against a decompression ratio (torch writes them uncompressed), and every tensor view
against its storage (a view that expands beyond it, e.g. with a zero stride, is refused) and the same budget.
"""

from __future__ import annotations

import ast
import collections
import io
import os
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._untrusted import byte_limit, first_line, over_limit, printable

_STORAGE_DTYPES = {
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
    "ByteStorage": torch.uint8,
    "CharStorage": torch.int8,
    "ShortStorage": torch.int16,
    "IntStorage": torch.int32,
    "LongStorage": torch.int64,
    "BoolStorage": torch.bool,
}


class ArchiveReadError(ValueError):
    """A TorchScript archive that the data-only reader cannot turn into a state dict without running its code."""


class ArchiveLimitError(ArchiveReadError):
    """A TorchScript archive that declares more bytes than a budget allows (``trust_code`` does not change that)."""


class ArchiveError(Exception):
    """Internal: why the archive cannot be read (wrapped into :class:`ArchiveReadError` with the file name)."""


class _OverLimit(ArchiveError):
    """Internal: a declared size over a budget or a decompression ratio (wrapped into :class:`ArchiveLimitError`)."""


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _Storage:
    flat: torch.Tensor  # (numel,) in the storage's dtype


class _ScriptObject:
    """Placeholder of a TorchScript object: its class name and the state BUILD gave it. Runs nothing."""

    qualified_name = ""
    state: Any  # what BUILD gave it (_UNSET until then)

    def __new__(cls, *args: Any) -> _ScriptObject:
        if args:
            raise ArchiveError(f"an object of class {cls.qualified_name} is built with arguments")
        obj = super().__new__(cls)
        obj.state = _UNSET
        return obj


_UNSET = object()


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    """torch._utils._rebuild_tensor(_v2) on data only: a strided view of a raw storage (bounds checked by torch).

    The view may not hold more elements than its storage (no zero or overlapping strides that would make a copy
    of it larger than the bytes the archive holds).
    """
    ints = (tuple, list)
    if not (isinstance(storage, _Storage) and isinstance(offset, int) and isinstance(size, ints)):
        raise ArchiveError("a tensor record is malformed")
    if (
        not isinstance(stride, ints)
        or len(size) != len(stride)
        or not all(isinstance(v, int) for v in (*size, *stride))
    ):
        raise ArchiveError("a tensor record has malformed sizes or strides")
    if offset < 0 or min((*size, *stride), default=0) < 0:
        raise ArchiveError(
            f"a tensor record has a negative offset, size or stride {printable((offset, size, stride), 120)}"
        )
    try:
        view = torch.as_strided(storage.flat, tuple(size), tuple(stride), offset)
    except RuntimeError as err:
        raise ArchiveError(f"a tensor view lies outside its storage ({first_line(err)})") from None
    numel = view.numel()
    if numel > storage.flat.numel():
        raise ArchiveError(
            f"a tensor view of shape {printable(tuple(size), 80)} ({numel:,} elements) expands beyond its storage of "
            f"{storage.flat.numel():,} elements (zero or overlapping strides {printable(tuple(stride), 80)})"
        )
    return view


def _same(value: Any, *_: Any) -> Any:
    """torch.jit._pickle's list builders and type-tag restorer: the value itself (type tags are not needed here)."""
    return value


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,  # the empty backward-hooks argument
    **{("torch.jit._pickle", n): _same for n in ("build_intlist", "build_doublelist", "build_boollist")},
    ("torch.jit._pickle", "build_tensorlist"): _same,
    ("torch.jit._pickle", "restore_type_tag"): _same,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _Unpickler(pickle._Unpickler):  # the pure-Python unpickler: unlike the C one, its BUILD can be replaced
    dispatch = dict(pickle._Unpickler.dispatch)
    stack: list[Any]  # pickle._Unpickler's working stack (set by load(); typeshed does not declare it)

    def __init__(self, data: bytes, read_storage: Any) -> None:
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage
        self._classes: dict[str, type[_ScriptObject]] = {}
        self._view_bytes, self._budget = 0, byte_limit("CSDN_MAX_TENSOR_BYTES")

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):  # a TorchScript class: a placeholder
            qualified = f"{module}.{name}"
            if qualified not in self._classes:
                self._classes[qualified] = type(name, (_ScriptObject,), {"qualified_name": qualified})
            return self._classes[qualified]
        if (module, name) not in _ALLOWED:
            raise ArchiveError(
                f"data.pkl refers to {printable(module, 80)}.{printable(name, 80)}, which is not a tensor or plain "
                "container"
            )
        target = _ALLOWED[(module, name)]
        return self._counted_view if target is _rebuild_tensor else target

    def _counted_view(self, *args: Any) -> torch.Tensor:
        """:func:`_rebuild_tensor`, counting the bytes all views together would take once materialised."""
        tensor = _rebuild_tensor(*args)
        self._view_bytes += tensor.numel() * tensor.element_size()
        if self._view_bytes > self._budget:
            raise _OverLimit(over_limit("its tensors together", self._view_bytes, "CSDN_MAX_TENSOR_BYTES"))
        return tensor

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ArchiveError(f"data.pkl has an unknown persistent record {printable(pid, 80)}")
        _, storage_type, key, _location, numel = pid  # the location (e.g. cuda:0) is ignored: read on the CPU
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and isinstance(numel, int)):
            raise ArchiveError(f"data.pkl has a malformed storage record {printable(pid, 80)}")
        return self._read_storage(key, storage_type.dtype, numel)

    def _load_build(self) -> None:
        """BUILD only ever records a placeholder's state; nothing else may be built (no ``__setstate__`` runs)."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _ScriptObject) or inst.state is not _UNSET:
            raise ArchiveError(
                f"data.pkl sets the state of a {printable(type(inst).__name__, 80)}, which a data-only reader refuses"
            )
        inst.state = state

    # typeshed types the table's handlers as taking pickle._Unpickler; ours takes this subclass
    dispatch[pickle.BUILD[0]] = _load_build  # type: ignore[assignment]


@dataclass(frozen=True)
class _ClassInfo:
    is_module: bool
    parameters: tuple[str, ...]
    buffers: tuple[str, ...]
    has_setstate: bool


class _Archive:
    """Records of one archive, read lazily: storages (cached, shared by views) and class declarations."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.zip = archive
        roots = [n[: -len("data.pkl")] for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(roots) != 1:
            raise ArchiveError("it has no top-level <name>/data.pkl record (an unknown or older TorchScript format)")
        self.prefix = roots[0]
        self._check_declared_sizes()
        order = self.read("byteorder").decode().strip() if self.prefix + "byteorder" in archive.namelist() else "little"
        if order not in ("little", "big"):
            raise ArchiveError(f"its byteorder record says {order[:20]!r}, expected 'little' or 'big'")
        self.swap = order != sys.byteorder
        self.storages: dict[str, _Storage] = {}
        self.classes: dict[str, _ClassInfo] = {}

    def _check_declared_sizes(self) -> None:
        """Every entry's declared size against the budgets, before anything is read (no zip bomb is inflated)."""
        data, record_limit, tensors = self.prefix + "data/", byte_limit("CSDN_MAX_RECORD_BYTES"), 0
        for info in self.zip.infolist():
            name = printable(info.filename, 80)
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(_MIN_INFLATE, 64 * info.compress_size):
                raise _OverLimit(
                    f"its entry {name} inflates {info.compress_size:,} compressed bytes to a declared "
                    f"{info.file_size:,} (more than 64 times; torch writes archives uncompressed)"
                )
            if info.filename.startswith(data):
                tensors += info.file_size
            elif info.file_size > record_limit:
                raise _OverLimit(over_limit(f"its record {name}", info.file_size, "CSDN_MAX_RECORD_BYTES"))
        if tensors > byte_limit("CSDN_MAX_TENSOR_BYTES"):
            raise _OverLimit(over_limit("its tensor records together", tensors, "CSDN_MAX_TENSOR_BYTES"))

    def read(self, record: str) -> bytes:
        try:
            info = self.zip.getinfo(self.prefix + record)
        except KeyError:
            raise ArchiveError(f"its record {printable(self.prefix + record, 80)} is missing") from None
        with self.zip.open(info) as file:  # decompression stops at the declared size, checked above
            data = file.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise ArchiveError(f"its record {printable(info.filename, 80)} does not hold the size its entry declares")
        return data

    def read_into_buffer(self, record: str, size: int) -> bytearray:
        """Record ``record`` (which must hold ``size`` bytes) read into one writable buffer (no extra copy)."""
        try:
            info = self.zip.getinfo(self.prefix + record)
        except KeyError:
            raise ArchiveError(f"its record {printable(self.prefix + record, 80)} is missing") from None
        if size < 0 or info.file_size != size:
            raise ArchiveError(f"storage {printable(record, 80)} has {info.file_size} bytes, expected {size}")
        raw = bytearray(size)
        with self.zip.open(info) as file:
            if file.readinto(raw) != size:  # type: ignore[attr-defined]  # a ZipExtFile; typeshed says IO[bytes]
                raise ArchiveError(f"storage {printable(record, 80)} is shorter than its zip entry says")
        return raw

    def storage(self, key: str, dtype: torch.dtype, numel: int) -> _Storage:
        if key not in self.storages:
            item = torch.empty((), dtype=dtype).element_size()
            raw = self.read_into_buffer(f"data/{key}", numel * item)
            flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            if self.swap and item > 1:  # reverse the bytes of every element (torch has no byteswap)
                flat = flat.view(-1, item).flip(-1).reshape(-1)
            self.storages[key] = _Storage(flat.view(dtype))
        stored = self.storages[key]
        if stored.flat.dtype != dtype or stored.flat.numel() != numel:
            raise ArchiveError(f"storage data/{printable(key, 80)} is referred to with two different dtypes or sizes")
        return stored

    def class_info(self, qualified: str) -> _ClassInfo:
        """``__parameters__``/``__buffers__``/base/``__setstate__`` of a class, read from its source as text."""
        if qualified not in self.classes:
            module, _, name = qualified.rpartition(".")
            source = self.read("code/" + module.replace(".", "/") + ".py").decode("utf-8", "replace")
            self.classes[qualified] = _class_info(qualified, name, source)
        return self.classes[qualified]


_MIN_INFLATE = 1 << 20  # a compressed entry may always inflate to 1 MiB (small text records compress well)
_CLASS = re.compile(r"^class (\w+)\((.*)\):\s*$")
_DECLARATION = re.compile(r"^\s+(__parameters__|__buffers__)\s*=\s*(\[.*\])\s*$")
_SETSTATE = re.compile(r"^\s+def __setstate__\(")


def _class_info(qualified: str, name: str, source: str) -> _ClassInfo:
    """Scan the lines of class ``name``'s block (the TorchScript printer writes each declaration on one line);
    only the declared name lists are evaluated, as literals."""
    lines = iter(source.splitlines())
    header = next((m for m in map(_CLASS.match, lines) if m and m.group(1) == name), None)
    if header is None:
        raise ArchiveError(f"the archive's code has no class {printable(qualified, 120)}")
    declared: dict[str, tuple[str, ...]] = {}
    setstate = False
    for line in lines:
        if line.strip() and not line[0].isspace():  # the end of the class block
            break
        setstate = setstate or bool(_SETSTATE.match(line))
        if match := _DECLARATION.match(line):
            try:
                value = ast.literal_eval(match.group(2))
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                value = None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ArchiveError(f"{printable(qualified, 120)} declares {match.group(1)} that is not a list of names")
            if match.group(1) in declared:
                raise ArchiveError(f"class {printable(qualified, 120)} declares its {match.group(1)} twice")
            declared[match.group(1)] = tuple(value)
    is_module = "Module" in (base.strip() for base in header.group(2).split(","))
    if is_module and len(declared) != 2:
        missing = " and ".join(n for n in ("__parameters__", "__buffers__") if n not in declared)
        raise ArchiveError(f"module class {printable(qualified, 120)} does not declare its {missing}")
    return _ClassInfo(is_module, declared.get("__parameters__", ()), declared.get("__buffers__", ()), setstate)


def _collect(obj: _ScriptObject, archive: _Archive, prefix: str, out: dict[str, torch.Tensor], depth: int) -> None:
    """Add ``obj``'s parameters, then buffers, then its submodules' entries (nn.Module.state_dict order)."""
    info = archive.class_info(obj.qualified_name)
    where = f"module {printable(prefix, 120) or '<root>'} ({printable(obj.qualified_name, 120)})"
    if not info.is_module:  # only the root can get here: submodules are recognised by their class
        raise ArchiveError(f"{where} is not a module class (its class does not derive from Module)")
    if info.has_setstate or not isinstance(obj.state, dict):
        raise ArchiveError(f"{where} restores itself with its own code")
    if depth > 200:
        raise ArchiveError("its module tree is nested more than 200 levels deep")
    absent = [n for n in (*info.parameters, *info.buffers) if n not in obj.state]
    if absent:
        raise ArchiveError(f"{where} declares {printable(absent, 120)} among its parameters/buffers but holds no such "
                           "attribute")  # fmt: skip
    for names in (info.parameters, info.buffers):
        for name in (n for n in obj.state if n in names):
            value = obj.state[name]
            if value is None:  # an absent optional parameter (e.g. bias=False): not in the state dict
                continue
            if not isinstance(value, torch.Tensor):
                raise ArchiveError(
                    f"{printable(prefix + name, 120)} is declared a parameter or buffer but holds a "
                    f"{printable(type(value).__name__, 80)}"
                )
            out[prefix + name] = value.detach()  # a fresh tensor object: no attributes set by the file
    for name, value in obj.state.items():
        if isinstance(value, _ScriptObject) and archive.class_info(value.qualified_name).is_module:
            _collect(value, archive, f"{prefix}{name}.", out, depth + 1)


def read_torchscript_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive on the CPU, read as data only (no code from the file runs).

    Args:
        path: A ``torch.jit.save``-d archive, e.g. one of OpenAI's CLIP ``.pt`` files.

    Returns:
        ``{name: tensor}`` equal to ``torch.jit.load(path, map_location="cpu").state_dict()`` (keys, order,
        dtypes, shapes and values).

    Raises:
        ArchiveReadError: If the archive holds anything the data-only reader cannot rebuild (an unknown global,
            a class restoring itself with its own ``__setstate__``, a missing or malformed record); the message
            names the file and the ``trust_code=True`` opt-in.
        ArchiveLimitError: An :class:`ArchiveReadError` for an archive declaring more bytes than a budget allows
            (``CSDN_MAX_TENSOR_BYTES``, ``CSDN_MAX_RECORD_BYTES``; the message says which to raise).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zipped:
            archive = _Archive(zipped)
            root = _Unpickler(archive.read("data.pkl"), archive.storage).load()
            if not isinstance(root, _ScriptObject):
                raise ArchiveError(
                    f"its data.pkl holds a {printable(type(root).__name__, 80)}, not a TorchScript module"
                )
            out: dict[str, torch.Tensor] = {}
            _collect(root, archive, "", out, 0)
    except _OverLimit as err:
        raise ArchiveLimitError(f"cannot read TorchScript archive {printable(path)}: {err}") from None
    except ArchiveError as err:
        reason = str(err)
    except Exception as err:  # malformed zip or pickle bytes: BadZipFile, UnpicklingError, EOFError, ...
        reason = first_line(err)
    else:
        return out
    raise ArchiveReadError(
        f"cannot read TorchScript archive {printable(path)} as data only: {reason}. If you trust this file, pass "
        "trust_code=True (it is then loaded with torch.jit.load, which runs code stored in the file)"
    )


def is_torchscript(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (a zip with ``constants.pkl`` or ``code/``), not a torch.save file."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = [n.split("/", 1)[-1] for n in archive.namelist()]
    return "constants.pkl" in names or any(n.startswith("code/") for n in names)
