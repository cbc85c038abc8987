"""cnorm.dask against in-memory cnorm and float64 NumPy, on the synchronous
and threaded schedulers and a real dask.distributed LocalCluster (2 worker
processes on loopback); skipped without dask."""
import gc
import warnings
import weakref
import zlib

import numpy as np
import pytest

import cnorm

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
cd = pytest.importorskip("cnorm.dask")
PerformanceWarning = da.core.PerformanceWarning


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _data(shape, dtype=np.float32, loc=0.5, scale=2.0, *key):
    return _rng(shape, np.dtype(dtype).name, loc, *key).normal(loc, scale, shape).astype(dtype)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # port and dashboard chatter
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}")


# ---------------------------------------------------------------- moments

MOMENT_CASES = [
    # shape, chunks, axis
    ((16, 3, 20, 24), (5, 3, 20, 24), (0, 2, 3)),   # per channel over (0, 2, 3), batch chunks
    ((16, 3, 20, 24), (4, 2, 7, 24), (0, 2, 3)),    # channel and spatial chunks too (irregular)
    ((16, 3, 20, 24), (3, 1, 9, 10), None),         # all axes
    ((16, 3, 20, 24), (16, 3, 5, 5), (2, 3)),       # per (sample, channel)
    ((40, 33), (7, 10), 0),
    ((40, 33), (7, 10), -1),
    ((40, 33), (1, 33), (0, 1)),                    # one-row chunks
    ((1000,), (97,), None),
    ((6, 5, 4), (2, 5, 4), (0, 2)),
]


@pytest.mark.parametrize("shape,chunks,axis", MOMENT_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keepdims", [False, True])
def test_moments_values(shape, chunks, axis, dtype, keepdims):
    x = _data(shape, dtype, 3.0)
    mean, var = cd.moments(da.from_array(x, chunks=chunks), axis, keepdims=keepdims)
    assert isinstance(mean, da.Array) and isinstance(var, da.Array)
    m, v = dask.compute(mean, var, scheduler="sync")
    em, ev = cnorm.moments(x, axis, keepdims=keepdims)
    assert m.shape == np.shape(em) and v.shape == np.shape(ev)
    assert m.dtype == np.dtype(dtype) and v.dtype == np.dtype(dtype)
    x64 = x.astype(np.float64)
    rm, rv = x64.mean(axis, keepdims=keepdims), x64.var(axis, keepdims=keepdims)
    tol = 2e-7 if dtype == np.float32 else 1e-13  # float32: the result's own rounding
    np.testing.assert_allclose(m, rm, rtol=tol, atol=0)
    np.testing.assert_allclose(v, rv, rtol=tol * 4, atol=0)


@pytest.mark.parametrize("split_every", [None, 2, 3, {0: 2, 2: 4}])
def test_moments_tree_shapes(split_every):
    """Deeper trees (combine steps) give the same values."""
    x = _data((30, 4, 16, 16), np.float64, 10.0)
    a = da.from_array(x, chunks=(2, 4, 4, 16))
    m, v = dask.compute(*cd.moments(a, (0, 2, 3), split_every=split_every), scheduler="sync")
    np.testing.assert_allclose(m, x.mean((0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(v, x.var((0, 2, 3)), rtol=1e-13)


@pytest.mark.parametrize("ddof", [0, 1, 2.5])
def test_moments_ddof(ddof):
    x = _data((12, 5, 9), np.float64)
    m, v = dask.compute(*cd.moments(da.from_array(x, chunks=(5, 2, 4)), (0, 2), ddof=ddof))
    np.testing.assert_allclose(v, x.var((0, 2), ddof=ddof), rtol=1e-13)


def test_moments_ddof_too_large_warns_as_cnorm():
    x = _data((3, 4), np.float64)
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        _, v = cd.moments(da.from_array(x, chunks=(1, 4)), 0, ddof=3)
    with np.errstate(all="raise"):
        assert np.all(np.isinf(v.compute()))


@pytest.mark.parametrize("dtype,res", [(np.float16, np.float16), (np.int32, np.float64),
                                       (np.bool_, np.float64), (np.uint8, np.float64)])
def test_moments_dtypes(dtype, res):
    x = (_data((20, 3, 8), np.float64) * 10).astype(dtype)
    m, v = dask.compute(*cd.moments(da.from_array(x, chunks=(6, 3, 8)), (0, 2)))
    assert m.dtype == res and v.dtype == res
    em, ev = cnorm.moments(x, (0, 2))
    np.testing.assert_allclose(m, em, rtol=1e-3 if dtype == np.float16 else 1e-13)
    np.testing.assert_allclose(v, ev, rtol=2e-3 if dtype == np.float16 else 1e-12)


def test_moments_accuracy_offset_data_beats_dask():
    """Offset data (mean/std = 1e4), float32: cnorm's relative error at most
    dask's own mean/var's (the issue's accuracy bar)."""
    x = _data((32, 3, 64, 64), np.float32, 1e4, 1.0)
    a = da.from_array(x, chunks=(4, 3, 64, 64))
    x64 = x.astype(np.float64)
    rm, rv = x64.mean((0, 2, 3)), x64.var((0, 2, 3))
    m, v = dask.compute(*cd.moments(a, (0, 2, 3)))
    dm, dv = dask.compute(a.mean((0, 2, 3)), a.var((0, 2, 3)))
    err_v, err_dv = np.max(np.abs(v - rv) / rv), np.max(np.abs(dv - rv) / rv)
    err_m, err_dm = np.max(np.abs(m - rm) / rm), np.max(np.abs(dm - rm) / rm)
    assert err_v <= max(err_dv, 1e-7) and err_v < 1e-6, (err_v, err_dv)
    assert err_m <= max(err_dm, 6e-8), (err_m, err_dm)


def test_moments_deterministic_across_schedulers(client):
    """For a fixed chunking and split_every: bitwise the same result on the
    synchronous scheduler, threads (1 and 2 workers, any cnorm thread
    count) and a 2-process LocalCluster."""
    # float64: a float32 result's rounding would hide a change of merge order
    x = _data((48, 3, 40, 40), np.float64, 1e3, 1.0)
    a = da.from_array(x, chunks=(5, 2, 40, 17))
    graph = cd.moments(a, (0, 2, 3), split_every=3)
    ref = dask.compute(*graph, scheduler="sync")
    results = {"threads-1": dask.compute(*graph, scheduler="threads", num_workers=1),
               "threads-2": dask.compute(*graph, scheduler="threads", num_workers=2),
               "distributed": client.compute(list(graph), sync=True)}
    n = cnorm.get_num_threads()
    try:
        cnorm.set_num_threads(1)
        results["sync, 1 cnorm thread"] = dask.compute(*graph, scheduler="sync")
    finally:
        cnorm.set_num_threads(n)
    for name, got in results.items():
        for g, r in zip(got, ref):
            assert np.array_equal(_bits(g), _bits(r)), name


def test_moments_distributed_equals_numpy(client):
    x = _data((64, 3, 32, 32), np.float64, 50.0)
    a = da.from_array(x, chunks=(8, 3, 32, 32))
    m, v = client.compute(list(cd.moments(a, (0, 2, 3))), sync=True)
    np.testing.assert_allclose(m, x.mean((0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(v, x.var((0, 2, 3)), rtol=1e-13)


def test_moments_accepts_numpy_and_empty_kept():
    x = _data((0, 5), np.float64)
    m, v = dask.compute(*cd.moments(x, 1))
    assert m.shape == (0,) and v.shape == (0,)


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: cd.moments(a.astype(np.complex64)), TypeError, "^a: expected a real"),
    (lambda a: cd.moments(a, 5), ValueError, "axis"),
    (lambda a: cd.moments(a, (0, 0)), ValueError, "repeated"),
    (lambda a: cd.moments(a, ddof=float("nan")), ValueError, "ddof"),
    (lambda a: cd.moments(a[:0], 0), ValueError, "size-0"),
    (lambda a: cd.moments(a, keepdims="yes"), TypeError, "keepdims"),
    (lambda a: cd.moments(a[a[:, 0] > 0]), ValueError, "chunk sizes must be known"),
])
def test_moments_errors(call, exc, match):
    a = da.from_array(_data((10, 4), np.float64), chunks=(3, 4))
    with pytest.raises(exc, match=match):
        call(a)


# ---------------------------------------------------------------- norms per block

def _eq(y, expected):
    """Blocks run the in-memory kernel on the same rows/groups: bitwise."""
    assert y.dtype == expected.dtype and y.shape == expected.shape
    assert np.array_equal(_bits(y), _bits(expected))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_layer_and_rms_norm_per_block(dtype):
    x = _data((10, 7, 24), dtype)
    w, b = _data((24,), dtype, 1.0, 0.3, "w"), _data((24,), dtype, 0.0, 1.0, "b")
    a = da.from_array(x, chunks=(3, 2, 24))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # normalized axis in one chunk: no rechunk
        y = cd.layer_norm(a, 24, w, b, 1e-3)
        r = cd.rms_norm(a, (24,), w)
    _eq(y.compute(), cnorm.layer_norm(x, 24, w, b, 1e-3))
    _eq(r.compute(), cnorm.rms_norm(x, (24,), w))


def test_layer_norm_rechunks_with_warning():
    x = _data((10, 6, 24), np.float64)
    a = da.from_array(x, chunks=(5, 3, 8))
    with pytest.warns(PerformanceWarning, match=r"layer_norm: the normalized axes \(1, 2\).*rechunking.*a.rechunk"):
        y = cd.layer_norm(a, (6, 24))
    _eq(y.compute(), cnorm.layer_norm(x, (6, 24)))


@pytest.mark.parametrize("axis", [1, -1])
def test_instance_and_group_norm_per_block(axis):
    shape = (6, 8, 5, 7) if axis == 1 else (6, 5, 7, 8)
    x = _data(shape, np.float32, 2.0)
    w, b = _data((8,), np.float32, 1.0, 0.2, "w"), _data((8,), np.float32, 0.0, 1.0, "b")
    chunks = (2, 4, 5, 7) if axis == 1 else (2, 5, 7, 4)  # channel chunks of whole groups
    a = da.from_array(x, chunks=chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yi = cd.instance_norm(a, w, b, 1e-4, axis=axis)
        yg = cd.group_norm(a, 4, w, b, axis=axis)
    ei, eg = cnorm.instance_norm(x, None, None, w, b, eps=1e-4, axis=axis), cnorm.group_norm(x, 4, w, b, axis=axis)
    if axis == 1:
        _eq(yi.compute(), ei)
        _eq(yg.compute(), eg)
    else:  # channels-last statistics run in column tiles that depend on the block's C: rounding only
        np.testing.assert_allclose(yi.compute(), ei, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(yg.compute(), eg, rtol=2e-6, atol=2e-6)


def test_group_norm_rechunks_split_groups_and_spatial():
    x = _data((4, 6, 9, 4), np.float64)
    a = da.from_array(x, chunks=(2, 3, 9, 4))     # channel chunks of 3 split groups of 2
    with pytest.warns(PerformanceWarning, match="split a group"):
        y = cd.group_norm(a, 3)
    _eq(y.compute(), cnorm.group_norm(x, 3))
    b = da.from_array(x, chunks=(2, 6, 4, 4))     # spatial chunks
    with pytest.warns(PerformanceWarning, match=r"group_norm: the normalized axes \(2,\)"):
        y = cd.group_norm(b, 3)
    _eq(y.compute(), cnorm.group_norm(x, 3))
    with pytest.warns(PerformanceWarning, match=r"instance_norm: the normalized axes \(2,\)"):
        y = cd.instance_norm(b)
    _eq(y.compute(), cnorm.instance_norm(x))


@pytest.mark.parametrize("axis", [1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_training_updates_running_stats(axis, dtype, client):
    shape = (20, 6, 9, 8) if axis == 1 else (20, 9, 8, 6)
    x = _data(shape, dtype, 100.0, 3.0)
    w, b = _data((6,), np.float64, 1.0, 0.2, "w"), _data((6,), np.float64, 0.0, 1.0, "b")
    chunks = (6, 3, 9, 8) if axis == 1 else (6, 9, 4, 2)
    a = da.from_array(x, chunks=chunks)
    rm, rv = np.full(6, 0.5), np.full(6, 2.0)
    em, ev = rm.copy(), rv.copy()
    y = cd.batch_norm(a, rm, rv, w, b, True, 0.3, 1e-4, axis=axis)
    expected = cnorm.batch_norm(x, em, ev, w, b, True, 0.3, 1e-4, axis=axis)
    # the running stats are updated at the call, before any compute
    np.testing.assert_allclose(rm, em, rtol=1e-13)
    np.testing.assert_allclose(rv, ev, rtol=1e-12)
    # against float64 NumPy, and the in-memory kernel (other chunks: rounding only)
    red = tuple(i for i in range(4) if i != (axis % 4))
    x64, shp = x.astype(np.float64), [1] * 4
    shp[axis] = 6
    ref = (x64 - x64.mean(red).reshape(shp)) / np.sqrt(x64.var(red).reshape(shp) + 1e-4) * w.reshape(shp) + b.reshape(shp)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    got = y.compute()
    np.testing.assert_allclose(got, ref, **tol)
    np.testing.assert_allclose(got, expected, **tol)
    np.testing.assert_array_equal(client.compute(y, sync=True), got)


def test_batch_norm_eval_and_no_running_stats():
    x = _data((8, 4, 5, 5), np.float32)
    a = da.from_array(x, chunks=(3, 2, 5, 5))
    rm, rv = _data((4,), np.float64, 0.0, 1.0, "rm"), np.abs(_data((4,), np.float64, 1.0, 1.0, "rv"))
    _eq(cd.batch_norm(a, rm, rv).compute(), cnorm.batch_norm(x, rm, rv))
    before = rm.copy()
    cd.batch_norm(a, rm, rv, training=False)
    np.testing.assert_array_equal(rm, before)  # eval updates nothing
    np.testing.assert_allclose(cd.batch_norm(a, training=True).compute(), cnorm.batch_norm(x, training=True),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call,exc,match", [
    (lambda a: cd.layer_norm(a, 4, weight=np.ones(3)), ValueError, r"^weight: expected shape \(4,\)"),
    (lambda a: cd.layer_norm(a, 5), ValueError, "normalized_shape"),
    (lambda a: cd.rms_norm(a, 4, eps=-1.0), ValueError, "^eps"),
    (lambda a: cd.group_norm(a, 3), ValueError, "num_groups"),
    (lambda a: cd.instance_norm(a, bias=np.ones(2)), ValueError, "^bias"),
    (lambda a: cd.batch_norm(a), ValueError, "^running_mean"),  # eval without running stats
    (lambda a: cd.batch_norm(a, np.zeros(4), np.ones(4), training=True, momentum=2.0), ValueError, "momentum"),
    (lambda a: cd.batch_norm(a, np.zeros(4), np.ones(4).astype(int), training=True), TypeError, "running_var"),
    (lambda a: cd.batch_norm(a[:1, :, :1, :1], training=True), ValueError, "^a: expected more than 1 value"),
    (lambda a: cd.instance_norm(a.astype(np.complex128)), TypeError, "^a: expected a real"),
])
def test_norm_errors_at_call(call, exc, match):
    """cnorm's own rules, raised when the graph is built, naming the argument."""
    a = da.from_array(_data((3, 4, 2, 4), np.float64), chunks=(1, 2, 2, 4))
    with pytest.raises(exc, match=match):
        call(a)


# ---------------------------------------------------------------- dataset_statistics

@pytest.mark.parametrize("axis", [1, -1])
def test_dataset_statistics_stream_and_dask(axis):
    shape = (37, 3, 12, 10) if axis == 1 else (37, 12, 10, 3)
    x = _data(shape, np.float32, 1e4, 1.0)
    red = tuple(i for i in range(4) if i != axis % 4)
    x64 = x.astype(np.float64)
    rm, rv = x64.mean(red), x64.var(red)
    sizes = [5, 1, 8, 3, 7, 2, 6, 5]  # uneven batches, 8 of them: a full binary counter
    bounds = np.cumsum([0] + sizes)
    m, v, n = cd.dataset_statistics((x[i:j] for i, j in zip(bounds[:-1], bounds[1:])), axis=axis)
    assert n == x.size // 3 and isinstance(n, int)
    assert m.dtype == np.float64 and m.shape == (3,)
    # the float32 kernel's own pass: at most a fraction of float32's ulp
    np.testing.assert_allclose(m, rm, rtol=1e-12)
    np.testing.assert_allclose(v, rv, rtol=3e-8)
    dm, dv, dn = cd.dataset_statistics(da.from_array(x, chunks=(4,) + shape[1:]), axis=axis)
    assert dn == n
    np.testing.assert_allclose(dm, rm, rtol=1e-12)
    np.testing.assert_allclose(dv, rv, rtol=3e-8)


def test_dataset_statistics_streams_one_batch_at_a_time():
    """A batch is released before the next is requested (never held together)."""
    alive = []

    def batches():
        for i in range(6):
            assert all(r() is None for r in alive), f"batch {len(alive) - 1} still alive at batch {i}"
            b = _data((4, 2, 3), np.float64, 0.0, 1.0, i)
            alive.append(weakref.ref(b))
            yield b
            del b
            gc.collect()

    m, v, n = cd.dataset_statistics(batches())
    full = np.concatenate([_data((4, 2, 3), np.float64, 0.0, 1.0, i) for i in range(6)])
    assert n == 72
    np.testing.assert_allclose(m, full.mean((0, 2)), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(v, full.var((0, 2)), rtol=1e-13)


def test_dataset_statistics_sets_batchnorm_running_stats():
    """The README's recipe: running_var is the unbiased var, as torch stores it."""
    x = _data((10, 3, 4, 4), np.float64, 2.0)
    m, v, n = cd.dataset_statistics([x[:4], x[4:]])
    bn = cnorm.nn.BatchNorm2d(3)
    bn.running_mean[...] = m
    bn.running_var[...] = v * n / (n - 1)
    np.testing.assert_allclose(bn.running_var, x.var((0, 2, 3), ddof=1), rtol=1e-7)  # float32 buffers
    np.testing.assert_allclose(v * n / (n - 1), x.var((0, 2, 3), ddof=1), rtol=1e-13)


@pytest.mark.parametrize("batches,exc,match", [
    ([], ValueError, "at least one batch"),
    ([np.ones((2, 3)), np.ones((2, 4))], ValueError, r"batches\[1\]: expected 3 channels"),
    ([np.ones((2, 3)), np.ones((2, 3), complex)], TypeError, r"batches\[1\]"),
    ([np.float64(1.0)], ValueError, r"batches\[0\]: expected an array with a channel axis"),
    (np.ones((4, 3)), TypeError, "one numpy.ndarray"),
    ([np.ones((0, 3))], ValueError, "every batch is empty"),
])
def test_dataset_statistics_errors(batches, exc, match):
    with pytest.raises(exc, match=match):
        cd.dataset_statistics(batches)
