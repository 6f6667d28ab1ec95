"""The code browser's heavy lifting: git data turned into HTML, cached by the object shas it came from.

Anything derived from an immutable object never changes, so it is computed once and kept in Django's cache
under a key made of those shas (plus the repository's URL, which the links inside carry). Views stay thin:
they resolve the ref, ask here, and render a small template around the returned HTML."""

import hashlib
import pickle
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.http import Http404
from django.utils.safestring import SafeString, mark_safe

from repos import git, render

CACHE_VERSION = "3"
CACHE_TIMEOUT = 7 * 24 * 3600
RETRY_TIMEOUT = 300
# A blob bigger than this is shown as "too large" with a link to its raw bytes.
BLOB_DISPLAY_LIMIT = 1024 * 1024
# What the first view of a diff renders at once; the rest loads as the reader scrolls.
DIFF_FIRST_FILES = 20
DIFF_FIRST_LINES = 2000
DIFF_BATCH = 20
# A single file with more changed lines than this stays collapsed behind a "Load diff" button.
DIFF_HUGE_FILE = 1500
# A diff's lines are highlighted side by side (the lines its hunks show of each), so a side showing more than this
# is shown plain, and so is every side past this many bytes highlighted for one render of a diff.
DIFF_HIGHLIGHT_MAX_BYTES = 128 * 1024
DIFF_HIGHLIGHT_BUDGET = 64 * 1024
# The branch and tag menu lists this many tags, newest version first, and links to the rest.
SWITCHER_TAGS = 100


_MISSING = object()


class LocalCache:
    """A small least-recently-used cache in this process, in front of Django's (often shared) cache.

    Nearly every key here names immutable content (object shas, options, names), so a copy kept in the process can
    never be stale, and a repeat view skips the round trip and the unpickling of a large page. The few whose value
    may change under the same key (a URL's kept page, repos.page_cache) are put with replace, and checked before
    each use."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self.entries: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> object:
        with self.lock:
            found = self.entries.get(key)
            if found is None:
                return _MISSING
            self.entries.move_to_end(key)
            return found[0]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.used = 0

    def put(self, key: str, value: object, size: int, *, replace: bool = False) -> None:
        """Keep value under key, unless key is kept already (an immutable value) and replace is not asked for."""
        if size > self.max_bytes // 8:
            return
        with self.lock:
            if key in self.entries:
                if not replace:
                    return
                self.used -= self.entries.pop(key)[1]
            self.entries[key] = (value, size)
            self.used += size
            while self.used > self.max_bytes:
                _key, (_value, evicted) = self.entries.popitem(last=False)
                self.used -= evicted


local_cache = LocalCache(max_bytes=settings.PORTAL_LOCAL_CACHE_MB * 1024 * 1024)


def cache_get(key: str) -> object:
    """A value from this process's cache, else from Django's (and then kept here); _MISSING when neither has it."""
    value = local_cache.get(key)
    if value is _MISSING:
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            local_cache.put(key, value, _size(value))
    return value


def cache_get_many(keys: list[str]) -> dict[str, object]:
    """The values of keys that this process's cache or Django's has, asking Django's once for all it lacks."""
    found, wanted = {}, []
    for key in keys:
        value = local_cache.get(key)
        if value is _MISSING:
            wanted.append(key)
        else:
            found[key] = value
    if wanted:
        for key, value in cache.get_many(wanted).items():
            local_cache.put(key, value, _size(value))
            found[key] = value
    return found


def cache_set(
    key: str, value: object, timeout: int = CACHE_TIMEOUT, *, replace: bool = False, size: int | None = None
) -> None:
    """Keep value in Django's cache now, or once the response is sent if this thread's writes are deferred; and at
    once in this process's cache (size: about how many bytes it holds, when known), where it replaces what key
    held only if replace is asked for (a value that may change under its key; others never do)."""
    pending = getattr(_deferred, "writes", None)
    if pending is None:
        cache.set(key, value, timeout)
    else:
        pending.append((key, value, timeout))
    if timeout >= CACHE_TIMEOUT:
        local_cache.put(key, value, _size(value) if size is None else size, replace=replace)


_deferred = threading.local()


def defer_writes() -> None:
    """Hold this thread's writes to Django's cache until write_deferred(): a page need not wait for them (nor for
    a round trip each) before it is sent. What is written stays readable here meanwhile, in the local cache."""
    if getattr(_deferred, "writes", None):
        write_deferred()
    _deferred.writes = []


def write_deferred() -> None:
    """Send the writes defer_writes() held, one round trip per timeout, and stop holding them."""
    pending, _deferred.writes = getattr(_deferred, "writes", None), None
    by_timeout: dict[int, dict[str, object]] = {}
    for key, value, timeout in pending or ():
        by_timeout.setdefault(timeout, {})[key] = value
    for timeout, values in by_timeout.items():
        cache.set_many(values, timeout)


def _size(value: object) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def cache_key(kind: str, parts: tuple) -> str:
    """A cache key naming everything in parts (shas, options, names), whatever their length or characters."""
    digest = hashlib.sha256(repr(parts).encode("utf-8", "surrogateescape")).hexdigest()
    return f"{kind}:{CACHE_VERSION}:{digest}"


def cached(
    parts: tuple,
    compute: Callable[[], object],
    *,
    keep: Callable[[object], bool] = lambda value: True,
    shared: bool = True,
):
    """compute(), kept under a key made of parts (shas, options, the repository's URL); by this process alone
    unless shared, for what takes about as long to compute as a round trip to the shared cache.

    A value that keep() refuses (an answer cut short, say) is kept only briefly, so a later visit tries again."""
    key = cache_key("code", parts)
    value = cache_get(key) if shared else local_cache.get(key)
    if value is _MISSING:
        value = compute()
        if shared:
            cache_set(key, value, CACHE_TIMEOUT if keep(value) else RETRY_TIMEOUT)
        else:
            local_cache.put(key, value, _size(value))
    return value


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~/-]*")


def quote_path(path: str) -> str:
    """A repository path as a URL path, non-UTF-8 bytes percent-encoded as they are."""
    if _URL_SAFE.fullmatch(path):
        return path
    return quote(git.path_bytes(path), safe="/")


def quote_ref(ref: str) -> str:
    return quote(ref, safe="/")


# Blobs.


@dataclass(frozen=True)
class BlobView:
    """What the blob page shows, in one of these shapes: lines, markdown, image, binary, too_large, empty."""

    shape: str
    size: int
    encoding: str = ""
    lines_html: str = ""
    line_count: int = 0
    markdown_html: str = ""
    image_type: str = ""


def blob_view(path: Path, sha: str, filename: str, *, link_base: str, image_base: str, source: bool = True) -> BlobView:
    """A blob, highlighted, cached by its sha. Markdown is rendered too, and highlighted only when source is asked."""
    return cached(
        ("blob", sha, render_filename(filename), link_base, image_base, source or not render.is_markdown(filename)),
        lambda: _blob_view(path, sha, filename, link_base, image_base, source),
    )


def render_filename(filename: str) -> str:
    """The part of a file name that picks the lexer, so renaming a file in a folder keeps the cache."""
    return git.label(filename.rsplit("/", 1)[-1])


def _blob_view(path: Path, sha: str, filename: str, link_base: str, image_base: str, source: bool) -> BlobView:
    data, size = git.read_blob(path, sha, limit=BLOB_DISPLAY_LIMIT)
    name = render_filename(filename)
    if size == 0:
        return BlobView(shape="empty", size=0)
    if image := render.image_type(name):
        return BlobView(shape="image", size=size, image_type=image)
    if size > BLOB_DISPLAY_LIMIT:
        return BlobView(shape="too_large", size=size)
    decoded = render.decode_text(data)
    if decoded is None:
        return BlobView(shape="binary", size=size)
    text, encoding = decoded
    markdown_html = ""
    if render.is_markdown(name):
        markdown_html = render.render_markdown(text, link_base=link_base, image_base=image_base)
        if not source:
            line_count = text.count("\n") + (not text.endswith("\n"))
            return BlobView(
                shape="lines", size=size, encoding=encoding, line_count=line_count, markdown_html=markdown_html
            )
    lines = render.highlight_lines(text, name)
    return BlobView(
        shape="lines",
        size=size,
        encoding=encoding,
        lines_html=code_table(lines),
        line_count=len(lines),
        markdown_html=markdown_html,
    )


def code_table(lines: list[str]) -> str:
    # The markup per line is kept to a minimum (the number is drawn by CSS from data-line): a file of a few
    # thousand lines is most of a megabyte of HTML already.
    rows = "".join(f'<tr id="L{n}"><td data-line="{n}"></td><td>{line}</td></tr>' for n, line in enumerate(lines, 1))
    return f'<table class="code blob-code">{rows}</table>'


# The listing of a directory of up to this many entries is kept by each process alone: listing it again takes
# about as long as asking the shared cache for it, and its first view is spared that round trip and the write.
SHARED_LISTING_ENTRIES = 100


def directory(path: Path, tree_sha: str, dir_path: str, *, prefix: str, ref: str) -> tuple[str, tuple | None]:
    """A directory's listing (the rows of its table, with links under prefix /<owner>/<repo> at ref) and its
    README (name and rendered view, kept by the blob's sha) or None: read from one listing of the tree and kept
    by its sha, in the shared cache for a large directory, in this process for a small one."""
    return cached(
        ("directory", tree_sha, dir_path, prefix, ref),
        lambda: _directory(path, tree_sha, dir_path, prefix, ref),
        shared=git.tree_size(path, tree_sha) > SHARED_LISTING_ENTRIES,
    )


def _directory(path: Path, tree_sha: str, dir_path: str, prefix: str, ref: str) -> tuple[str, tuple | None]:
    entries = git.tree_entries(path, tree_sha, dir_path)
    return _tree_html(entries, dir_path, prefix, ref), _readme(path, entries, dir_path, prefix, ref)


def _readme(path: Path, entries: list, dir_path: str, prefix: str, ref: str) -> tuple[str, BlobView] | None:
    """The README a directory's page shows under its listing (name and view), its links relative to the folder."""
    candidates = [e for e in entries if e.kind == "blob" and e.name.lower().split(".")[0] == "readme"]
    if not candidates:
        return None
    chosen = min(candidates, key=lambda e: (not render.is_markdown(e.name), e.name))
    base = f"{quote_ref(ref)}/{quote_path(dir_path)}/" if dir_path else f"{quote_ref(ref)}/"
    link_base, image_base = f"{prefix}/blob/{base}", f"{prefix}/raw/{base}"
    view = blob_view(path, chosen.sha, chosen.name, link_base=link_base, image_base=image_base, source=False)
    return chosen.label, view


# A push has the READMEs of at most this many of the directories it changed rendered ahead of their readers.
PREPARED_DIRECTORIES = 300


def prepare_readmes(path: Path, commit_sha: str, old_commit_sha: str | None, *, prefix: str, ref: str) -> int:
    """Render and keep, before anyone opens them, the READMEs of the directories that changed from old_commit_sha
    to commit_sha (every directory of a new branch, up to PREPARED_DIRECTORIES), as their pages at ref under prefix
    show them: a README is most of the time of a directory's first view (Markdown takes milliseconds), and its
    view is kept by the blob's sha, so the page finds it. Returns how many directories hold one."""
    found = 0
    for dir_path, tree_sha in git.changed_trees(path, commit_sha, old_commit_sha, limit=PREPARED_DIRECTORIES):
        found += _readme(path, git.tree_entries(path, tree_sha, dir_path), dir_path, prefix, ref) is not None
    return found


def _tree_html(entries: list, dir_path: str, prefix: str, ref: str) -> str:
    rows = []
    at_ref = f"{quote_ref(ref)}/"
    if dir_path:
        parent = dir_path.rsplit("/", 1)[0] if "/" in dir_path else ""
        rows.append(
            f'<tr><td class="icon"></td><td class="name"><a href="{prefix}/tree/{at_ref}{quote_path(parent)}">..</a>'
            "</td><td></td><td></td></tr>"
        )
        at_ref += f"{quote_path(dir_path)}/"
    # An entry's link is the folder's, quoted once, and its name, quoted (which leaves nothing to escape in HTML).
    bases = {"tree": f"{prefix}/tree/{at_ref}", "blob": f"{prefix}/blob/{at_ref}", "symlink": f"{prefix}/blob/{at_ref}"}
    for entry in entries:
        name, quoted = escape(entry.label), quote_path(entry.name)
        if entry.kind == "submodule":
            link = f'<span class="submodule">{name}</span> <span class="muted">@ {entry.sha[:7]}</span>'
        else:
            link = f'<a href="{bases[entry.kind]}{quoted}">{name}</a>'
            if entry.kind == "symlink":
                link += ' <span class="badge">symlink</span>'
        rows.append(
            f'<tr data-name="{quoted}"><td class="icon"><span class="icon-{entry.kind}" title="{entry.kind}"></span></td>'
            f'<td class="name">{link}</td><td class="message muted"></td><td class="age muted"></td></tr>'
        )
    return "".join(rows)


class Busy(Exception):
    """Every slot for a slow computation is taken; the caller should try again shortly."""


# Finding a directory's last commits can walk a long history; a process runs at most this many at once, so a
# burst of uncached directories cannot take every web thread.
_LAST_COMMITS_SLOTS = threading.BoundedSemaphore(2)


def last_commits(path: Path, commit_sha: str, dir_path: str) -> tuple[dict[str, dict], bool]:
    """Each entry's newest commit as plain data (for the page's script), and whether every entry has one.

    Raises Busy when the process is already computing as many as it allows."""

    def compute() -> tuple[dict[str, dict], bool]:
        if not _LAST_COMMITS_SLOTS.acquire(blocking=False):
            raise Busy
        try:
            found, complete = git.last_commits(path, commit_sha, dir_path)
        finally:
            _LAST_COMMITS_SLOTS.release()
        data = {
            quote_path(name): {
                "sha": c.sha,
                "summary": c.summary,
                "when": c.committer.when.isoformat(),
                "author": c.author.name,
            }
            for name, c in found.items()
        }
        return data, complete

    return cached(("last-commits", commit_sha, dir_path), compute, keep=lambda value: value[1])


# History.


def commit_rows(commits: list[git.Commit], *, prefix: str) -> str:
    rows = []
    for c in commits:
        rows.append(
            f'<li class="commit"><div class="grow"><a class="summary" href="{prefix}/commit/{c.sha}">{escape(c.summary)}</a>'
            f'<div class="muted small">{escape(c.author.name)} committed '
            f"{ago(c.committer.when)}</div></div>"
            f'<span class="commit-status" data-status-sha="{c.sha}"></span>'
            f'<a class="sha mono" href="{prefix}/commit/{c.sha}">{c.sha[:7]}</a>'
            f'<a class="button small" href="{prefix}/tree/{c.sha}" title="Browse the files at this commit">Browse</a></li>'
        )
    return "".join(rows)


def compare_commits(path: Path, base_sha: str, head_sha: str, *, prefix: str) -> tuple[int, str]:
    """How many commits head has that base lacks, and their list (oldest first), cached by both shas."""

    def compute() -> tuple[int, str]:
        found = git.commits_between(path, base_sha, head_sha)
        rows = "".join(
            f'<li class="commit"><a class="grow" href="{prefix}/commit/{c.sha}">{escape(c.summary)}</a> '
            f'<span class="muted small">{escape(c.author.name)}</span> '
            f'<a class="sha mono" href="{prefix}/commit/{c.sha}">{c.sha[:7]}</a></li>'
            for c in found
        )
        return len(found), rows

    return cached(("compare-commits", base_sha, head_sha, prefix), compute)


# Diffs.


def fragment_range(query) -> tuple[range, bool] | None:
    """Which files of a diff a lazy request wants (?start=&count= for a batch, ?file= for one large file, which
    is then shown whole), or None for the page itself; Http404 for a range that names no files."""
    try:
        if "file" in query:
            index = int(query["file"])
            wanted = range(index, index + 1), True
        elif "start" in query:
            start, count = int(query["start"]), int(query.get("count", DIFF_BATCH))
            wanted = range(start, start + min(max(count, 1), 100)), False
        else:
            return None
    except ValueError:
        raise Http404("Bad file range.") from None
    if wanted[0].start < 0:
        raise Http404("Bad file range.")
    return wanted


@dataclass(frozen=True)
class DiffOptions:
    view: str = "unified"  # or "split"
    ignore_whitespace: bool = False

    @classmethod
    def from_query(cls, query) -> "DiffOptions":
        return cls(
            view="split" if query.get("view") == "split" else "unified",
            ignore_whitespace=query.get("w") == "1",
        )


@dataclass(frozen=True)
class DiffPage:
    file_count: int
    additions: int
    deletions: int
    files_html: str  # the list of files with their +/- counts, linking to each
    html: str  # the files: the first ones in full, the rest as placeholders that load as the reader scrolls


def diff_page(path: Path, old: str, new: str, options: DiffOptions, *, prefix: str, page_url: str) -> DiffPage:
    """The first view of a diff: the file list, the first files in full, the others as lazy placeholders."""
    return cached(
        ("diff-page", old, new, options, prefix, page_url),
        lambda: _diff_page(path, old, new, options, prefix, page_url),
    )


def diff_files(path: Path, old: str, new: str, ignore_whitespace: bool) -> list[git.FileDiff]:
    """Every file of a diff with its counts but no hunks: the list that the page and its later batches share."""
    return cached(
        _diff_files_parts(old, new, ignore_whitespace),
        lambda: git.diff(path, old, new, ignore_whitespace=ignore_whitespace),
    )


def _diff_files_parts(old: str, new: str, ignore_whitespace: bool) -> tuple:
    return ("diff-files", old, new, ignore_whitespace)


def changed_file_count(path: Path, old: str, new: str) -> int:
    """How many files a diff changes (renames found), for a tab's counter: a tree walk, without counting lines."""
    return cached(("changed-files", old, new), lambda: git.changed_file_count(path, old, new))


def _fill(path: Path, files: list[git.FileDiff], indexes: list[int], options: DiffOptions) -> None:
    """Give the files at these indexes their hunks."""
    filled = git.with_hunks(path, [files[i] for i in indexes], ignore_whitespace=options.ignore_whitespace)
    for index, file in zip(indexes, filled, strict=True):
        files[index] = file


class _FirstFiles:
    """Which files a diff's first view shows in full: of its first DIFF_FIRST_FILES, those not huge, until
    DIFF_FIRST_LINES changed lines are shown. Asked about each file in order."""

    def __init__(self):
        self.lines = 0

    def __call__(self, index: int, file: git.FileDiff) -> bool:
        if index >= DIFF_FIRST_FILES or self.lines >= DIFF_FIRST_LINES or file.changes > DIFF_HUGE_FILE:
            return False
        self.lines += file.changes
        return True


def _diff_page(path: Path, old: str, new: str, options: DiffOptions, prefix: str, page_url: str) -> DiffPage:
    key = cache_key("code", _diff_files_parts(old, new, options.ignore_whitespace))
    known = cache_get(key)
    if known is _MISSING:
        # The first time: the files shown in full get their hunks from the same diff, the others only counts.
        files = git.diff(path, old, new, ignore_whitespace=options.ignore_whitespace, hunks_for=_FirstFiles())
        cache_set(key, [replace(file, hunks=()) for file in files])
    else:
        files = list(known)
        wanted = _FirstFiles()
        _fill(path, files, [index for index, file in enumerate(files) if wanted(index, file)], options)
    cutoff = next((i for i, file in enumerate(files) if i >= DIFF_FIRST_FILES or _waits(file)), len(files))
    highlighter = DiffHighlighter(path, files[:cutoff])
    parts = []
    for index, file in enumerate(files):
        if index < cutoff:
            sides = highlighter.sides(file)
            parts.append(file_html(file, index, options, prefix=prefix, ref=new, page_url=page_url, sides=sides))
        else:
            batch = cutoff + (index - cutoff) // DIFF_BATCH * DIFF_BATCH
            parts.append(_pending_html(file, index, f"{page_url}start={batch}&count={DIFF_BATCH}"))
    files_html = "".join(
        f'<li><a href="#diff-{index}" data-file-anchor>{escape(file.label)}</a> {_stat(file)}</li>'
        for index, file in enumerate(files)
    )
    return DiffPage(
        file_count=len(files),
        additions=sum(file.additions for file in files),
        deletions=sum(file.deletions for file in files),
        files_html=files_html,
        html="".join(parts),
    )


def _stat(file: git.FileDiff) -> str:
    return f'<span class="diff-stat"><span class="add">+{file.additions}</span> <span class="del">−{file.deletions}</span></span>'


def _waits(file: git.FileDiff) -> bool:
    """A file the first view did not load: it has lines to show, not too many, and no hunks yet."""
    return not file.hunks and not file.binary and 0 < file.changes <= DIFF_HUGE_FILE


def diff_fragment(
    path: Path, old: str, new: str, options: DiffOptions, indexes: range, *, prefix: str, page_url: str, expand: bool
) -> str:
    """Files of a diff rendered in full, for the lazy loader (a batch) or the "Load diff" button (one huge file)."""

    def compute() -> str:
        files = list(diff_files(path, old, new, options.ignore_whitespace))
        wanted = [i for i in indexes if i < len(files)]
        _fill(path, files, [i for i in wanted if expand or files[i].changes <= DIFF_HUGE_FILE], options)
        highlighter = DiffHighlighter(path, [files[i] for i in wanted])
        return "".join(
            file_html(
                files[i], i, options, prefix=prefix, ref=new, page_url=page_url, sides=highlighter.sides(files[i])
            )
            for i in wanted
        )

    return cached(("diff-fragment", old, new, options, indexes.start, indexes.stop, expand, prefix, page_url), compute)


STATUS_LABELS = {
    "added": "added",
    "deleted": "deleted",
    "renamed": "renamed",
    "copied": "copied",
    "typechange": "type changed",
}


# The highlighted lines of a diff's old and new files (None for a side shown plain).
Sides = tuple[list[str] | None, list[str] | None]


class DiffHighlighter:
    """Highlights the lines a diff shows of each file, for one render, within DIFF_HIGHLIGHT_BUDGET.

    Pygments takes about 0.2 ms a line: highlighting the two whole files behind each changed file made the first
    view of a commit of twenty source files take seconds. Only the lines the hunks show of each side are
    highlighted, in one pass a side (the hunks in file order, so that a comment or string the lexer sees open stays
    open), from the diff's own text, and cached by the blob's sha, its lexer and those lines' numbers: the same
    change in a compare or a pull request costs nothing again. Of the old side only the deleted lines are
    highlighted: context lines, the same text on both sides, show the new side's colours. What a render
    highlights depends only on the sizes of the hunks, so the sides of all its files are looked up in the cache
    at once."""

    def __init__(self, path: Path, files: list[git.FileDiff]):
        self.path = path
        budget = DIFF_HIGHLIGHT_BUDGET
        # Each file's two sides: the cache key, file name, line numbers and text of what is highlighted, or None.
        self.plans: dict[int, tuple] = {}
        for file in files:
            plan = self._plan(file, budget)
            budget -= sum(side[4] for side in plan if side is not None)
            self.plans[id(file)] = plan
        keys = [side[0] for plan in self.plans.values() for side in plan if side is not None]
        self.found = cache_get_many(keys)

    def _plan(self, file: git.FileDiff, budget: int) -> tuple:
        if file.binary or not file.hunks:
            return None, None
        lines = [line for hunk in file.hunks for line in hunk.lines]
        old = {line.old_number: line.text for line in lines if line.origin == "-" and line.old_number}
        new = {line.new_number: line.text for line in lines if line.origin in " +" and line.new_number}
        old_side = self._side(file.old_sha, file.old_path, old, budget)
        new_side = self._side(file.new_sha, file.new_path, new, budget - (old_side[4] if old_side else 0))
        return old_side, new_side

    @staticmethod
    def _side(sha: str, filename: str, shown: dict[int, str], budget: int) -> tuple | None:
        name = render_filename(filename)
        lexer = render.lexer_name(name)
        if not sha.strip("0") or lexer is None or not shown:
            return None
        numbers = sorted(shown)
        excerpt = "".join(shown[number] + "\n" for number in numbers)
        size = len(excerpt.encode("utf-8", "surrogatepass"))
        if size > DIFF_HIGHLIGHT_MAX_BYTES or size > budget:
            return None
        return cache_key("code", ("diff-lines", sha, lexer, _ranges(numbers))), name, numbers, excerpt, size

    def sides(self, file: git.FileDiff) -> Sides:
        """The highlighted lines of one of the files given at the start."""
        return tuple(self._lines(side) for side in self.plans.get(id(file), (None, None)))

    def _lines(self, side: tuple | None) -> list[str | None] | None:
        if side is None:
            return None
        key, name, numbers, excerpt, _size = side
        if key not in self.found:
            self.found[key] = _by_number(numbers, render.highlight_lines(excerpt, name))
            cache_set(key, self.found[key])
        return self.found[key]


def _by_number(numbers: list[int], rendered: list[str]) -> list[str | None] | None:
    """Highlighted lines placed by their line numbers (index 0 is line 1), None where the diff shows no line."""
    if len(rendered) != len(numbers):
        return None
    lines: list[str | None] = [None] * numbers[-1]
    for number, html in zip(numbers, rendered, strict=True):
        lines[number - 1] = html
    return lines


def _ranges(numbers: list[int]) -> tuple[tuple[int, int], ...]:
    """Ascending line numbers as ranges of consecutive lines."""
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return tuple((first, last) for first, last in ranges)


def file_html(
    file: git.FileDiff,
    index: int,
    options: DiffOptions,
    *,
    prefix: str,
    ref: str,
    page_url: str,
    sides: Sides = (None, None),
) -> str:
    header = _file_header(file, index, prefix=prefix, ref=ref)
    scroll = ""
    if file.binary:
        body = '<div class="diff-note muted">Binary file not shown.</div>'
    elif not file.hunks and file.changes > DIFF_HUGE_FILE:
        body = (
            f'<button type="button" class="diff-load" data-fragment-url="{escape(page_url)}file={index}">Load diff</button> '
            f'<span class="muted">This diff is large ({file.changes:,} changed lines).</span>'
        )
    elif not file.hunks:
        note = "File renamed without changes." if file.status == "renamed" else "No changes to show."
        if file.mode_changed and not file.changes:
            note = "File mode changed."
        body = f'<div class="diff-note muted">{note}</div>'
    else:
        rows = _split_rows(file, sides) if options.view == "split" else _unified_rows(file, sides)
        body = f'<table class="code diff-table diff-{options.view}">{rows}</table>'
        # A diff wider than the screen scrolls inside its box, which keyboard users can only do once it takes focus.
        scroll = f' tabindex="0" role="region" aria-label="Changes to {escape(file.label)}"'
    return (
        f'<div class="diff-file" id="diff-{index}" data-path="{escape(quote_path(file.path))}">{header}'
        f'<div class="diff-body"{scroll}>{body}</div></div>'
    )


def _file_header(file: git.FileDiff, index: int, *, prefix: str, ref: str) -> str:
    name = escape(file.label)
    if file.status in ("renamed", "copied") and file.old_path != file.new_path:
        name = f"{escape(file.old_label)} → {name}"
    badges = ""
    if file.status in STATUS_LABELS:
        badges += f' <span class="badge status-{file.status}">{STATUS_LABELS[file.status]}</span>'
    if file.mode_changed:
        badges += f' <span class="badge">mode {file.old_mode:o} → {file.new_mode:o}</span>'
    view = ""
    if file.status != "deleted":
        view = f' <a class="small" href="{prefix}/blob/{quote_ref(ref)}/{quote_path(file.new_path)}">View file</a>'
    return (
        '<div class="diff-file-header"><button type="button" class="diff-toggle" aria-expanded="true" aria-label="Show or hide this file">▾</button> '
        f'<span class="diff-path">{name}</span>{badges} '
        f"{_stat(file)}{view}</div>"
    )


def _pending_html(file: git.FileDiff, index: int, url: str) -> str:
    return (
        f'<div class="diff-file diff-pending" id="diff-{index}" data-path="{escape(quote_path(file.path))}" '
        f'data-fragment-url="{escape(url)}">{_pending_header(file)}'
        '<div class="diff-body diff-placeholder muted">Loading…</div></div>'
    )


def _pending_header(file: git.FileDiff) -> str:
    return f'<div class="diff-file-header"><span class="diff-path">{escape(file.label)}</span> {_stat(file)}</div>'


def _pairs(hunk: git.Hunk):
    """The hunk's lines in order, with each run of deletions matched to the run of additions after it."""
    lines = hunk.lines
    i = 0
    while i < len(lines):
        if lines[i].origin == " ":
            yield [lines[i]], []
            i += 1
            continue
        dels, adds = [], []
        while i < len(lines) and lines[i].origin == "-":
            dels.append(lines[i])
            i += 1
        while i < len(lines) and lines[i].origin == "+":
            adds.append(lines[i])
            i += 1
        yield dels, adds


def _line_html(side: list[str] | None, number: int | None, text: str, marks=(), tag: str = "") -> str:
    highlighted = side[number - 1] if side is not None and number and number <= len(side) else None
    return render.diff_line(text, highlighted, marks, tag)


def _marked(dels: list[git.DiffLine], adds: list[git.DiffLine], sides: Sides) -> tuple[list[str], list[str]]:
    """Deleted and added lines as HTML, highlighted, changed words marked where the two runs pair up line by line."""
    old_marks: list = [()] * len(dels)
    new_marks: list = [()] * len(adds)
    for k in range(min(len(dels), len(adds))):
        old_marks[k], new_marks[k] = render.intraline_marks(dels[k].text, adds[k].text)
    old = [
        _line_html(sides[0], line.old_number, line.text, marks, "del")
        for line, marks in zip(dels, old_marks, strict=True)
    ]
    new = [
        _line_html(sides[1], line.new_number, line.text, marks, "ins")
        for line, marks in zip(adds, new_marks, strict=True)
    ]
    return old, new


def _context_html(line: git.DiffLine, sides: Sides) -> str:
    return _line_html(sides[1], line.new_number, line.text)


def _num(n: int | None) -> str:
    return "" if n is None else str(n)


def _unified_rows(file: git.FileDiff, sides: Sides = (None, None)) -> str:
    out = []
    for hunk in file.hunks:
        out.append(
            f'<tr class="diff-hunk"><td class="line-num"></td><td class="line-num"></td>'
            f'<td class="line-code">{escape(hunk.header)}</td></tr>'
        )
        for dels, adds in _pairs(hunk):
            if dels and dels[0].origin == " ":
                line = dels[0]
                out.append(
                    f'<tr class="diff-ctx"><td class="line-num">{_num(line.old_number)}</td>'
                    f'<td class="line-num">{_num(line.new_number)}</td><td class="line-code"> {_context_html(line, sides)}</td></tr>'
                )
                continue
            old, new = _marked(dels, adds, sides)
            for line, html in zip(dels, old, strict=True):
                out.append(
                    f'<tr class="diff-del"><td class="line-num">{line.old_number}</td><td class="line-num"></td>'
                    f'<td class="line-code">-{html}</td></tr>'
                )
            for line, html in zip(adds, new, strict=True):
                out.append(
                    f'<tr class="diff-add"><td class="line-num"></td><td class="line-num">{line.new_number}</td>'
                    f'<td class="line-code">+{html}</td></tr>'
                )
    return "".join(out)


def _split_rows(file: git.FileDiff, sides: Sides = (None, None)) -> str:
    out = []
    empty = '<td class="line-num diff-empty"></td><td class="line-code diff-empty"></td>'
    for hunk in file.hunks:
        out.append(
            f'<tr class="diff-hunk"><td class="line-num"></td><td class="line-code" colspan="3">{escape(hunk.header)}</td></tr>'
        )
        for dels, adds in _pairs(hunk):
            if dels and dels[0].origin == " ":
                line = dels[0]
                left = right = _context_html(line, sides)
                out.append(
                    f'<tr class="diff-ctx"><td class="line-num">{line.old_number}</td><td class="line-code">{left}</td>'
                    f'<td class="line-num">{line.new_number}</td><td class="line-code">{right}</td></tr>'
                )
                continue
            old, new = _marked(dels, adds, sides)
            for k in range(max(len(dels), len(adds))):
                left = (
                    f'<td class="line-num">{dels[k].old_number}</td><td class="line-code diff-del">{old[k]}</td>'
                    if k < len(dels)
                    else empty
                )
                right = (
                    f'<td class="line-num">{adds[k].new_number}</td><td class="line-code diff-add">{new[k]}</td>'
                    if k < len(adds)
                    else empty
                )
                out.append(f"<tr>{left}{right}</tr>")
    return "".join(out)


# Blame.


def blame_html(path: Path, commit_sha: str, file_path: str, blob_sha: str, *, prefix: str) -> tuple[str, int]:
    """The blame table (commit, author, age per hunk; highlighted code), cached by commit and path."""
    return cached(
        ("blame", commit_sha, file_path, prefix), lambda: _blame_html(path, commit_sha, file_path, blob_sha, prefix)
    )


def _blame_html(path: Path, commit_sha: str, file_path: str, blob_sha: str, prefix: str) -> tuple[str, int]:
    data, size = git.read_blob(path, blob_sha, limit=BLOB_DISPLAY_LIMIT)
    decoded = render.decode_text(data) if size <= BLOB_DISPLAY_LIMIT else None
    if decoded is None:
        return "", 0
    hunks, commits = git.blame(path, commit_sha, file_path)
    lines = render.highlight_lines(decoded[0], render_filename(file_path))
    times = sorted(c.committer.when for c in commits.values())
    oldest, newest = (times[0], times[-1]) if times else (None, None)
    span = (newest - oldest).total_seconds() if times else 0
    out = []
    for hunk in hunks:
        c = commits[hunk.sha]
        age = 9 if not span else round(9 * (c.committer.when - oldest).total_seconds() / span)
        for offset in range(hunk.count):
            n = hunk.start + offset
            code = lines[n - 1] if n - 1 < len(lines) else ""
            if offset == 0:
                info = (
                    f'<td class="blame-commit" rowspan="{hunk.count}" data-age="{age}">'
                    f'<a href="{prefix}/commit/{c.sha}" title="{escape(c.summary)}">{escape(_shorten(c.summary, 50))}</a>'
                    f'<div class="muted small">{escape(c.author.name)} · '
                    f"{ago(c.committer.when)}</div></td>"
                )
                out.append(
                    f'<tr id="L{n}" class="blame-hunk-start">{info}<td data-line="{n}"></td><td>{code}</td></tr>'
                )
            else:
                out.append(f'<tr id="L{n}"><td data-line="{n}"></td><td>{code}</td></tr>')
    return f'<table class="code blame blob-code">{"".join(out)}</table>', len(lines)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ago(when: datetime) -> str:
    """A date that stays true in a cached page: absolute here, made relative ("3 days ago") by code.js."""
    return f'<time class="ago" datetime="{when.isoformat()}" title="{when:%Y-%m-%d %H:%M %Z}">{when:%Y-%m-%d}</time>'


def safe(html: str) -> SafeString:
    """HTML built in this module from escaped parts."""
    return mark_safe(html)  # noqa: S308


# The branch and tag switcher.


def ref_switcher(*, menu_url: str, ref: git.Ref) -> SafeString:
    """The branch and tag menu's button; the menu itself (ref_menu) is fetched when it is first opened."""
    label = ref.name[:7] if ref.is_sha else ref.name
    return safe(
        f'<details class="ref-switcher" data-menu-url="{escape(menu_url)}"><summary><span class="muted">{ref.kind}:</span> '
        f'<strong>{escape(label)}</strong></summary><div class="ref-menu muted">Loading…</div></details>'
    )


def ref_menu(path: Path, *, prefix: str, page: str, file_path: str) -> str:
    """Every branch and the newest tags, each linking to the same page and path at that ref.

    Sorting a thousand tags by version takes a while, so the menu is cached under the set of ref names."""
    names = sorted(git.ref_names(path))
    return cached(
        ("ref-menu", tuple(names), prefix, page, file_path), lambda: _ref_menu(names, prefix, page, file_path)
    )


def _ref_menu(names: list[str], prefix: str, page: str, file_path: str) -> str:
    suffix = f"/{quote_path(file_path)}" if file_path else ""
    branches = [name.removeprefix("refs/heads/") for name in names if name.startswith("refs/heads/")]
    tags = sorted(
        (name.removeprefix("refs/tags/") for name in names if name.startswith("refs/tags/")), key=git.version_key
    )
    tags.reverse()

    def items(shown: list[str]) -> str:
        return "".join(
            f'<li data-name="{escape(name)}"><a href="{prefix}/{page}/{quote_ref(name)}{suffix}">{escape(name)}</a></li>'
            for name in shown
        )

    more = f'<li><a href="{prefix}/tags">All {len(tags)} tags…</a></li>' if len(tags) > SWITCHER_TAGS else ""
    return (
        '<div class="ref-menu"><input type="search" placeholder="Filter branches and tags" aria-label="Filter">'
        f"<h4>Branches</h4><ul>{items(branches)}</ul><h4>Tags</h4><ul>{items(tags[:SWITCHER_TAGS])}{more}</ul></div>"
    )
