#!/usr/bin/env python3
"""Write the seed corpus fuzz/corpus/: one small input per variant and per
backward variant, in both value modes, plus a few error cases and backward
options.  Byte layout: see fuzz_cnorm.c
(b0 variant | dtype<<4 | well<<6 | huge<<7, b1, b2, b3, b4, eps selector,
three shape bytes, group selector, ddof byte, then the values)."""
import os
import random

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(here, exist_ok=True)
rng = random.Random(1234)
seeds = {}
for variant, name in enumerate(["layer", "rms", "group", "instance", "batch_train",
                                "batch_eval", "moments", "fold"]):
    for dt, dname in enumerate(["f32", "f64", "f16", "bf16"]):
        for well in (0, 1):
            if (variant + dt + well) % 3:  # a handful, not all 64
                continue
            b0 = variant | dt << 4 | well << 6
            head = bytes([b0, 0x00, 0x01, 0x00, 0x00, 0, 2, 5, 7, 0, 0])
            seeds[f"{name}_{dname}_{'well' if well else 'raw'}"] = head + bytes(rng.randrange(256) for _ in range(300))
# error cases: invalid groups, negative eps, NaN eps, bad activation, bad layout, overflowing sizes
seeds["group_bad_groups"] = bytes([2 | 1 << 6, 0, 1, 0, 0, 0, 2, 6, 3, 2, 0]) + bytes(range(64))
seeds["layer_neg_eps"] = bytes([0 | 1 << 6, 0, 0, 0, 0, 8, 2, 4, 1, 0, 0]) + bytes(range(64))
seeds["batch_nan_eps"] = bytes([4, 0, 0, 0, 0, 9, 2, 3, 3, 0, 0]) + bytes(range(64))
seeds["group_bad_act"] = bytes([2, 0, 0x3c, 0, 0, 0, 1, 4, 2, 0, 0]) + bytes(range(64))
seeds["batch_bad_layout"] = bytes([5, 0x38, 0, 0, 0, 0, 1, 4, 2, 0, 0]) + bytes(range(64))
seeds["moments_huge"] = bytes([6 | 1 << 7, 0x08, 0, 0, 0, 0, 1, 1, 1, 0, 0])
# backward (b4 bit 3) of the first six variants, then its options: b3 bits
# 1-2 mean/rstd NULL, bit 6 in place (dx = dy; with b4 bit 7 dx = x); b4 bit 0
# float-rounded stats, bit 2 training = -7, bits 4-6 dx/dweight/dbias NULL
for variant, name in enumerate(["layer", "rms", "group", "instance", "batch_train", "batch_eval"]):
    for dt, dname in enumerate(["f32", "f64", "f16", "bf16"]):
        for well in (0, 1):
            if (variant + dt + well) % 2:
                continue
            b0 = variant | dt << 4 | well << 6
            head = bytes([b0, 0x10 * (variant % 2), 0x02, 0x00, 0x08, 0, 3, 5, 7, 1, 0])
            seeds[f"bwd_{name}_{dname}_{'well' if well else 'raw'}"] = head + bytes(rng.randrange(256) for _ in range(400))
def bwd_seed(name, b0, b1, b2, b3, b4, shape=(2, 4, 5), gsel=0):
    seeds["bwd_" + name] = bytes([b0, b1, b2, b3, 0x08 | b4, 0, *shape, gsel, 0]) + bytes(rng.randrange(256) for _ in range(300))
bwd_seed("layer_stats_recomputed", 0 | 1 << 6, 0, 0x01, 0x06, 0x00)
bwd_seed("group_mean_null", 2 | 1 << 6, 0, 0x00, 0x02, 0x00)  # CNORM_ERR_NULL
bwd_seed("batch_inplace_dy", 4 | 1 << 6, 0x10, 0x03, 0x40, 0x00)
bwd_seed("layer_inplace_x", 0 | 2 << 4 | 1 << 6, 0, 0x02, 0x40, 0x80)
bwd_seed("group_float_stats", 2 | 1 << 6, 0x10, 0x00, 0x00, 0x01, gsel=1)
bwd_seed("batch_eval_dweight_only", 5 | 1 << 6, 0, 0x01, 0x00, 0x50)
bwd_seed("batch_training_m7", 4 | 3 << 4 | 1 << 6, 0, 0x00, 0x00, 0x04)
bwd_seed("batch_scratch", 4 | 1 << 7, 0x11, 0x04, 0x00, 0x00)  # per-channel scratch overflows: CNORM_ERR_SIZE
bwd_seed("group_huge", 2 | 1 << 7, 0x00, 0x00, 0x00, 0x00)  # overflowing sizes
for name, data in seeds.items():
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {here}")
