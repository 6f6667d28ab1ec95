"""`cache.paths`: directories kept between builds of a repository, in a directory the caller owns.

Like CodeBuild's local custom cache, only directories are cached (`node_modules/**/*` caches `node_modules`), and
a restored item wins over a file of the same name from the source. A path under the workspace is relative to it;
`~`, `$HOME`, the sandbox's home and `/root` (where CodeBuild's images keep `.m2` or `.npm`) are the build's home.
Copies never follow links and read only regular files: the cached tree was written by a build.
"""

import os
import shutil
import stat
import uuid
from pathlib import Path, PurePosixPath

from releases.artifacts import safe_directory
from releases.sandbox import SANDBOX_HOME, SANDBOX_WORKSPACE, BuildDirectory

HOME_PREFIXES = ("~/", "$HOME/", "${HOME}/", f"{SANDBOX_HOME}/", "/root/")


def cache_location(path: str) -> tuple[str, str] | None:
    """("workspace" | "home", relative directory) for a cache path, None for one outside both."""
    path = path.strip()
    for suffix in ("/**/*", "/**", "/*"):
        path = path.removesuffix(suffix)
    area = "workspace"
    for prefix in HOME_PREFIXES:
        if path.startswith(prefix):
            area, path = "home", path[len(prefix) :]
            break
    else:
        if path.startswith(f"{SANDBOX_WORKSPACE}/"):
            path = path[len(SANDBOX_WORKSPACE) + 1 :]
        elif path.startswith("/"):
            return None
    path = path.removeprefix("./").strip("/")
    parts = PurePosixPath(path).parts
    if not parts or ".." in parts or any(char in path for char in "*?["):
        return None
    return area, path


def _area_root(directory: BuildDirectory, area: str) -> Path:
    return directory.workspace if area == "workspace" else directory.home


def restore_cache(paths, directory: BuildDirectory, cache_dir: Path) -> list[str]:
    """Copy the cached directories into the build's workspace and home; returns one log note per path."""
    notes = []
    for path in paths:
        location = cache_location(path)
        if location is None:
            notes.append(f"cache path {path!r} is not under the source directory or the home: not cached")
            continue
        area, relative = location
        cached = cache_dir / area / relative
        if not cached.is_dir():
            notes.append(f"cache path {path!r}: nothing cached yet")
            continue
        parent = safe_directory(_area_root(directory, area), str(PurePosixPath(relative).parent))
        if parent is None:
            os.makedirs(_area_root(directory, area) / PurePosixPath(relative).parent, exist_ok=True)
            parent = safe_directory(_area_root(directory, area), str(PurePosixPath(relative).parent))
        target = parent / PurePosixPath(relative).name
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        _copy_tree(cached, target)
        notes.append(f"cache path {path!r} restored")
    return notes


def save_cache(paths, directory: BuildDirectory, cache_dir: Path) -> list[str]:
    """Replace the cached copy of each path with the build's, when the build made it a directory."""
    notes = []
    for path in paths:
        location = cache_location(path)
        if location is None:
            continue
        area, relative = location
        source = safe_directory(_area_root(directory, area), relative)
        if source is None:
            notes.append(f"cache path {path!r} is not a directory after the build: not saved")
            continue
        cached = cache_dir / area / relative
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Copied beside, then swapped in, so a build reading the cache never sees half of it.
        fresh = cached.parent / f".{cached.name}.{uuid.uuid4().hex}"
        _copy_tree(source, fresh)
        old = cached.parent / f".{cached.name}.{uuid.uuid4().hex}.old"
        if cached.exists():
            cached.rename(old)
        fresh.rename(cached)
        if old.exists():
            shutil.rmtree(old)
        notes.append(f"cache path {path!r} saved")
    return notes


def _copy_tree(source: Path, target: Path) -> None:
    """Copy directories, regular files and links (as links) from source into target, merging over what is there."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(source):
        destination = target / entry.name
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
                destination.unlink()
            _copy_tree(Path(entry.path), destination)
            continue
        if destination.is_symlink() or destination.is_file():
            destination.unlink()
        elif destination.is_dir():
            shutil.rmtree(destination)
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(entry.path), destination)
        elif stat.S_ISREG(mode):
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as reader, open(destination, "wb") as writer:
                shutil.copyfileobj(reader, writer, 1024 * 1024)
            os.chmod(destination, stat.S_IMODE(mode) & 0o777)
