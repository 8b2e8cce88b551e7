"""Where data files are looked for: one search order shared by every loader, and the per-user cache folder.

The order is: `$SCRATCHNET_DATA/<name>` (what the user or CI points at), system folders that a package
manager fills (Debian's `dataset-fashion-mnist`), then the cache that downloads go to. The first folder that
holds every file wins, so files of two different copies are never mixed.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SCRATCHNET_DATA"


def cache_folder(name: str) -> Path:
    """`$XDG_CACHE_HOME/scratchnet/<name>`, or `~/.cache/scratchnet/<name>` (the XDG default) if unset."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"  # empty counts as unset (XDG spec)
    return Path(base) / "scratchnet" / name


def search_folders(names: tuple[str, ...], system: tuple[str, ...] = ()) -> list[tuple[Path, str]]:
    """(folder, where it comes from) in search order. `names[0]` names the cache folder; the rest are other
    spellings accepted under `$SCRATCHNET_DATA` (e.g. `fashion-mnist` beside `fashion_mnist`)."""
    folders = []
    if os.environ.get(ENV):
        folders += [(Path(os.environ[ENV]) / name, f"${ENV}") for name in names]
    folders += [(Path(folder), "system folder") for folder in system]
    folders.append((cache_folder(names[0]), "cache"))
    return folders


def find_files(folders, names, suffixes=("", ".gz")) -> dict[str, Path] | None:
    """{name: path} from the first folder holding every name (as `name + suffix`, a suffix of `suffixes`),
    or None."""
    for folder in folders:
        found = {}
        for name in names:
            path = next((folder / (name + s) for s in suffixes if (folder / (name + s)).is_file()), None)
            if path is None:
                break
            found[name] = path
        else:
            return found
    return None
