"""Packaging for ivoryos_plugin.

The browser assets (the Socket.IO client and the chart library) come from the npm registry:
run ``npm ci`` first; its postinstall step copies them into ``ivoryos_plugin/static/vendor``.
"""
from pathlib import Path

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
#: one line run at Python's start: _ivoryos_plugin_shadow names the folder when another package
#: named ivoryos_plugin (the official plugin template's) shadows the framework (docs/packaging.md)
SHADOW_PTH = "ivoryos-plugin-framework-shadow.pth"
SHADOW_LINE = 'import sys; exec("try:\\n    import _ivoryos_plugin_shadow\\nexcept Exception:\\n    pass")\n'


def write_pth(folder: str) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    Path(folder, SHADOW_PTH).write_text(SHADOW_LINE)


class build_py_with_pth(build_py):
    """The wheel gets the .pth at its root (site-packages), beside _ivoryos_plugin_shadow.py."""

    def run(self) -> None:
        super().run()
        write_pth(self.build_lib)


cmdclass = {"build_py": build_py_with_pth}
try:
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # setuptools < 64: no PEP 660 editable installs
    pass
else:
    class editable_wheel_with_pth(editable_wheel):
        """``pip install -e``: the editable wheel gets the .pth too (the module is found in the checkout)."""

        def _install_namespaces(self, installation_dir, pth_prefix):  # type: ignore[no-untyped-def]
            super()._install_namespaces(installation_dir, pth_prefix)
            write_pth(installation_dir)

    cmdclass["editable_wheel"] = editable_wheel_with_pth


def _requirements() -> list:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="ivoryos-plugin-framework",  # not "ivoryos-plugin": docs/packaging.md, "The name"
    version="0.1.0",
    description="A framework for live, safe, tested IvoryOS plugin pages.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # namespace discovery: the data folders (templates/, static/vendor/..., the scaffold's files/) are
    # packages too, so setuptools installs them without ~900 lines of "Package would be ignored"
    packages=find_namespace_packages(include=["ivoryos_plugin", "ivoryos_plugin.*"], exclude=["*.__pycache__"]),
    py_modules=["_ivoryos_plugin_shadow"],
    cmdclass=cmdclass,
    include_package_data=True,
    package_data={
        "ivoryos_plugin": [
            "py.typed",
            "templates/ivoryos_plugin/*.html",
            "static/*.js",
            "static/*.css",
            "static/vendor/*",
            "static/vendor/**/*",  # IvoryOS's CDN libraries, in folders (ivoryos_plugin/offline.py)
            "tools/scaffold/*",
            "tools/scaffold/**/*",
        ],
    },
    install_requires=_requirements(),
    extras_require={"test": ["pytest>=8", "hypothesis>=6.100", "python-socketio[client]>=5.8",
                             "websocket-client>=1.6", "requests>=2.31", "playwright>=1.40"],
                    # plugin.camera: capture and JPEG encoding (kept out of the base install: ~60 MB)
                    "camera": ["opencv-python-headless>=4.8"],
                    # the next IvoryOS generation (FastAPI): ivoryos_plugin.edge (docs/edge.md); the versions verified
                    "edge": ["ivoryos-edge>=0.1.1,<0.2"]},
    entry_points={
        "console_scripts": ["ivoryos-plugin = ivoryos_plugin.tools.cli:main"],
    },
    zip_safe=False,
)
