"""A compiled kernel's call as a C function of one pointer, for OpenBLAS's threads to run
without Python (_threads.by_rows).

A block of rows run as a Python callback on an OpenBLAS thread takes the GIL at its start and
its end, so the blocks' starts queue behind each other: 100-270 us a call beyond the longer
block, 3-8% of forward + BPTT at (T, B) = (100, 32) and 1.4-3% at (200, 64) (AMD EPYC Zen 3,
2 cores). From C, a backward window's call at (100, 32, 32, 128) took ~70 us less (this
module's Python part ~6 us of it); forward + BPTT 2-13% faster at B = 8-32 and level from
B = 64, with the same bits; beside another Python thread that keeps the GIL, 3.2x faster
(LSTM (50, 32, 16, 64): 24.7 ms against 78.7 as callbacks, 28 in one loop).

numba compiles, beside every kernel's Python entry, a C entry (its "cfunc wrapper") taking the
kernel's arguments by value: an array as numba's struct (meminfo, parent, nitems, itemsize,
data, shape, strides), an integer or a flag as such. For one signature, ``entry`` builds with
llvmlite (10-35 ms; then cached on disk beside numba's cache of the kernel, ``*.nbt``, which a
new process loads in ~1 ms; kernels of one signature share it) a small C function
``f(int64_t *words)`` that calls that C entry with the arguments ``words`` describe: the C
entry's address, then per argument a word: an array's object address (f reads its data,
dimensions and strides from NumPy's ndarray struct, whose offsets _ndarray_fields checks once),
an integer, a flag, a function pointer; then b0 and b1. The arrays go with no meminfo and no
parent: numba's reference counting skips null pointers, and the kernels never hand an array
back to Python; the caller keeps them alive. No Python and no GIL run in a block, and the call
has the LLVM types numba gave the C entry, so no calling convention is assumed. Where any of it
is missing (numba's jit off, a kernel not compiled yet for these types, an argument of another
kind, another numba or NumPy layout), ``entry`` returns None and the caller runs the blocks as
Python callbacks. An exception inside a kernel (the time loops raise none) would be printed by
numba's C entry, not raised in the caller.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import inspect
import itertools
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from ._jit import internals

_ARRAY, _INT, _NONE, _POINTER = range(4)
_entries: dict[Any, Any] = {}  # (kernel, argument fingerprints) -> (function, C entry, kinds) or None
_pointers: dict[int, tuple[Any, int]] = {}  # id -> (ctypes function pointer, its address)
_functions: dict[str, int] = {}  # a trampoline's key (its IR, the codegen) -> its address
_libraries: list[Any] = []  # the trampolines' code lives as long as its library object
CACHE_SUFFIX = ".nbt"


def entry(kernel: Any, args: tuple) -> tuple[int, list[int]] | None:
    """(address of f, words) such that f on ``words + [b0, b1]`` runs ``kernel(*args, b0, b1)``
    (b0, b1 the last two arguments, integers); None where that is not available."""
    overloads = getattr(kernel, "overloads", None)
    if overloads is None:  # a plain Python function (NUMBA_DISABLE_JIT=1)
        return None
    fingerprint = internals().fingerprint
    try:
        key = (kernel, *(fingerprint(a) for a in args))
    except Exception:
        return None
    found = _entries.get(key, False)
    if found is False:
        cres = _compiled(kernel, args)
        if cres is None:
            return None  # not compiled yet: try again once the Python call has compiled it
        found = _entries[key] = _build(cres, _cache_dir(kernel))
    if found is None:
        return None
    function, c_entry, kinds = found
    words = [c_entry]
    for kind, a in zip(kinds, args, strict=True):
        if kind == _ARRAY:
            words.append(id(a))  # f reads data, shape and strides from the ndarray itself
        elif kind == _INT:
            words.append(int(a))
        elif kind == _NONE:
            words.append(0)
        else:
            known = _pointers.get(id(a))
            if known is None or known[0] is not a:
                known = _pointers[id(a)] = (a, ctypes.cast(a, ctypes.c_void_p).value or 0)
            words.append(known[1])
    return function, words


def _compiled(kernel: Any, args: tuple) -> Any:
    """numba's compiled result for kernel(*args, b0, b1), or None."""
    try:
        i64 = internals().types.int64
        sig = (*(kernel.typeof_pyval(a) for a in args), i64, i64)
        return kernel.overloads.get(sig)
    except Exception:
        return None


def _cache_dir(kernel: Any) -> Path | None:
    """Where numba caches the kernel (a writable directory it chose), for its trampolines too;
    None without numba's cache."""
    try:
        return Path(kernel._cache._cache_path)
    except Exception:
        return None


def _build(cres: Any, cache_dir: Path | None = None) -> tuple[int, int, list[int]] | None:
    try:
        return _trampoline(cres, cache_dir)
    except Exception:  # anything numba or llvmlite do not offer as expected: Python blocks
        return None


def c_entry_type(cres: Any) -> Any:
    """The LLVM type of numba's C entry of a compiled kernel, as numba builds it (the value type
    of every argument, of the result)."""
    ir = internals().ir
    ctx, fndesc = cres.target_context, cres.fndesc
    return ir.FunctionType(
        ctx.get_value_type(fndesc.restype), [ctx.get_value_type(t) for t in fndesc.argtypes]
    )


def _trampoline(cres: Any, cache_dir: Path | None = None) -> tuple[int, int, list[int]] | None:
    """(f's address, the C entry's address, the argument kinds) for a compiled kernel.

    f depends only on the C entry's argument types (the entry's address is its first word), so
    kernels of one signature share it, and its machine code is cached on disk beside numba's
    cache of the kernels (``*.nbt``), keyed by all that f's IR is made from (_emit's source, the
    argument types, the ndarray layout, numba's codegen: triple, CPU name and features; the
    versions): a new process loads it in ~1 ms instead of building it (10-35 ms)."""
    nb = internals()
    types = nb.types
    fndesc = cres.fndesc
    argtys = list(fndesc.argtypes)
    c_entry = cres.library.get_pointer_to_function(fndesc.llvm_cfunc_wrapper_name)
    layout = _ndarray_fields()
    if not c_entry or argtys[-2:] != [types.int64, types.int64] or layout is None:
        return None
    kinds = _kinds(cres)
    if kinds is None:
        return None
    codegen = cres.target_context.codegen()
    source = _emit_source()
    made_of = (
        source,
        [str(t) for t in argtys],
        str(c_entry_type(cres)),
        layout,
        codegen.magic_tuple(),
        nb.versions,
    )
    name = "minirnn_block_" + hashlib.sha256(repr(made_of).encode()).hexdigest()[:24]
    with nb.compiler_lock:
        function = _functions.get(name)
        if function is None:
            disk = cache_dir if source else None
            function = _functions[name] = _load(codegen, name, disk) or _compile(
                codegen, name, cres, layout, kinds, disk
            )
    return function, c_entry, kinds[:-2]


@functools.cache
def _emit_source() -> str:
    """_emit's source, which the trampolines' cache key holds ("" where Python has no source:
    then nothing is cached on disk)."""
    try:
        return inspect.getsource(_emit)
    except (OSError, TypeError):
        return ""


def _kinds(cres: Any) -> list[int] | None:
    """How f passes each argument of the kernel's C entry (b0 and b1 included), or None where
    one is of a kind it cannot pass."""
    nb = internals()
    ir, types = nb.ir, nb.types
    kinds = []
    for t, llt in zip(cres.fndesc.argtypes, c_entry_type(cres).args, strict=True):
        if isinstance(t, types.Array):
            kinds.append(_ARRAY)
        elif isinstance(t, types.Integer | types.Boolean) and isinstance(llt, ir.IntType):
            kinds.append(_INT)
        elif isinstance(t, types.NoneType):
            kinds.append(_NONE)
        elif isinstance(t, types.ExternalFunctionPointer) and isinstance(llt, ir.PointerType):
            kinds.append(_POINTER)
        else:
            return None
    return kinds


def _load(codegen: Any, name: str, cache_dir: Path | None) -> int | None:
    """f from its cache file, or None (none there, unreadable, or another build's)."""
    if cache_dir is None:
        return None
    try:
        state = pickle.loads((cache_dir / (name + CACHE_SUFFIX)).read_bytes())
        if state[0] != name:
            return None
        lib = codegen.unserialize_library(state)
        function = lib.get_pointer_to_function(name)
    except Exception:
        return None
    if not function:
        return None
    _libraries.append(lib)
    return int(function)


def _compile(
    codegen: Any, name: str, cres: Any, layout: tuple[int, int, int], kinds: list[int], cache_dir: Path | None
) -> int:
    lib = codegen.create_library(name)
    module = lib.create_ir_module(name)
    _emit(module, name, cres, layout, kinds)
    lib.add_ir_module(module)
    lib.enable_object_caching()
    lib.finalize()
    function = lib.get_pointer_to_function(name)
    _libraries.append(lib)
    if cache_dir is not None:
        _save(cache_dir / (name + CACHE_SUFFIX), pickle.dumps(lib.serialize_using_object_code()))
    return int(function)


def _save(path: Path, data: bytes) -> None:
    """Write the file whole, then rename it: a process reading it never sees half a file. On
    any failure (a read-only directory, a full disk) nothing is cached: the next process builds
    the trampoline again."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _emit(module: Any, name: str, cres: Any, layout: tuple[int, int, int], kinds: list[int]) -> None:
    """Write f into ``module`` as ``name``: per argument (of the ``kinds`` _kinds gave) the
    value numba's C entry takes, built from the words (an array's from its fields at the
    ``layout`` offsets), then the call."""
    nb = internals()
    ir, cgutils = nb.ir, nb.cgutils
    ctx, argtys = cres.target_context, list(cres.fndesc.argtypes)
    callee = c_entry_type(cres)
    i64 = ir.IntType(64)
    bytes_pp, i64_pp = ir.IntType(8).as_pointer().as_pointer(), i64.as_pointer().as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64.as_pointer()]), name=name)
    b = ir.IRBuilder(fn.append_basic_block())
    words = fn.args[0]
    at = itertools.count(1)

    def word() -> Any:
        return b.load(b.gep(words, [ir.Constant(i64, next(at))]))

    values = []
    for t, llt, kind in zip(argtys, callee.args, kinds, strict=True):
        if kind == _ARRAY:
            obj = word()  # the ndarray's address: its data, dimensions and strides fields
            data, dims, strides = (
                b.load(b.inttoptr(b.add(obj, ir.Constant(i64, o)), p))
                for o, p in zip(layout, (bytes_pp, i64_pp, i64_pp), strict=True)
            )
            shape = [b.load(b.gep(dims, [ir.Constant(i64, d)])) for d in range(t.ndim)]
            steps = [b.load(b.gep(strides, [ir.Constant(i64, d)])) for d in range(t.ndim)]
            model = ctx.data_model_manager[t]
            fields = {
                "nitems": functools.reduce(b.mul, shape, ir.Constant(i64, 1)),
                "itemsize": ir.Constant(i64, ctx.get_abi_sizeof(ctx.get_data_type(t.dtype))),
                "data": b.bitcast(data, llt.elements[model.get_field_position("data")]),
            }
            v = cgutils.get_null_value(llt)  # meminfo and parent stay null
            for field, value in fields.items():
                v = b.insert_value(v, value, model.get_field_position(field))
            for field, items in (("shape", shape), ("strides", steps)):
                for d, value in enumerate(items):
                    v = b.insert_value(v, value, [model.get_field_position(field), d])
        elif kind == _INT:
            v = word()
            v = b.trunc(v, llt) if llt.width < 64 else v
        elif kind == _NONE:
            word()
            v = cgutils.get_null_value(llt)
        else:
            v = b.inttoptr(word(), llt)
        values.append(v)
    b.call(b.inttoptr(b.load(words), callee.as_pointer()), values)
    b.ret_void()


@functools.cache
def _ndarray_fields() -> tuple[int, int, int] | None:
    """Byte offsets of an ndarray's data, dimensions and strides pointers in its object (NumPy's
    PyArrayObject_fields after the object header), checked on a strided array; None if they
    are not where NumPy's C API has them (another Python or NumPy build)."""
    import numpy as np

    head = object.__basicsize__  # the object header: reference count and type
    offsets = (head, head + 16, head + 24)
    a = np.empty((3, 8))[1:, ::3]
    base = id(a)
    data, dims, strides = (ctypes.c_void_p.from_address(base + o).value for o in offsets)
    if data != a.ctypes.data or ctypes.c_int.from_address(base + head + 8).value != a.ndim:
        return None  # checked before the dimensions and strides pointers are followed
    if dims is None or strides is None:
        return None
    read = [ctypes.c_int64.from_address(p + 8 * d).value for p in (dims, strides) for d in range(a.ndim)]
    if read != [*a.shape, *a.strides]:
        return None
    return offsets
