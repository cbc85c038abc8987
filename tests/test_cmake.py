"""The CMake build in configurations users meet (the C library's own
tests run under ctest; these check the build system itself)."""
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLCHAIN = ROOT / "cmake" / "toolchains" / "aarch64-linux-gnu.cmake"


@pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("aarch64-linux-gnu-gcc")),
                    reason="needs cmake and Debian's gcc-aarch64-linux-gnu")
def test_cross_toolchain_needs_no_cxx_compiler(tmp_path):
    # a toolchain directory with the cross binutils and gcc but no g++
    # (gcc-aarch64-linux-gnu without g++-aarch64-linux-gnu)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gcc = pathlib.Path(shutil.which("aarch64-linux-gnu-gcc"))
    for tool in gcc.parent.glob("aarch64-linux-gnu-*"):
        if not any(s in tool.name for s in ("g++", "c++")):
            (bindir / tool.name).symlink_to(tool.resolve())
    out = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(tmp_path / "build"), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
         f"-DCNORM_CROSS_PREFIX={bindir}/aarch64-linux-gnu-", "-DCNORM_BUILD_EXAMPLES=OFF"],
        capture_output=True, text=True, env={**os.environ, "CXX": ""}, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "header_cxx test is left out" in out.stdout
