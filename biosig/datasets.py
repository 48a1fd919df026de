"""Where the real recordings live.

The development slices ship beside the repository as ``../shared/data``; users point the same code
at full datasets with the ``BIOSIG_DATA_ROOT`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "DATA_ROOT_ENV"]

DATA_ROOT_ENV = "BIOSIG_DATA_ROOT"


def data_root(required: bool = False) -> Path | None:
    """The root folder of the real recordings, or ``None`` when there is none.

    Looks at ``$BIOSIG_DATA_ROOT``, then ``shared/data`` beside or above the current directory
    and the installed package (the layout of a development checkout).

    Parameters
    ----------
    required : bool
        Raise ``FileNotFoundError`` instead of returning ``None``.
    """
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            return p.resolve()
        if required:
            raise FileNotFoundError(f"{DATA_ROOT_ENV}={env} is not a directory")
        return None
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for d in (start, *start.parents):
            for cand in (d / "shared" / "data", d.parent / "shared" / "data"):
                if (cand / "DATA.md").is_file():
                    return cand.resolve()
    if required:
        raise FileNotFoundError(f"no shared/data folder found; set {DATA_ROOT_ENV}")
    return None
