"""python -m cnorm and its bench subcommand."""
import importlib
import importlib.util
import json
import pathlib
import sys

import pytest

import cnorm
from cnorm import _bench
from cnorm.__main__ import WIDTH, format_case, main
from cnorm._version import DISTRIBUTION

ROOT = pathlib.Path(__file__).parent.parent
TINY = ["bench", "--cases", "LN-1x768", "--impls", "cnorm,roofline", "--budget", "0.01"]


@pytest.fixture
def peer_threads():
    """--threads sets cnorm's threads and torch's (when installed): restore
    both, so later tests keep their defaults."""
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    before = torch.get_num_threads() if torch else None
    yield
    cnorm.set_num_threads(0)
    if torch:
        torch.set_num_threads(before)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_only(capsys):
    assert main(["--no-bench"]) == 0
    assert "isa" in capsys.readouterr().out


def test_bench_json_and_progress(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--cases", "LN-1x768,GN32-8x256x32x32", "--impls", "cnorm,roofline", "--budget", "0.01",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[1/2]" in printed and "[2/2]" in printed
    data = json.loads(out.read_text())
    assert data["meta"]["threads"] >= 1
    rows = {(r["id"], r["impl"]): r for r in data["results"]}
    assert set(rows) == {(c, i) for c in ("LN-1x768", "GN32-8x256x32x32") for i in ("cnorm", "roofline")}
    assert all(r["median_s"] > 0 and r["gbps"] > 0 for r in rows.values())
    for r in rows.values():  # the spread is saved too
        assert r["status"] == "ok" and r["runs"] >= 5 and isinstance(r["noisy"], bool)
        assert 0 < r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnorm {cnorm.__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_threads_before_or_after_bench(where, tmp_path, peer_threads):
    """`--threads 1 bench` applies as `bench --threads 1` does (it was
    silently ignored before the subcommand)."""
    out = tmp_path / "bench.json"
    options = ["--threads", "1", "--budget", "0.01"]
    argv = options + TINY[:-2] if where == "before" else TINY[:-2] + options
    assert main(argv + ["--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["threads"] == 1
    assert data["meta"]["budget_s"] == 0.01


@pytest.mark.parametrize("args, option", [
    (["--threads", "-3"], "--threads"),
    (["--threads", "two"], "--threads"),
    (["--threads", str(10 ** 30), "--no-bench"], "--threads"),
    (["--budget", "-1"], "--budget"),
    (["--budget", "0"], "--budget"),
    (["--budget", "nan"], "--budget"),
    (["bench", "--threads", "-3"], "--threads"),
    (["bench", "--budget", "-1"], "--budget"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_bad_threads_and_budget_are_usage_errors(args, option, capsys, peer_threads):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "Traceback" not in err, err


def test_plot_hint_names_the_distribution(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(SystemExit) as e:
        main(TINY + ["--plot", str(tmp_path / "x.png")])
    assert e.value.code == 2
    assert f"pip install '{DISTRIBUTION}[plot]'" in capsys.readouterr().err


def test_json_round_trips_through_the_table(tmp_path, capsys):
    """benchmarks/table.py reads what `bench --json` writes (and still reads
    pytest-benchmark's JSON)."""
    table = _load("bench_table", ROOT / "benchmarks" / "table.py")
    out = tmp_path / "bench.json"
    assert main(["bench", "--cases", "LN-1x768,GN32-8x256x32x32", "--impls", "cnorm,cnorm_out,torch,roofline",
                 "--budget", "0.01", "--json", str(out)]) == 0
    capsys.readouterr()
    data = json.loads(out.read_text())
    table.main([str(out), str(out)])
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in lines[2:] if line.startswith("| ")}
    assert set(rows) == {"LN (1,768)", "GN32 (8,256,32,32)"}
    for r in data["results"]:
        cell = rows[r["case"]][header.index(r["impl"])]
        if r["status"] == "ok":
            assert cell == f"{r['median_s'] * 1e6:.1f}"
        else:
            assert cell == "-"
    assert lines[-1].endswith(f"{data['meta']['threads']} threads, ISA {data['meta']['isa']}, 2 run(s)")

    pytest_benchmark = {"datetime": "2026-01-01T00:00:00", "machine_info": {"python_version": "3.11"},
                        "benchmarks": [{"group": "LN (1,768)", "params": {"impl": "cnorm"},
                                        "stats": {"median": 2.5e-6}}]}
    assert table.render([pytest_benchmark])[2] == "| LN (1,768) | 2.5 | - | - | - | - | - | - | - |"
    with pytest.raises(ValueError, match="pytest-benchmark"):
        table.read({"meta": {}})


def _row(case, impl, median, status="ok", spread=0.1):
    if status != "ok":
        return {"case": case.name, "impl": impl, "status": status, "median_s": None}
    return {"case": case.name, "impl": impl, "status": "ok", "min_s": median * (1 - spread),
            "q1_s": median * (1 - spread), "median_s": median, "q3_s": median * (1 + spread),
            "runs": 5, "noisy": spread > _bench.NOISY_IQR / 2, "gbps": case.nbytes / median / 1e9}


def test_table_marks_missing_peers_noise_and_fits_100_columns():
    case = max(_bench.CASES, key=lambda c: len(c.name))
    rows = [_row(case, "cnorm", 12.3e-6), _row(case, "cnorm_out", 9.9e-6, spread=0.4),
            _row(case, "torch", None, "not installed"), _row(case, "onnxruntime", None, "n/a"),
            _row(case, "numpy", 98.7654321), _row(case, "roofline", 1.5e-7)]
    lines = format_case(13, 13, case, rows)
    assert lines[0] == f"{case.name}  [13/13]"
    by_impl = {line.split()[0]: line for line in lines[1:]}
    assert by_impl["torch"].split()[1:] == ["not", "installed"]
    assert by_impl["onnxruntime"].split()[1:] == ["n/a"]
    assert by_impl["cnorm_out"].endswith("noisy") and not by_impl["cnorm"].endswith("noisy")
    assert by_impl["cnorm"].split()[1:3] == ["12.3", "11.1"]  # median, then min
    assert by_impl["numpy"].split()[-1] == f"{98.7654321 / 12.3e-6:.2f}"  # time / cnorm's
    assert max(map(len, lines)) <= WIDTH, lines


@pytest.mark.parametrize("argv", [["--budget", "0.001"], ["bench", "--cases", "LN-1x768", "--budget", "0.001"]],
                         ids=["self-benchmark", "bench"])
def test_output_fits_100_columns(argv, capsys, monkeypatch):
    """Real runs (the self-benchmark on its smallest case): configuration,
    headings, table and legend; every implementation, the missing ones
    marked."""
    monkeypatch.setattr(_bench, "QUICK", ["LN (1,768)"])
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert max(map(len, printed.splitlines())) <= WIDTH, printed
    for impl in _bench.REQUIRES:
        if _bench.not_installed(impl):
            assert any(line.split()[:3] == [impl, "not", "installed"] for line in printed.splitlines()), printed


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
    suite = _load("bench_suite", ROOT / "benchmarks" / "test_bench.py")
    assert suite._bench.CASES is _bench.CASES
    assert [c.id for c in _bench.find_cases("all")] == [c.id for c in _bench.CASES]
    assert [c.id for c in _bench.find_cases("NHWC")] == [c.id for c in _bench.CASES if "NHWC" in c.id]
