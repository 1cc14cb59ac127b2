"""The build's parts that pyproject.toml cannot say: the optional compiled record encoder, and the
demo config shipped inside the package.

``kitefan._records`` (kitefan/_records.c, CPython's C API and nothing else) writes the JSON lines
and CSV rows of ``kitefan stream`` straight from the frames' bytes. It is optional: where it
cannot be compiled the build warns and goes on, and kitefan.render.records writes the same text
in pure Python, slower.

The demo config and its instruments dump live in configs/ and are copied into the wheel as
kitefan/configs, so that ``kitefan stream --demo`` works from a wheel as well as from a checkout
(kitefan.config looks for the packaged copy first, then the checkout's).
"""

import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

# Floating-point contraction (fusing a multiply and an add) would change the last bit of a
# tick's change against Python's own arithmetic: keep each operation rounded on its own.
FLAGS = [] if sys.platform == "win32" else ["-ffp-contract=off"]
CONFIGS = ["demo.toml", "demo-instruments.csv", "example.toml"]


class BuildWithConfigs(build_py):
    """build_py, then configs/ copied into the built package as kitefan/configs."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's configs/
            return
        target = Path(self.build_lib, "kitefan", "configs")
        target.mkdir(parents=True, exist_ok=True)
        for name in CONFIGS:
            shutil.copyfile(Path("configs", name), target / name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        target = Path(self.build_lib, "kitefan", "configs")
        return outputs + [str(target / name) for name in CONFIGS]


setup(
    cmdclass={"build_py": BuildWithConfigs},
    ext_modules=[
        Extension(
            "kitefan._records",
            ["kitefan/_records.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    ],
)
