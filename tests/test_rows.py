"""benchmarks/rows.py, the row-speed table: options, the targets, and a tiny
real run (cnorm and the roofline only, no timing asserts)."""
import importlib.util
import json
import pathlib

import pytest

from cnorm import _bench

ROOT = pathlib.Path(__file__).parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("bench_rows", ROOT / "benchmarks" / "rows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rows = _load()
TINY = ["--rows", "1", "--cols", "768", "--threads", "1", "--budget", "0.002", "--impls", "cnorm_out,roofline"]


@pytest.mark.parametrize("args, option", [
    (["--rows", "0"], "--rows"),
    (["--rows", "8,x"], "--rows"),
    (["--cols", ","], "--cols"),
    (["--threads", "0"], "--threads"),
    (["--ops", "LN,GN"], "--ops"),
    (["--runs", "2,3"], "--runs"),
    (["--budget", "nan"], "--budget"),
    (["--budget", "-1"], "--budget"),
    (["--impls", "cnorm_out,numpy"], "--impls"),
    (["--l2-kib", "2M"], "--l2-kib"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_bad_options(args, option, capsys):
    with pytest.raises(ValueError, match=f"^{option}: "):
        rows.selection(rows.parser().parse_args(args))
    with pytest.raises(SystemExit) as e:
        rows.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {option}: " in err and "Traceback" not in err, err


def test_ops_by_label_or_name():
    sel = rows.selection(rows.parser().parse_args(["--ops", "ln, add-RMS,add_layer,RMS,LN"]))
    assert sel.ops == ["layer", "add_rms", "add_layer", "rms"]
    assert [c.name for c in rows.cases(sel)][:2] == ["LN (1,768)", "LN (8,768)"]


def test_targets():
    def us(cnorm, torch=None, ort=None, roof=None):
        return {"cnorm_out": cnorm, "torch": torch, "onnxruntime": ort, "roofline": roof}

    assert rows.misses(us(10, 15, 16, 8), in_cache=True) == []
    assert rows.misses(us(10, 9, 20, 8), in_cache=True) == ["slower than torch", "< 1.5x peers"]
    assert rows.misses(us(10, 14, 30, 8), in_cache=True) == ["< 1.5x peers"]
    # within 1.15x of the roofline: the 1.5x does not apply
    assert rows.misses(us(10, 11, None, 9), in_cache=False) == []
    # 1.2x the roofline: fine in cache (1.3x), a miss above L2 (1.15x)
    assert rows.misses(us(12, 20, 20, 10), in_cache=True) == []
    assert rows.misses(us(12, 20, 20, 10), in_cache=False) == ["> 1.15x roofline"]
    assert rows.misses(us(14, 30, 30, 10), in_cache=True) == ["> 1.3x roofline"]
    assert rows.misses(us(None, 1, 1, 1), in_cache=True) == ["cnorm not measured"]


def test_in_process_order_alternates(threads):  # measure() sets the thread count: restored after
    sel = rows.selection(rows.parser().parse_args(TINY + ["--ops", "LN"]))
    forward = [r["impl"] for r in rows.measure(sel)]
    backward = [r["impl"] for r in rows.measure(sel, reverse=True)]
    assert forward == ["cnorm_out", "roofline"] and backward == forward[::-1]


def test_tiny_run(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert rows.main(TINY + ["--ops", "LN,add-RMS", "--runs", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0] == "| case | threads | cnorm | roofline | best peer/cnorm | cnorm/roofline | targets |"
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| LN (1,768)", "| add RMS (1,768)"]
    assert "reversed order" in printed.err
    data = json.loads(out.read_text())
    assert data["meta"]["runs"] == 2 and data["meta"]["command"].startswith("python benchmarks/rows.py --rows 1")
    ln, add = data["cases"]
    assert (ln["op"], add["op"]) == ("layer", "add_rms")
    assert add["bytes"] == 2 * ln["bytes"] == _bench.row_case("add_rms", 1, 768).nbytes
    for e in data["cases"]:
        assert [len(e["runs_us"][i]) for i in ("cnorm_out", "roofline")] == [2, 2]
        assert e["us"]["cnorm_out"] > 0 and e["best_peer_over_cnorm"] is None and e["in_cache"]
