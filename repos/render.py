"""Git data (bytes or text) turned into safe HTML fragments for the code browser.

Nothing here touches git, the database or the cache: callers pass the data in and cache the
result by object sha, since an object named by a sha never changes.
"""

import codecs
import difflib
import fnmatch
import functools
import html
import itertools
import re
from typing import ClassVar

import markdown
import nh3
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_for_filename, get_all_lexers
from pygments.lexers.special import TextLexer
from pygments.style import Style
from pygments.token import STANDARD_TYPES as _PYGMENTS_CLASSES
from pygments.token import (
    Comment,
    Error,
    Generic,
    Keyword,
    Literal,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Token,
)

BINARY_SNIFF = 8000  # bytes looked at for a NUL
HIGHLIGHT_MAX_BYTES = 512 * 1024
HIGHLIGHT_MAX_LINES = 20_000
INTRALINE_MAX_CHARS = 500
INTRALINE_MIN_RATIO = 0.3
CSS_SCOPE = ".code"


# Encodings


def is_binary(data: bytes) -> bool:
    """Whether the data has a NUL byte where git itself looks for one."""
    return b"\0" in data[:BINARY_SNIFF]


def decode_text(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) or None when binary.

    UTF-8 (a UTF-8 BOM stripped) gives "utf-8"; UTF-16 with a BOM gives "utf-16"; anything else is
    a guess: "windows-1252" when that decodes, else "iso-8859-1", which never fails.
    """
    # UTF-16 text is full of NUL bytes, so its BOM is looked at before the binary sniff. Bytes
    # that only start like a BOM but do not decode are left to the binary sniff.
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    if is_binary(data):
        return None
    body = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("windows-1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("iso-8859-1"), "iso-8859-1"


# Syntax highlighting


class _GitHubLightStyle(Style):
    """Colours close to GitHub's light theme, on a white background."""

    name = "portal-light"
    background_color = "#ffffff"
    highlight_color = "#fff8c5"

    styles = {
        Token: "#1f2328",
        Text: "",
        Error: "#82071e",
        Comment: "#6e7781",
        Comment.Preproc: "#cf222e",
        Comment.PreprocFile: "#0a3069",
        Keyword: "#cf222e",
        Keyword.Constant: "#0550ae",
        Keyword.Type: "#cf222e",
        Operator: "#1f2328",
        Operator.Word: "#cf222e",
        Punctuation: "#1f2328",
        Name.Attribute: "#0550ae",
        Name.Builtin: "#8250df",
        Name.Builtin.Pseudo: "#0550ae",
        Name.Class: "#953800",
        Name.Constant: "#0550ae",
        Name.Decorator: "#8250df",
        Name.Entity: "#0550ae",
        Name.Exception: "#953800",
        Name.Function: "#8250df",
        Name.Label: "#0550ae",
        Name.Namespace: "#953800",
        Name.Tag: "#116329",
        Name.Variable: "#953800",
        Literal: "#0550ae",
        Number: "#0550ae",
        String: "#0a3069",
        String.Escape: "#0550ae",
        String.Regex: "#116329",
        String.Symbol: "#0550ae",
        Generic.Deleted: "#82071e bg:#ffebe9",
        Generic.Inserted: "#116329 bg:#dafbe1",
        Generic.Heading: "bold #0550ae",
        Generic.Subheading: "bold #0550ae",
        Generic.Emph: "italic",
        Generic.Strong: "bold",
        Generic.Error: "#82071e",
        Generic.Traceback: "#82071e",
        Generic.Prompt: "#6e7781",
        Generic.Output: "#6e7781",
    }


# One formatter for every call: it is reentrant, and building one computes the whole style table.
_FORMATTER = HtmlFormatter(nowrap=True, style=_GitHubLightStyle)

# Lexer options: keep leading and trailing blank lines, since every line of the file gets a number.
_LEXER_OPTIONS = {"stripnl": False, "ensurenl": True}


@functools.lru_cache(maxsize=2048)
def _lexer_class(basename: str) -> type[Lexer]:
    # Only the name decides: guessing from the content costs time and turns a README into Perl.
    patterns = _matching_patterns(basename)
    lexer = _lexers_by_patterns.get(patterns)
    if lexer is None:
        if len(_lexers_by_patterns) >= 4096:
            _lexers_by_patterns.clear()
        # This name stands for every name that matches the same patterns.
        lexer = _lexers_by_patterns[patterns] = find_lexer_class_for_filename(basename) or TextLexer
    return lexer


# Pygments finds a file name's lexer by trying each of its 900 file patterns, and the plugins' (1.5 ms a name, a
# good part of a commit's first view). Its choice depends only on which patterns match: of the "*.ext" ones, those
# of the name's last extension; of the others (names such as Makefile, patterns such as *.[1-9]), those tried.
_EXTENSION_PATTERN = re.compile(r"\*\.[^*?\[\].]+")
_lexers_by_patterns: dict[tuple[str, frozenset[str]], type[Lexer]] = {}


@functools.cache
def _other_patterns() -> tuple[frozenset[str], tuple[tuple[re.Pattern, str], ...]]:
    """The file patterns of Pygments' lexers (and plugins') that are no "*.ext": plain names, and the others."""
    names, globs = set(), []
    for _name, _aliases, patterns, _mimetypes in get_all_lexers(plugins=True):
        for pattern in patterns:
            if _EXTENSION_PATTERN.fullmatch(pattern):
                continue
            if any(wildcard in pattern for wildcard in "*?["):
                globs.append((re.compile(fnmatch.translate(pattern)), pattern))
            else:
                names.add(pattern)
    return frozenset(names), tuple(globs)


def _matching_patterns(basename: str) -> tuple[str, frozenset[str]]:
    """What decides a file name's lexer: its last extension, and the patterns other than "*.ext" it matches."""
    names, globs = _other_patterns()
    matched = {pattern for regex, pattern in globs if regex.match(basename)}
    if basename in names:
        matched.add(basename)
    return basename.rpartition(".")[2] if "." in basename else "", frozenset(matched)


def _lexer_for(filename: str) -> Lexer:
    basename = filename.rsplit("/", 1)[-1]
    return _lexer_class(basename)(**_LEXER_OPTIONS)


def _split_lines(text: str) -> list[str]:
    # Lines end at "\n" only, as in git; str.splitlines() would also break at form feeds and
    # Unicode separators and number the lines differently from diffs and blame.
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _escape_lines(lines: list[str]) -> list[str]:
    return [html.escape(line) for line in lines]


def highlight_lines(text: str, filename: str) -> list[str]:
    """One HTML fragment per line of text, highlighted by the lexer that the file name picks."""
    if "\r" in text:
        # Browsers and Pygments both take a lone carriage return for a line break, which would put
        # the lines out of step with their numbers; it is shown as a visible symbol instead.
        text = text.replace("\r\n", "\n").replace("\r", "\u240d")
    lines = _split_lines(text)
    if not lines:
        return []
    # A text longer in characters is certainly longer in bytes, which saves encoding a huge text.
    too_big = len(text) > HIGHLIGHT_MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > HIGHLIGHT_MAX_BYTES
    if too_big or len(lines) > HIGHLIGHT_MAX_LINES:
        return _escape_lines(lines)
    lexer = _lexer_for(filename)
    if isinstance(lexer, TextLexer):
        return _escape_lines(lines)
    # The formatter closes and reopens spans at every newline, so each line of its output stands alone.
    rendered = highlight(text, lexer, _FORMATTER).split("\n")
    if rendered[-1] == "":
        rendered.pop()
    # Should a lexer ever add or drop a line, the numbers would no longer match git's: plain text is safer.
    if len(rendered) != len(lines):
        return _escape_lines(lines)
    return rendered


# The kinds of files whose lexers a web process loads when it starts: each lexer compiles its rules on first use.
WARM_FILENAMES = (
    "a.c", "a.h", "a.cc", "a.py", "a.js", "a.ts", "a.go", "a.rs", "a.java", "a.rb", "a.pl", "a.sh", "a.md", "a.yml",
    "a.json", "a.toml", "a.html", "a.css", "a.adoc", "Makefile", "Dockerfile",
)  # fmt: skip


# The languages READMEs' code blocks name most, besides those of the files above (a.pl is Prolog's).
WARM_CODE_BLOCKS = ("shell", "console", "perl", "sql", "diff", "ini", "text")


def warm_up() -> None:
    """Find a lexer once (which reads every lexer's file patterns), load the common ones, and render Markdown with
    a code block of each common language."""
    for filename in WARM_FILENAMES:
        highlight_lines("x = 1\n", filename)
    blocks = "".join(f"```{language}\nx = 1\n```\n\n" for language in WARM_CODE_BLOCKS)
    render_markdown(f"# Title\n\n*Text* with `code` and [a link](a.md).\n\n{blocks}", link_base="/", image_base="/")


def lexer_name(filename: str) -> str | None:
    """The name of the lexer the file name picks, or None when the file is plain text (nothing to highlight)."""
    lexer = _lexer_class(filename.rsplit("/", 1)[-1])
    return None if lexer is TextLexer else lexer.__name__


# One token of a highlighted line as the formatter writes it: a span with its class, or text outside any span.
_SEGMENT = re.compile(r'<span class="([^"<>]*)">([^<]*)</span>|([^<]+)')


def _segments(line_html: str) -> list[tuple[str, str]] | None:
    """A highlighted line as (class, text) pieces, or None when its markup is not the formatter's flat spans."""
    pieces, end = [], 0
    for match in _SEGMENT.finditer(line_html):
        if match.start() != end:
            return None
        end = match.end()
        if match.group(3) is not None:
            pieces.append(("", html.unescape(match.group(3))))
        else:
            pieces.append((match.group(1), html.unescape(match.group(2))))
    return pieces if end == len(line_html) else None


def diff_line(text: str, highlighted: str | None = None, marks: list[tuple[int, int]] = (), tag: str = "") -> str:
    """A line of a diff as HTML: its tokens' classes from the highlighted line of its file (when that line holds
    exactly this text), and the character ranges in marks wrapped in <tag> (the changed words)."""
    pieces = _segments(highlighted) if highlighted else None
    if pieces is None or "".join(piece for _cls, piece in pieces) != text:
        pieces = [("", text)]
    if not marks:
        return "".join(_span(cls, piece) for cls, piece in pieces)
    # Cut the tokens where a mark starts or ends, then wrap each run of marked cuts in one <tag>.
    edges = sorted({edge for mark in marks for edge in mark})
    out, start, marked_run = [], 0, False
    for cls, piece in pieces:
        cuts = [0, *(edge - start for edge in edges if start < edge < start + len(piece)), len(piece)]
        for a, b in zip(cuts, cuts[1:], strict=False):
            if a == b:
                continue
            inside = any(first <= start + a < last for first, last in marks)
            if inside != marked_run:
                out.append(f"<{tag}>" if inside else f"</{tag}>")
                marked_run = inside
            out.append(_span(cls, piece[a:b]))
        start += len(piece)
    if marked_run:
        out.append(f"</{tag}>")
    return "".join(out)


def _span(cls: str, text: str) -> str:
    return f'<span class="{cls}">{html.escape(text)}</span>' if cls else html.escape(text)


def highlight_css() -> str:
    """The Pygments stylesheet for highlighted code, scoped to `.code`."""
    # get_style_defs() also returns page-wide rules (`pre { … }`, line number tables) that would
    # restyle the whole portal; only the rules under the scope are kept.
    rules = _FORMATTER.get_style_defs(CSS_SCOPE).splitlines()
    return "\n".join(rule for rule in rules if rule.startswith(CSS_SCOPE)) + "\n"


# Markdown

_MARKDOWN_SUFFIXES = frozenset({"md", "markdown", "mdown", "mkd"})


class _CodeBlockFormatter(HtmlFormatter):
    """The formatter of a README's code blocks. Markdown makes one per block, and each used to compute its style's
    whole table of classes (a third of rendering a README with a dozen blocks); the table of a style and class
    prefix is computed once and shared, formatting only reads it."""

    _tables: ClassVar[dict[tuple, tuple[dict, dict]]] = {}

    def _create_stylesheet(self) -> None:
        key = (self.style, self.classprefix)
        table = self._tables.get(key)
        if table is None:
            super()._create_stylesheet()
            table = self._tables[key] = (self.ttype2class, self.class2style)
        self.ttype2class, self.class2style = table


_MARKDOWN_EXTENSIONS = ["fenced_code", "tables", "sane_lists", "toc", "codehilite"]
_MARKDOWN_CONFIG = {
    # Inline styles are stripped by the sanitizer, so column alignment travels as the align attribute.
    "tables": {"use_align_attribute": True},
    "codehilite": {
        "css_class": CSS_SCOPE[1:],
        "guess_lang": False,
        "use_pygments": True,
        "pygments_formatter": _CodeBlockFormatter,
    },
}

_ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del",
        "details", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
        "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "small", "span",
        "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
        "tt", "u", "ul", "var", "wbr",
    }
)  # fmt: skip

# These lose their content too, not only the tag: it is code or markup that would show up as junk text.
_CLEAN_CONTENT_TAGS = frozenset(
    {
        "script", "style", "iframe", "object", "embed", "form", "svg", "math", "noscript", "template",
        "textarea", "select", "title", "xmp", "noembed", "noframes", "frameset", "applet",
    }
)  # fmt: skip

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "details": {"open"},
    "ol": {"start", "type"},
    "li": {"value"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    **{heading: {"id"} for heading in _HEADINGS},
}

# Classes are limited to Pygments' token classes and the markdown extensions' own, so a README
# cannot borrow the portal's classes to dress itself up as part of the page.
_ALLOWED_CLASSES = {
    "span": {name for name in _PYGMENTS_CLASSES.values() if name},
    "div": {CSS_SCOPE[1:], "toc"},
}

_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
# Ids from a README (its headings) get this prefix, and its own #links follow, so that no id it brings can
# clash with the page's (#L12, #diff-3, #readme) or shadow a global name the page's script uses.
USER_CONTENT_PREFIX = "user-content-"
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def is_markdown(filename: str) -> bool:
    """Whether the file name ends in a markdown suffix."""
    _, dot, suffix = filename.rpartition(".")
    return bool(dot) and suffix.lower() in _MARKDOWN_SUFFIXES


def _is_relative(url: str) -> bool:
    return bool(url) and not url.startswith(("/", "#")) and not _URL_SCHEME.match(url)


def render_markdown(text: str, *, link_base: str, image_base: str) -> str:
    """Markdown as sanitized HTML, with relative links and images resolved against the given bases.

    The bases are URL paths already quoted by the caller, such as '/alice/p/blob/main/docs/'.
    """

    def rewrite(element: str, attribute: str, value: str) -> str | None:
        # The sanitizer has checked the scheme before this runs and does not check what it returns,
        # so only URLs without a scheme are changed, and only by putting the caller's base in front.
        if attribute == "id":
            return USER_CONTENT_PREFIX + value
        url = value.strip()
        if element == "a" and attribute == "href" and url.startswith("#") and len(url) > 1:
            return f"#{USER_CONTENT_PREFIX}{url[1:]}"
        if element == "a" and attribute == "href" and _is_relative(url):
            return link_base + url
        if element == "img" and attribute == "src" and _is_relative(url):
            return image_base + url
        return value

    # A Markdown instance keeps state between conversions and is not thread-safe: one per call.
    converter = markdown.Markdown(extensions=_MARKDOWN_EXTENSIONS, extension_configs=_MARKDOWN_CONFIG)
    rendered = converter.convert(text)
    return nh3.clean(
        rendered,
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT_TAGS),
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=rewrite,
        strip_comments=True,
        link_rel="nofollow noopener noreferrer",
        url_schemes=set(_ALLOWED_SCHEMES),
        allowed_classes=_ALLOWED_CLASSES,
    )


# Intraline changes

_WORD = re.compile(r"\w+|\s+|[^\w\s]")


def intraline(old: str, new: str) -> tuple[str, str]:
    """The two lines of a changed pair as escaped HTML, with the changed words marked by <del> and <ins>."""
    old_marks, new_marks = intraline_marks(old, new)
    return diff_line(old, marks=old_marks, tag="del"), diff_line(new, marks=new_marks, tag="ins")


def intraline_marks(old: str, new: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The character ranges of the changed words in each line of a changed pair (none when the lines share little)."""
    if len(old) > INTRALINE_MAX_CHARS or len(new) > INTRALINE_MAX_CHARS:
        return [], []
    old_words = _WORD.findall(old)
    new_words = _WORD.findall(new)
    matcher = difflib.SequenceMatcher(None, old_words, new_words, autojunk=False)
    # Marks on lines that share little are noise: the whole line changed.
    if matcher.ratio() < INTRALINE_MIN_RATIO:
        return [], []
    # The words cover every character, so a word's index maps to a character offset.
    old_at = list(itertools.accumulate((len(word) for word in old_words), initial=0))
    new_at = list(itertools.accumulate((len(word) for word in new_words), initial=0))
    old_marks, new_marks = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:
            old_marks.append((old_at[i1], old_at[i2]))
        if j2 > j1:
            new_marks.append((new_at[j1], new_at[j2]))
    return old_marks, new_marks


# Content types

_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "ico": "image/x-icon",
}


def image_type(filename: str) -> str | None:
    """The raster image type that the file name says, or None (SVG is shown as source, never as an image)."""
    _, dot, suffix = filename.rpartition(".")
    return _IMAGE_TYPES.get(suffix.lower()) if dot else None


def _sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM"):
        return "image/bmp"
    if data.startswith(b"\0\0\1\0"):
        return "image/x-icon"
    return None


def raw_content_type(filename: str, data: bytes) -> str:
    """A content type that is safe to serve from the portal's own origin."""
    # An image type is given only when the name and the bytes agree on a raster image, so no name
    # can get HTML or SVG served as anything a browser would run.
    if image_type(filename):
        sniffed = _sniff_image(data)
        if sniffed:
            return sniffed
    decoded = decode_text(data)
    if decoded is None:
        return "application/octet-stream"
    return f"text/plain; charset={decoded[1]}"
