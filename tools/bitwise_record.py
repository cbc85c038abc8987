"""pytest plugin: record every call of cnorm's public functions, bit for bit.

    CNORM_BITWISE_OUT=/tmp/run.pkl PYTHONPATH=tools \
        python -m pytest -p bitwise_record -p no:cacheprovider --hypothesis-seed=0 -m "not slow" tests

At plugin import (before conftest.py and the test modules import anything
from cnorm) the public functions ``batch_norm, instance_norm, group_norm,
layer_norm, rms_norm, moments, fold_batch_norm`` are replaced by recording
wrappers in the ``cnorm`` namespace and in every loaded ``cnorm.*`` module
that holds the same function object (cnorm._norms, cnorm._moments, cnorm.nn
if it imported them by name, ...).  One wrapper per original function, so
``cnorm.batch_norm is cnorm._norms.batch_norm`` stays true.  The modules
are scanned again before each test, for submodules imported lazily.

Per call (outermost only: a public function calling another is one record):

* key = (input digest, function name, ISA): blake2b over the arguments bound
  to the function's parameter names (positional and keyword spellings of a
  call give one key; arguments equal to the parameter's default are dropped,
  so a new parameter with a default doesn't change the key).  Arrays digest
  as type, dtype.str/name, shape, strides (in items) and the bytes of
  np.ascontiguousarray(a); scalars, None, strings by type and repr;
  tuples/lists/dicts recursively.  ``out=`` digests as its metadata and
  aliasing only: its previous contents are garbage (np.empty) and don't
  determine the result.
* after the call: the digest of the result (recursively) and of every array
  argument again (``out=``, running stats, in-place x are modified in
  place), the result's strides, which results are an argument object
  (``y is out``), and the result arrays themselves (original dtype) when
  they have at most 1e5 elements.  A raising call records the exception's
  type and message; the exception propagates unchanged.

The first occurrence of a key is kept; later calls only count.  A call is
marked "racy" when another recorded call ran at the same time in another
thread or set_isa/set_num_threads was called during it (the recorded ISA and
thread count may then not be the ones it ran with, e.g. in
tests/test_concurrency.py); a racy first record of a key is replaced by the
first non-racy call with that key, and the comparer reports racy pairs apart.  Calls made
while tracemalloc is tracing (tests/test_leaks.py measuring growth) are not
recorded: keeping records would be the growth those tests look for.
Hypothesis is derandomized (profile "bitwise": derandomize=True,
database=None) so that two runs draw the same examples.
"""
import functools
import hashlib
import inspect
import os
import pickle
import sys
import threading
import time
import tracemalloc

import numpy as np

NAMES = ("batch_norm", "instance_norm", "group_norm", "layer_norm", "rms_norm", "moments",
         "fold_batch_norm")
KEEP_MAX = 100_000          # keep result arrays up to this many elements
OUT_PARAMS = ("out",)       # parameters digested by metadata only

_lock = threading.RLock()
_local = threading.local()
_records = {}               # key -> record dict
_originals = {}             # id(original function) -> wrapper
_wrappers = set()           # ids of wrappers
_stats = {"calls": 0, "recorded": 0, "skipped_tracing": 0, "duplicates": 0, "unbound": 0}
_current_test = [None]
# concurrency/config races: a call is "racy" when another recorded call was
# in flight in another thread, or set_isa/set_num_threads ran, while it ran
_inflight = [0]
_seq = [0]
_config_version = [0]
CONFIG_NAMES = ("set_isa", "set_num_threads")
_config_wrapped = {}        # id(original) -> (original, wrapper)


# ------------------------------------------------------------------ digests

def _feed_array(h, a):
    h.update(b"A")
    h.update(type(a).__name__.encode())
    h.update(a.dtype.str.encode() + b"|" + a.dtype.name.encode())
    h.update(repr(a.shape).encode())
    h.update(repr(tuple(s // a.itemsize if a.itemsize else s for s in a.strides)).encode())
    c = np.ascontiguousarray(a)
    h.update(memoryview(c.reshape(-1).view(np.uint8)) if c.size else b"")


def _feed(h, v, depth=0):
    """Feed a value into hash h, type-tagged."""
    if depth > 20:
        h.update(b"<deep>" + repr(type(v)).encode())
        return
    if isinstance(v, np.ndarray):
        _feed_array(h, v)
    elif isinstance(v, (tuple, list)):
        h.update(b"T(" if isinstance(v, tuple) else b"L(")
        h.update(type(v).__name__.encode())
        for e in v:
            _feed(h, e, depth + 1)
            h.update(b",")
        h.update(b")")
    elif isinstance(v, dict):
        h.update(b"D(")
        for k in sorted(v, key=repr):
            h.update(repr(k).encode() + b":")
            _feed(h, v[k], depth + 1)
        h.update(b")")
    elif v is None or isinstance(v, (bool, int, float, complex, str, bytes, np.generic)):
        h.update(b"S" + type(v).__name__.encode() + b":" + repr(v).encode())
    else:
        arr = _as_array(v)
        if arr is not None:
            h.update(b"O" + type(v).__module__.encode() + b"." + type(v).__name__.encode())
            _feed_array(h, arr)
        else:
            h.update(b"R" + type(v).__name__.encode() + b":" + repr(v).encode())


def _as_array(v):
    """An array view of a tensor-like object (torch.Tensor, __array__), or None."""
    mod = type(v).__module__ or ""
    if mod.startswith("torch") and hasattr(v, "detach"):
        try:
            import torch
            t = v.detach().cpu().contiguous()
            raw = t.reshape(-1).view(torch.uint8).numpy().copy()
            h = np.frombuffer(raw.tobytes() + repr((str(t.dtype), tuple(t.shape))).encode(), np.uint8)
            return h
        except Exception:
            pass
    if hasattr(v, "__array__") or hasattr(v, "__array_interface__"):
        try:
            return np.asarray(v)
        except Exception:
            return None
    return None


def digest(v):
    h = hashlib.blake2b(digest_size=16)
    _feed(h, v)
    return h.hexdigest()


def _arrays_in(v, path="", depth=0):
    """(path, ndarray) for the arrays in a value (recursing into tuples/lists/dicts)."""
    if depth > 20:
        return
    if isinstance(v, np.ndarray):
        yield path, v
    elif isinstance(v, (tuple, list)):
        for i, e in enumerate(v):
            yield from _arrays_in(e, f"{path}[{i}]", depth + 1)
    elif isinstance(v, dict):
        for k, e in v.items():
            yield from _arrays_in(e, f"{path}[{k!r}]", depth + 1)


def _out_meta(out, others):
    """Digest for an out= argument: metadata and which argument it aliases."""
    if not isinstance(out, np.ndarray):
        return ("out", type(out).__name__, repr(out) if out is None or np.isscalar(out) else digest(out))
    alias = None
    for name, v in others.items():
        if isinstance(v, np.ndarray):
            if v is out:
                alias = (name, "is")
                break
            if np.shares_memory(v, out):
                alias = (name, "overlap", v.__array_interface__["data"][0] - out.__array_interface__["data"][0])
                break
    return ("out", out.dtype.str, out.dtype.name, out.shape,
            tuple(s // out.itemsize for s in out.strides), out.flags.writeable, alias)


def _eq_default(v, d):
    if d is inspect.Parameter.empty:
        return False
    if v is d:
        return True
    if isinstance(v, np.ndarray) or isinstance(d, np.ndarray):
        return False
    try:
        return type(v) is type(d) and bool(v == d) and repr(v) == repr(d)
    except Exception:
        return False


def _bind(fn_sig, args, kwargs):
    """Arguments by parameter name, defaults dropped; None if binding fails."""
    try:
        ba = fn_sig.bind(*args, **kwargs)
    except TypeError:
        return None
    named = {}
    for name, value in ba.arguments.items():
        p = fn_sig.parameters[name]
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            for k, v in value.items():
                named[k] = v
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            named["*" + name] = tuple(value)
        elif not _eq_default(value, p.default):
            named[name] = value
    return named


def _input_digest(fname, fn_sig, args, kwargs):
    named = _bind(fn_sig, args, kwargs)
    h = hashlib.blake2b(digest_size=16)
    h.update(fname.encode())
    if named is None:
        _stats["unbound"] += 1
        h.update(b"<unbound>")
        _feed(h, tuple(args))
        _feed(h, dict(kwargs))
        return h.hexdigest(), {"args": args, "kwargs": kwargs}
    for name in sorted(named):
        h.update(name.encode() + b"=")
        v = named[name]
        if name in OUT_PARAMS:
            _feed(h, _out_meta(v, {k: x for k, x in named.items() if k not in OUT_PARAMS}))
        else:
            _feed(h, v)
        h.update(b";")
    return h.hexdigest(), named


def _describe(v, depth=0):
    """Short, picklable description of an argument (for the comparer's table)."""
    if isinstance(v, np.ndarray):
        layout = "C" if v.flags.c_contiguous else ("F" if v.flags.f_contiguous else "strided")
        return f"{v.dtype.name}{list(v.shape)}{'' if layout == 'C' else ':' + layout}"
    if isinstance(v, (tuple, list)) and depth < 3 and len(v) <= 8:
        inner = ", ".join(_describe(e, depth + 1) for e in v)
        return f"({inner})" if isinstance(v, tuple) else f"[{inner}]"
    if v is None or isinstance(v, (bool, int, float, str, np.generic)):
        r = repr(v)
        return r if len(r) <= 40 else r[:37] + "..."
    return type(v).__name__


# ------------------------------------------------------------------ wrapping

def _isa():
    try:
        import cnorm
        return cnorm.get_isa()
    except Exception as e:  # noqa: BLE001
        return f"<{type(e).__name__}>"


def _threads():
    try:
        import cnorm
        return cnorm.get_num_threads()
    except Exception:  # noqa: BLE001
        return None


def _make_wrapper(fname, fn):
    try:
        fn_sig = inspect.signature(fn)
    except (TypeError, ValueError):
        fn_sig = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        depth = getattr(_local, "depth", 0)
        if depth or fn_sig is None:
            _local.depth = depth + 1
            try:
                return fn(*args, **kwargs)
            finally:
                _local.depth = depth
        if tracemalloc.is_tracing():
            _stats["skipped_tracing"] += 1
            return fn(*args, **kwargs)
        _local.depth = 1
        try:
            return _recorded_call(fname, fn, fn_sig, args, kwargs)
        finally:
            _local.depth = 0

    wrapper.__bitwise_original__ = fn
    return wrapper


def _recorded_call(fname, fn, fn_sig, args, kwargs):
    with _lock:
        _stats["calls"] += 1
        _inflight[0] += 1
        _seq[0] += 1
        start = (_inflight[0], _seq[0], _config_version[0])
    try:
        return _recorded_call2(fname, fn, fn_sig, args, kwargs, start)
    finally:
        with _lock:
            _inflight[0] -= 1


def _racy(start):
    with _lock:
        return start[0] > 1 or _inflight[0] > 1 or _seq[0] != start[1] or _config_version[0] != start[2]


def _recorded_call2(fname, fn, fn_sig, args, kwargs, start):
    isa = _isa()
    threads = _threads()
    try:
        in_digest, named = _input_digest(fname, fn_sig, args, kwargs)
        key = (in_digest, fname, isa)
        with _lock:
            # a racy first record is replaced by the first non-racy call
            new = key not in _records or bool(_records[key].get("racy"))
            if not new:
                rec = _records[key]
                rec["count"] += 1
        arg_arrays = [(p, a, digest(a)) for p, a in _arrays_in(named)] if new else []
    except Exception as e:  # noqa: BLE001  -- never let recording break a call
        sys.stderr.write(f"bitwise_record: digest of {fname} failed: {e!r}\n")
        return fn(*args, **kwargs)

    if not new:
        return fn(*args, **kwargs)
    t0 = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except BaseException as e:
        _store(key, {"fname": fname, "isa": isa, "threads": threads, "racy": _racy(start),
                     "args": {k: _describe(v) for k, v in named.items()},
                     "exc": type(e).__name__, "exc_msg": str(e)[:300], "count": 1,
                     "test": _current_test[0], "seconds": time.perf_counter() - t0})
        raise
    seconds = time.perf_counter() - t0
    racy = _racy(start) or _isa() != isa or _threads() != threads
    try:
        outs = {}
        kept = {}
        meta = {}
        for path, a in _arrays_in(result, "result"):
            outs[path] = digest(a)
            ident = [p for p, x, _ in arg_arrays if x is a]
            meta[path] = {"dtype": a.dtype.name, "shape": a.shape,
                          "strides": tuple(s // a.itemsize for s in a.strides) if a.itemsize else a.strides,
                          "is_arg": ident[0] if ident else None}
            if a.size <= KEEP_MAX:
                kept[path] = np.array(a, copy=True)
        if not outs:  # non-array results (fold with no arrays, python scalars)
            outs["result"] = digest(result)
        for path, a, before in arg_arrays:
            # every array argument again: out=, running stats and in-place x
            # change; the values are kept only for those that did change
            p = "arg:" + path
            outs[p] = after = digest(a)
            meta[p] = {"dtype": a.dtype.name, "shape": a.shape, "modified": after != before}
            if after != before and a.size <= KEEP_MAX:
                kept[p] = np.array(a, copy=True)
        _store(key, {"fname": fname, "isa": isa, "threads": threads, "racy": racy,
                     "args": {k: _describe(v) for k, v in named.items()},
                     "exc": None, "outs": outs, "meta": meta, "arrays": kept, "count": 1,
                     "result_type": type(result).__name__,
                     "test": _current_test[0], "seconds": seconds})
    except Exception as e:  # noqa: BLE001
        sys.stderr.write(f"bitwise_record: recording {fname} result failed: {e!r}\n")
    return result


def _store(key, rec):
    with _lock:
        if rec.get("racy"):
            _stats["racy"] = _stats.get("racy", 0) + 1
        old = _records.get(key)
        if old is not None and not (old.get("racy") and not rec.get("racy")):
            old["count"] += 1
            _stats["duplicates"] += 1
        else:
            if old is not None:
                rec["count"] += old["count"]
            rec["order"] = len(_records)
            _records[key] = rec
            _stats["recorded"] += 1


def install():
    """Wrap the public functions wherever cnorm's modules hold them."""
    import cnorm  # noqa: F401
    import cnorm.nn  # noqa: F401
    for name in NAMES:
        fn = getattr(cnorm, name, None)
        if fn is None or id(fn) in _wrappers:
            continue
        if id(fn) not in _originals:
            w = _make_wrapper(name, fn)
            _originals[id(fn)] = (fn, w)
            _wrappers.add(id(w))
    for name in CONFIG_NAMES:
        fn = getattr(cnorm, name, None)
        if fn is None or id(fn) in _wrappers or id(fn) in _config_wrapped:
            continue
        w = _make_config_wrapper(fn)
        _config_wrapped[id(fn)] = (fn, w)
        _wrappers.add(id(w))
    _patch_modules()


def _make_config_wrapper(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _lock:
            _config_version[0] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _config_version[0] += 1

    wrapper.__bitwise_original__ = fn
    return wrapper


def _patch_modules():
    for modname, mod in list(sys.modules.items()):
        if mod is None or not (modname == "cnorm" or modname.startswith("cnorm.")):
            continue
        d = getattr(mod, "__dict__", None)
        if not d:
            continue
        for name in NAMES:
            v = d.get(name)
            if v is not None and id(v) in _originals and _originals[id(v)][0] is v:
                setattr(mod, name, _originals[id(v)][1])
        for name in CONFIG_NAMES:
            v = d.get(name)
            if v is not None and id(v) in _config_wrapped and _config_wrapped[id(v)][0] is v:
                setattr(mod, name, _config_wrapped[id(v)][1])


def save(path):
    with _lock:
        data = {"version": 1, "records": dict(_records), "stats": dict(_stats),
                "argv": sys.argv, "python": sys.version, "numpy": np.__version__}
    try:
        import cnorm
        data["cnorm_file"] = cnorm.__file__
        data["cnorm_version"] = getattr(cnorm, "__version__", None)
        data["isas"] = cnorm.available_isas()
    except Exception:  # noqa: BLE001
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


# ------------------------------------------------------------------ hypothesis

def _hypothesis_profile():
    try:
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("bitwise", derandomize=True, database=None, print_blob=False)
    settings.load_profile("bitwise")


# ------------------------------------------------------------------ pytest hooks

_hypothesis_profile()   # before test modules build their settings(...) objects
install()               # before conftest.py / test modules do `from cnorm import ...`


def pytest_configure(config):
    _hypothesis_profile()
    install()
    if not os.environ.get("CNORM_BITWISE_OUT"):
        sys.stderr.write("bitwise_record: CNORM_BITWISE_OUT is not set; nothing will be saved\n")


def pytest_collection_finish(session):
    _patch_modules()


def pytest_runtest_setup(item):
    _current_test[0] = item.nodeid
    _patch_modules()


def pytest_runtest_teardown(item, nextitem):
    _current_test[0] = None


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("CNORM_BITWISE_OUT")
    if path:
        save(path)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    s = _stats
    terminalreporter.write_line(
        f"bitwise_record: {s['calls']} recorded calls, {len(_records)} distinct keys, "
        f"{s['skipped_tracing']} calls under tracemalloc not recorded, {s['unbound']} unbindable, "
        f"{s.get('racy', 0)} racy (concurrent calls or config changes); "
        f"-> {os.environ.get('CNORM_BITWISE_OUT') or '(not saved)'}")
