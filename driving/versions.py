"""Package versions recorded with every dataset, checkpoint and result."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("numpy", "gymnasium", "highway-env", "torch", "lightning", "opencv-python-headless")


def package_versions() -> dict[str, str]:
    """``{package: version}`` for Python and the packages results depend on (absent: missing)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
