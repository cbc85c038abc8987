"""python -m cnorm and its bench subcommand."""
import json

import pytest

from cnorm import _bench
from cnorm.__main__ import main


def test_config_only(capsys):
    assert main(["--no-bench"]) == 0
    assert "isa" in capsys.readouterr().out


def test_bench_json_and_progress(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--cases", "LN-1x768,GN", "--impls", "cnorm,roofline", "--budget", "0.01",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[1/2]" in printed and "[2/2]" in printed
    data = json.loads(out.read_text())
    assert data["meta"]["threads"] >= 1
    rows = {(r["id"], r["impl"]): r for r in data["results"]}
    assert set(rows) == {(c, i) for c in ("LN-1x768", "GN32-8x256x32x32") for i in ("cnorm", "roofline")}
    assert all(r["median_s"] > 0 and r["gbps"] > 0 for r in rows.values())


def test_bench_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    assert main(["bench", "--cases", "LN-1x768", "--impls", "cnorm,numpy,roofline", "--budget", "0.01",
                 "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args", [["bench", "--cases", "nonsense"], ["bench", "--impls", "cnorm,tensorflow"]],
                         ids=["cases", "impls"])
def test_bench_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert args[1] in capsys.readouterr().err  # the message names the option


def test_cases_are_shared_with_the_benchmark_suite():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "benchmarks" / "test_bench.py"
    spec = importlib.util.spec_from_file_location("bench_suite", path)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    assert suite._bench.CASES is _bench.CASES
    assert [c.id for c in _bench.find_cases("all")] == [c.id for c in _bench.CASES]
    assert [c.id for c in _bench.find_cases("NHWC")] == [c.id for c in _bench.CASES if "NHWC" in c.id]
