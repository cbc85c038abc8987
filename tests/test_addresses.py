"""Results do not depend on where the arrays are (README, Guarantees:
determinism): outputs of 16 MiB and more are written with streaming stores
after an aligning head, and the head must compute its elements exactly as
the aligned middle does, for every activation, dtype, variant and ISA."""
import numpy as np
import pytest

import cnorm

ACTS = [None, "relu", "silu", "gelu"]
MIB16 = 16 << 20


def _cases(dt):
    """(name, call(x, out, activation), shape) with outputs just over 16 MiB:
    the row apply with per-element parameters (layer norm), with per-row
    ones (group norm) and the flat channels-last apply (batch norm NHWC)."""
    item = np.dtype(dt).itemsize
    rows = MIB16 // (item * 4099) + 2
    c = 3
    spatial = MIB16 // (item * 8 * c) + 5
    return [
        ("layer_norm", lambda x, out, a: cnorm.layer_norm(x, x.shape[-1], out=out, activation=a), (rows, 4099)),
        ("group_norm_nchw", lambda x, out, a: cnorm.group_norm(x, 1, out=out, activation=a), (8, c, spatial)),
        ("batch_norm_nhwc", lambda x, out, a: cnorm.batch_norm(x, training=True, axis=-1, out=out, activation=a),
         (8, spatial, c)),
    ]


def _offset_outs(shape, dt, offsets):
    """out arrays of `shape` starting `k` elements into a buffer."""
    n = int(np.prod(shape))
    buf = np.empty(n + 64, dt)
    return [buf[k:k + n].reshape(shape) for k in offsets]


@pytest.mark.parametrize("isa", cnorm.available_isas())
@pytest.mark.parametrize("dt", [np.float32, np.float64])  # half types never stream
def test_result_independent_of_out_address(isa, dt, restore_config):
    cnorm.set_isa(isa)
    rng = np.random.default_rng(3)
    offsets = list(range(64 // np.dtype(dt).itemsize))  # every phase of a cache line
    for name, call, shape in _cases(dt):
        x = (rng.standard_normal(shape) * 3).astype(dt)
        for act in ACTS:
            ref = None
            for k, out in zip(offsets, _offset_outs(shape, dt, offsets)):
                y = call(x, out, act)
                assert y is out
                if ref is None:
                    ref = y.copy()
                    continue
                bad = np.flatnonzero((y != ref).reshape(-1) & ~(np.isnan(y) & np.isnan(ref)).reshape(-1))
                assert bad.size == 0, (f"{name} {np.dtype(dt).name} act={act} isa={isa}: out at element offset {k} "
                                       f"differs from offset 0 at {bad.size} elements, e.g. {bad[:5]}")
