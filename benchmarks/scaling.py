"""Thread and ISA scaling of cnorm, measured side by side in one run.

    python benchmarks/scaling.py

Prints median microseconds per call (with out=, so allocation is not
timed) for 1 and 2 threads on the large cases, with the roofline's own
scaling next to it, and single-threaded scalar vs each SIMD path.
"""
import cnorm
from cnorm import _bench

LARGE = ["LN (2048,4096)", "BN train NCHW (32,64,56,56)", "BN train NHWC (32,64,56,56)",
         "IN NCHW (16,64,256,256)", "GN32 (8,256,32,32)", "LN (128,768)", "IN NCHW (1,64,128,128)"]
ISA_CASES = ["LN (128,768)", "LN (2048,4096)", "BN train NHWC (32,64,56,56)", "GN32 (8,256,32,32)"]


def timed(case, impl, budget=0.4):
    data = _bench.make_inputs(case)
    return _bench.time_call(_bench.IMPLS[impl](case, data), budget).median * 1e6


def main():
    default_isa = cnorm.get_isa()
    print(f"{'case':<30}{'1 thread':>10}{'2 threads':>10}{'speedup':>9}{'roofline 1t/2t':>17}")
    for name in LARGE:
        case = _bench.CASES_BY_NAME[name]
        t = {}
        for n in (1, 2):
            _bench.set_threads(n)
            t[n] = (timed(case, "cnorm_out"), timed(case, "roofline"))
        print(f"{name:<30}{t[1][0]:>10.1f}{t[2][0]:>10.1f}{t[1][0] / t[2][0]:>8.2f}x"
              f"{t[1][1] / t[2][1]:>16.2f}x")
    _bench.set_threads(1)
    isas = cnorm.available_isas()
    print(f"\n1 thread{'':<22}" + "".join(f"{i:>10}" for i in isas) + f"{'best/scalar':>13}")
    for name in ISA_CASES:
        case = _bench.CASES_BY_NAME[name]
        t = {}
        for isa in isas:
            cnorm.set_isa(isa)
            t[isa] = timed(case, "cnorm_out")
        print(f"{name:<30}" + "".join(f"{t[i]:>10.1f}" for i in isas)
              + f"{t['scalar'] / min(t.values()):>12.2f}x")
    cnorm.set_isa(default_isa)
    _bench.set_threads(0)


if __name__ == "__main__":
    main()
