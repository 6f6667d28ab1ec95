"""A build's artifacts: CodeBuild's `files` globs over the workspace, packed into a reproducible zip or a directory.

The workspace was written by the build, so it is read as untrusted: links are never followed (with
`enable-symlinks` they are kept as links, otherwise left out and named), and only regular files are read.
"""

import hashlib
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from releases.buildspec import ArtifactSpec

# Zip entries carry this date, so the same files always make the same bytes (and the same sha256).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ArtifactError(Exception):
    """An artifact that cannot be made as the buildspec asks: UPLOAD_ARTIFACTS fails with this message."""


@dataclass(frozen=True)
class CollectedArtifact:
    identifier: str | None
    name: str
    path: Path
    files: tuple[str, ...]
    size_in_bytes: int
    sha256: str
    skipped_links: tuple[str, ...] = ()


def glob_pattern(pattern: str) -> re.Pattern:
    """CodeBuild's glob as a regular expression over relative paths: `**` spans directories, `*` one name."""
    parts = pattern.strip().removeprefix("./").strip("/").split("/")
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
            continue
        regex += _translate(part) + ("" if last else "/")
    return re.compile(regex + r"\Z")


def _translate(part: str) -> str:
    regex = ""
    index = 0
    while index < len(part):
        char = part[index]
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[" and "]" in part[index + 2 :]:
            end = part.index("]", index + 2)
            body = part[index + 1 : end].replace("\\", "\\\\")
            regex += "[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]"
            index = end
        else:
            regex += re.escape(char)
        index += 1
    return regex


def safe_directory(root: Path, relative: str) -> Path | None:
    """root/relative when no part of it is a link (a build may plant one pointing out); None when missing."""
    path = root
    for part in PurePosixPath(relative).parts if relative else ():
        if part in ("..", "/"):
            return None
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(mode):
            return None
    return path


def walk(root: Path) -> list[tuple[str, str]]:
    """Every regular file and link under root as (relative path, "file" | "link"), never following links."""
    found = []
    for parent, dirs, files in os.walk(root, followlinks=False):
        relative_parent = os.path.relpath(parent, root)
        for name in sorted(dirs + files):
            full = os.path.join(parent, name)
            relative = name if relative_parent == "." else f"{relative_parent}/{name}"
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                found.append((relative, "link"))
            elif stat.S_ISREG(mode):
                found.append((relative, "file"))
    return sorted(found)


def select(entries: list[tuple[str, str]], patterns, exclude=()) -> list[tuple[str, str]]:
    """The entries a pattern matches (or that lie in a directory a pattern names), less the excluded ones."""
    include = [glob_pattern(pattern) for pattern in patterns]
    excluded = [glob_pattern(pattern) for pattern in exclude]

    def matches(regexes, path: str) -> bool:
        parents = [path] + ["/".join(path.split("/")[:depth]) for depth in range(1, path.count("/") + 1)]
        return any(regex.match(candidate) for regex in regexes for candidate in parents)

    return [(path, kind) for path, kind in entries if matches(include, path) and not matches(excluded, path)]


def artifact_name(raw: str | None, default: str) -> str:
    """A file name from the (shell-expanded) `name`: path separators and odd characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._+@=-]+", "-", (raw or "").strip()).strip("-.")
    return name or default


def collect_artifact(
    spec: ArtifactSpec, source_root: Path, destination: Path, *, name: str, packaging: str = "zip"
) -> CollectedArtifact:
    """Pack the files spec selects under source_root into destination/<name>.zip (or the directory destination/<name>)."""
    try:
        return _collect(spec, source_root, destination, name=name, packaging=packaging)
    except OSError as error:
        where = os.path.relpath(error.filename, source_root) if error.filename else "the workspace"
        raise ArtifactError(f"{where}: {error.strerror}")


def _collect(spec: ArtifactSpec, source_root: Path, destination: Path, *, name: str, packaging: str):
    base = safe_directory(source_root, spec.base_directory)
    if base is None:
        raise ArtifactError(f"base-directory {spec.base_directory!r} is not a directory of the source")
    chosen = select(walk(base), spec.files, spec.exclude_paths)
    skipped = tuple(path for path, kind in chosen if kind == "link" and not spec.enable_symlinks)
    chosen = [(path, kind) for path, kind in chosen if kind == "file" or spec.enable_symlinks]
    if not chosen:
        raise ArtifactError(f"no matching artifact paths found for {', '.join(spec.files)}")
    stored: dict[str, tuple[str, str]] = {}
    for path, kind in chosen:
        target = path.rsplit("/", 1)[-1] if spec.discard_paths else path
        if target in stored:
            raise ArtifactError(f"discard-paths makes two files named {target!r} ({stored[target][0]} and {path})")
        stored[target] = (path, kind)
    destination.mkdir(parents=True, exist_ok=True)
    if packaging == "zip":
        output = destination / f"{name}.zip"
        _write_zip(output, base, stored)
        size = output.stat().st_size
        digest = _sha256(output)
    else:
        output = destination / name
        size, digest = _write_directory(output, base, stored)
    return CollectedArtifact(
        identifier=spec.identifier,
        name=name,
        path=output,
        files=tuple(sorted(stored)),
        size_in_bytes=size,
        sha256=digest,
        skipped_links=skipped,
    )


def _open_regular(path: Path):
    """Open a file of the workspace for reading, refusing a link put there since the walk."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{path.name} is not a regular file")
    return os.fdopen(fd, "rb")


def _write_zip(output: Path, base: Path, stored: dict[str, tuple[str, str]]) -> None:
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for target in sorted(stored):
            path, kind = stored[target]
            info = zipfile.ZipInfo(target, date_time=ZIP_DATE)
            info.create_system = 3
            source = base / path
            if kind == "link":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, os.readlink(source))
                continue
            executable = os.lstat(source).st_mode & 0o111
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with _open_regular(source) as reader, archive.open(info, "w") as writer:
                shutil.copyfileobj(reader, writer, 1024 * 1024)


def _write_directory(output: Path, base: Path, stored: dict[str, tuple[str, str]]) -> tuple[int, str]:
    """Copy the files under output; the digest covers names, kinds and contents, like the zip's bytes do."""
    if output.exists():
        shutil.rmtree(output)
    total = 0
    digest = hashlib.sha256()
    for target in sorted(stored):
        path, kind = stored[target]
        destination = output / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        digest.update(f"{kind}\0{target}\0".encode())
        if kind == "link":
            link = os.readlink(base / path)
            os.symlink(link, destination)
            digest.update(link.encode())
            continue
        with _open_regular(base / path) as reader, open(destination, "wb") as writer:
            while chunk := reader.read(1024 * 1024):
                writer.write(chunk)
                digest.update(chunk)
                total += len(chunk)
    return total, digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
