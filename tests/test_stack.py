"""Small stacks (README, Guarantees): every public function runs in a
Python thread with a 40 KiB stack (threading.stack_size) and gives the
bits it gives on the main thread.  The kernels keep their scratch on the
heap; a frame that outgrew such a stack would crash the process, so the
calls run in a subprocess."""
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import cnorm

    rng = np.random.default_rng(0)
    def r(*shape, dtype=np.float32, offset=3.0):
        return (offset + rng.standard_normal(shape)).astype(dtype)

    x4 = r(8, 64, 16, 16)
    xl = np.ascontiguousarray(x4.transpose(0, 2, 3, 1))   # NHWC memory
    w64, b64 = r(64, offset=1.0), r(64, offset=0.0)
    h = r(64, 768)
    long_rows = r(3, 70000)
    wide = r(4, 16, 16, 640)                              # NHWC, tiled apply
    conv = r(64, 3, 3, 3)
    rm, rv = r(64, offset=0.0), np.abs(r(64, offset=1.0)) + 0.1

    def bn_train():
        m, v = rm.copy(), rv.copy()
        y = cnorm.batch_norm(xl, m, v, w64, b64, training=True, axis=-1)
        return y, m, v

    def nn_modules():
        outs = []
        for mod, arg in ((cnorm.nn.BatchNorm2d(64), x4), (cnorm.nn.InstanceNorm2d(64, affine=True), x4),
                         (cnorm.nn.GroupNorm(8, 64), x4), (cnorm.nn.LayerNorm(768), h), (cnorm.nn.RMSNorm(768), h)):
            outs.append(mod(arg))
        return outs

    def nn_backward():
        mod = cnorm.nn.GroupNorm(8, 64)
        return mod.backward(mod(x4)), mod.grad["weight"]

    calls = {
        "moments axis=0 of (1000, 512)": lambda: cnorm.moments(np.ones((1000, 512)), axis=0),
        "moments (0, 2, 3)": lambda: cnorm.moments(x4, axis=(0, 2, 3), ddof=1),
        "moments of NHWC over (0, 1, 2)": lambda: cnorm.moments(xl, axis=(0, 1, 2)),
        "moments all": lambda: cnorm.moments(long_rows),
        "layer_norm": lambda: cnorm.layer_norm(h, 768, h[0], h[1], activation="gelu", return_stats=True),
        "layer_norm long rows": lambda: cnorm.layer_norm(long_rows, 70000),
        "layer_norm float16": lambda: cnorm.layer_norm(h.astype(np.float16), 768),
        "rms_norm": lambda: cnorm.rms_norm(h, 768, h[0]),
        "rms_norm long rows": lambda: cnorm.rms_norm(long_rows, 70000),
        "group_norm NCHW": lambda: cnorm.group_norm(x4, 8, w64, b64, activation="silu"),
        "group_norm NHWC": lambda: cnorm.group_norm(xl, 8, w64, b64, axis=-1),
        "group_norm NHWC wide": lambda: cnorm.group_norm(wide, 32, axis=-1),
        "instance_norm NCHW": lambda: cnorm.instance_norm(x4, weight=w64, bias=b64),
        "instance_norm NHWC": lambda: cnorm.instance_norm(xl, axis=-1),
        "batch_norm eval NCHW": lambda: cnorm.batch_norm(x4, rm, rv, w64, b64, activation="relu"),
        "batch_norm eval NHWC": lambda: cnorm.batch_norm(xl, rm, rv, w64, b64, axis=-1),
        "batch_norm train NCHW": lambda: cnorm.batch_norm(x4, training=True),
        "batch_norm train NHWC, running stats": bn_train,
        "batch_norm train NHWC wide": lambda: cnorm.batch_norm(wide, training=True, axis=-1),
        "fold_batch_norm": lambda: cnorm.fold_batch_norm(conv, w64, rm, rv, w64, b64),
        "nn modules": nn_modules,
        "layer_norm_backward": lambda: cnorm.layer_norm_backward(h, h, 768, None, None, h[0], bias=h[1], activation="silu"),
        "layer_norm_backward long rows": lambda: cnorm.layer_norm_backward(long_rows, long_rows, 70000),
        "rms_norm_backward": lambda: cnorm.rms_norm_backward(h, h, 768, None, h[0]),
        "group_norm_backward NCHW": lambda: cnorm.group_norm_backward(x4, x4, 8, None, None, w64, bias=b64,
                                                                      activation="gelu"),
        "group_norm_backward NHWC wide": lambda: cnorm.group_norm_backward(wide, wide, 32, axis=-1),
        "instance_norm_backward NHWC": lambda: cnorm.instance_norm_backward(xl, xl, axis=-1),
        "batch_norm_backward NCHW": lambda: cnorm.batch_norm_backward(x4, x4, None, None, w64, bias=b64,
                                                                      activation="relu"),
        "batch_norm_backward NHWC wide": lambda: cnorm.batch_norm_backward(wide, wide, axis=-1),
        "batch_norm_backward eval": lambda: cnorm.batch_norm_backward(xl, xl, rm, rv, w64, False, axis=-1),
        "nn backward": nn_backward,
        "config": lambda: (cnorm.get_num_threads(), cnorm.get_isa(), cnorm.available_isas()),
    }

    def flat(v):
        if isinstance(v, (tuple, list)):
            return [a for e in v for a in flat(e)]
        return [np.asarray(v)]

    def same(a, b):
        a, b = flat(a), flat(b)
        return len(a) == len(b) and all(p.dtype == q.dtype and p.shape == q.shape and p.tobytes() == q.tobytes()
                                        for p, q in zip(a, b))

    threading.stack_size(40 << 10)
    bad = []
    for isa in cnorm.available_isas():
        cnorm.set_isa(isa)
        for threads in (1, 2):
            cnorm.set_num_threads(threads)
            for name, call in calls.items():
                want, got = call(), []
                t = threading.Thread(target=lambda: got.append(call()))
                t.start()
                t.join()
                if not got or not same(want, got[0]):
                    bad.append(f"{name} ({isa}, {threads} threads)")
    print("differ:", bad)
    sys.exit(1 if bad else 0)
    """
)


def test_every_public_function_on_a_40_kib_stack(tmp_path):
    # from a scratch directory, so the subprocess imports the installed cnorm
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    if out.returncode < 0:
        pytest.fail(f"a call on the 40 KiB-stack thread crashed the process (signal {-out.returncode})\n{out.stderr}")
    assert out.returncode == 0, out.stdout + out.stderr
