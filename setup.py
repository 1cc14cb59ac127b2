"""The build's one part that pyproject.toml cannot say: the optional compiled record encoder.

``kitefan._records`` (kitefan/_records.c, CPython's C API and nothing else) writes the JSON lines
and CSV rows of ``kitefan stream`` straight from the frames' bytes. It is optional: where no C
compiler is found the build warns and goes on, and kitefan.render.records writes the same text
in pure Python, slower. Everything else is in pyproject.toml.
"""

import sys

from setuptools import Extension, setup

# Floating-point contraction (fusing a multiply and an add) would change the last bit of a
# tick's change against Python's own arithmetic: keep each operation rounded on its own.
FLAGS = [] if sys.platform == "win32" else ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "kitefan._records",
            ["kitefan/_records.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    ]
)
