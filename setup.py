"""Build the cnorm._core extension: the Cython binding plus every C source
of the engine, at -O3, with OpenMP when the compiler has it."""
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
import numpy
from Cython.Build import cythonize

# libcnorm is exactly cnorm/_src (CMakeLists.txt compiles the same glob);
# cnorm/_ext holds the C only the extension needs (output cache, roofline).
LIB_SOURCES = sorted(glob(os.path.join("cnorm", "_src", "*.c")))
EXT_SOURCES = sorted(glob(os.path.join("cnorm", "_ext", "*.c")))
HEADERS = [os.path.join("include", "cnorm", "cnorm.h")] + [
    f for d in ("_src", os.path.join("_src", "simd"), "_ext") for pat in ("*.h", "*.inc")
    for f in glob(os.path.join("cnorm", d, pat))]
if not LIB_SOURCES or not os.path.exists(HEADERS[0]) or not os.path.exists(os.path.join("cnorm", "_core.pyx")):
    # an sdist made without MANIFEST.in, or a build from the wrong directory
    sys.exit("cnorm: cnorm/_core.pyx, cnorm/_src/*.c or include/cnorm/cnorm.h not found in "
             f"{os.getcwd()!r}: incomplete source tree (an sdist must be made with MANIFEST.in)")


def _compiles_with(compiler, flags, link_flags):
    """True if a tiny OpenMP program compiles and links with these flags."""
    code = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=link_flags)
        except Exception:
            return False
    return True


def _compile_in_parallel(compile_sources):
    """The compiler's compile(), one source per job on every core:
    setuptools compiles the sources of an extension one after another, and
    this one has a dozen large ones (every ISA's leaves, the Cython module)."""
    def compile(sources, *args, **kwargs):
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # the compilers are subprocesses
            return [obj for objs in pool.map(lambda src: compile_sources([src], *args, **kwargs), sources)
                    for obj in objs]
    return compile


class BuildExt(build_ext):
    """Probe OpenMP once; without it the build still succeeds, single-threaded."""

    def build_extensions(self):
        cc = self.compiler
        cc.compile = _compile_in_parallel(cc.compile)
        if cc.compiler_type == "msvc":
            opt, omp, omp_link = ["/O2"], ["/openmp"], []
        else:
            opt, omp, omp_link = ["-O3", "-fno-math-errno"], ["-fopenmp"], ["-fopenmp"]
        has_omp = os.environ.get("CNORM_NO_OPENMP") != "1" and _compiles_with(cc, omp, omp_link)
        if not has_omp:
            print("cnorm: OpenMP not found; building single-threaded", file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = opt + (omp if has_omp else [])
            ext.extra_link_args = omp_link if has_omp else []
        super().build_extensions()


ext = Extension(
    "cnorm._core",
    sources=[os.path.join("cnorm", "_core.pyx")] + LIB_SOURCES + EXT_SOURCES,
    include_dirs=["include", os.path.join("cnorm", "_src"), os.path.join("cnorm", "_ext"), numpy.get_include()],
    # NumPy >= 1.23 C API (PyDataMem_SetHandler is 1.22+): NumPy 2.0's headers
    # would default to 1.19 on Python 3.9, and the module would not import
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
    depends=HEADERS,
)

setup(
    ext_modules=cythonize([ext], language_level=3),
    cmdclass={"build_ext": BuildExt},
)
