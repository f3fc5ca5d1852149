"""Data magan ships or makes: the paper's toy problem, the bundled demo batches, and the finder
for the project's ``shared/data`` folder of real public datasets.

Nothing here downloads anything: bundled files live in ``magan/data`` (MIT/BSD only, with their
source noted beside them) and larger datasets are read from ``shared/data`` when it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_shared_data"]


def find_shared_data(required: bool = False) -> Path | None:
    """Locate the ``shared/data`` folder that sits beside a magan checkout.

    Looks at ``$MAGAN_SHARED_DATA`` first, then for ``shared/data`` next to the current directory
    or any parent of it or of this package (CI clones the repo with ``../shared`` beside it).
    Returns None when absent, or raises FileNotFoundError if ``required``.
    """
    env = os.environ.get("MAGAN_SHARED_DATA")
    candidates: list[Path] = [Path(env)] if env else []
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for parent in (start, *start.parents):
            candidates.append(parent / "shared" / "data")
            candidates.append(parent.parent / "shared" / "data")
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    if required:
        raise FileNotFoundError(
            "shared/data not found: set MAGAN_SHARED_DATA or place the shared/ folder beside "
            "the checkout"
        )
    return None
