"""Build step for the compiled parts: gRPC stubs, Cython and pybind11 kernels.

Why a setup.py beside pyproject.toml: setuptools still needs code to declare
C/C++ extensions, and the gRPC stubs must be generated from ``proto/`` before
the package list is collected, so that both wheels and editable installs carry
them (they live in ``server/gen`` and are never edited by hand).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
from pybind11.setup_helpers import Pybind11Extension
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()
PROTO_ROOT = ROOT / "proto"
GEN_ROOT = ROOT / "server" / "gen"


def generate_protos() -> None:
    """Compile every ``proto/**/*.proto`` into ``server/gen`` with grpcio-tools.

    protoc writes absolute imports (``from stackserve.v1 import x_pb2``) and names the
    message classes' module after the proto path; both are rewritten to
    ``server.gen.stackserve.v1`` because a top-level ``stackserve`` or ``proto``
    module would clash with other packages, and pickling a message (Ray does, for
    its gRPC proxy) must import the module the class names.
    """
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    if not protos:
        return
    GEN_ROOT.mkdir(parents=True, exist_ok=True)
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={GEN_ROOT}",
        f"--pyi_out={GEN_ROOT}",
        f"--grpc_python_out={GEN_ROOT}",
        *[str(p) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on " + ", ".join(map(str, protos)))
    for path in GEN_ROOT.rglob("*.py"):
        text = path.read_text()
        fixed = re.sub(r"^from stackserve\.", "from server.gen.stackserve.", text, flags=re.M)
        fixed = re.sub(
            r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, )'stackserve\.", r"\1'server.gen.stackserve.", fixed
        )
        if fixed != text:
            path.write_text(fixed)
    for folder in [GEN_ROOT, *[p for p in GEN_ROOT.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    cython_exts = cythonize(
        [
            Extension(
                "kernels.cython._tree_ensemble",
                ["kernels/cython/_tree_ensemble.pyx"],
                include_dirs=[np.get_include()],
                extra_compile_args=["-O3", *openmp],
                extra_link_args=openmp,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        ],
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False},
    )
    cpp_exts = [
        Pybind11Extension(
            "kernels.cpp._tree_ensemble",
            ["kernels/cpp/tree_ensemble.cpp"],
            cxx_std=17,
            extra_compile_args=["-O3"],
        ),
        # Whole-step Llama forward: portable flags (AVX-512 code is selected at run time) + OpenMP.
        # Its kernels are headers under kernels/cpp/llm_step/, included by the .cpp with a relative
        # path; `depends` rebuilds the extension when one changes and puts them in the sdist.
        Pybind11Extension(
            "kernels.cpp._llm_step",
            ["kernels/cpp/llm_step.cpp"],
            depends=sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "kernels/cpp/llm_step").glob("*.h")),
            cxx_std=17,
            extra_compile_args=["-O3", *openmp],
            extra_link_args=openmp,
        ),
    ]
    return [*cython_exts, *cpp_exts]


class ParallelBuildExt(build_ext):
    """The extensions compiled side by side, one job per core (the C++ step alone takes ~20 s)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1


generate_protos()
setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuildExt})
