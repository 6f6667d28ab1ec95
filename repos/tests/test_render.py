import codecs
import re

import pytest
from pygments.lexers import find_lexer_class_for_filename, get_all_lexers
from pygments.lexers.special import TextLexer

from repos import render
from repos.render import (
    decode_text,
    highlight_css,
    highlight_lines,
    image_type,
    intraline,
    is_binary,
    is_markdown,
    raw_content_type,
    render_markdown,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
BASES = {"link_base": "/alice/p/blob/main/docs/", "image_base": "/alice/p/raw/main/docs/"}

# Decoding


def test_it_decodes_utf8():
    assert decode_text("naïve ☃\n".encode()) == ("naïve ☃\n", "utf-8")


def test_it_strips_a_utf8_bom():
    assert decode_text(codecs.BOM_UTF8 + b"hello\n") == ("hello\n", "utf-8")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_it_decodes_utf16_with_a_bom_despite_its_nul_bytes(codec):
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    assert decode_text(bom + "héllo\n".encode(codec)) == ("héllo\n", "utf-16")


def test_it_guesses_windows_1252_for_latin1_bytes():
    assert decode_text(b"caf\xe9 \x93quoted\x94") == ("café “quoted”", "windows-1252")


def test_it_falls_back_to_iso_8859_1_when_windows_1252_cannot_decode():
    # 0x81 is undefined in windows-1252.
    assert decode_text(b"caf\xe9\x81") == ("caf\xe9\x81", "iso-8859-1")


def test_it_calls_data_with_a_nul_binary():
    assert is_binary(b"GIF89a\x00\x01")
    assert decode_text(b"text\x00more") is None
    assert decode_text(PNG) is None


def test_it_only_sniffs_the_start_for_nul():
    data = b"a" * render.BINARY_SNIFF + b"\x00"
    assert not is_binary(data)
    assert decode_text(data) is not None


def test_empty_data_is_text():
    assert decode_text(b"") == ("", "utf-8")


# Highlighting


@pytest.mark.parametrize(
    ("text", "count"),
    [("", 0), ("a", 1), ("a\n", 1), ("a\nb\n", 2), ("a\nb", 2), ("\n", 1), ("\n\n", 2), ("a\n\n\nb\n\n", 5)],
)
def test_it_gives_one_fragment_per_line(text, count):
    assert len(highlight_lines(text, "main.py")) == count
    assert len(highlight_lines(text, "notes.txt")) == count


def test_it_keeps_leading_and_trailing_blank_lines():
    lines = highlight_lines("\n\nx = 1\n\n", "main.py")
    assert len(lines) == 4
    assert lines[0] == lines[1] == lines[3] == ""


def test_it_treats_crlf_as_one_line_end_and_shows_a_lone_cr():
    lines = highlight_lines("a = 1\r\nb\rc\r\n", "main.py")
    assert len(lines) == 2
    assert all("\r" not in line and "\n" not in line for line in lines)
    assert "\u240d" in lines[1]


def test_it_escapes_html_inside_code_and_keeps_the_line_count():
    text = 'x = "<script>alert(1)</script>"\ny = 1 & 2\n'
    lines = highlight_lines(text, "page.py")
    assert len(lines) == 2
    joined = "".join(lines)
    assert "<script" not in joined
    assert "&lt;script&gt;" in joined
    assert "&amp;" in joined


def test_it_splits_a_multiline_c_comment_into_balanced_lines():
    text = "/* one\n * <two>\n */\nint main(void) { return 0; }\n"
    lines = highlight_lines(text, "src/main.c")
    assert len(lines) == 4
    for line in lines:
        assert "\n" not in line
        assert line.count("<span") == line.count("</span>")
    assert lines[1].startswith("<span class=")
    assert "&lt;two&gt;" in lines[1]
    assert 'class="kt"' in lines[3]


def test_it_picks_the_lexer_from_the_name_only():
    # Plain text and unknown names are never guessed from their content.
    assert highlight_lines("#!/usr/bin/env python\nimport os\n", "README") == ["#!/usr/bin/env python", "import os"]
    assert highlight_lines("<b>x</b>\n", "file.unknown-ext") == ["&lt;b&gt;x&lt;/b&gt;"]
    assert "<span" in highlight_lines("all:\n\techo hi\n", "Makefile")[0]


def test_a_file_name_gets_the_lexer_pygments_itself_finds_for_it():
    # Each file pattern of every lexer that is no "*.ext", made into names that match it and names that nearly do,
    # every "*.ext" of a few hundred, and names that sit between the two kinds.
    names = {"Makefile.am", "foo.1", ".bashrc", "bash_profile", "a.tar.gz", "x.html.j2", "x.", ".", "noext", "A.C"}
    extension_patterns = []
    for _name, _aliases, patterns, _mimetypes in get_all_lexers(plugins=True):
        for pattern in patterns:
            name = re.sub(r"\[(.)[^\]]*\]", r"\1", pattern).replace("*", "x").replace("?", "q")
            if re.fullmatch(r"\*\.[^*?\[\].]+", pattern):
                extension_patterns.append(name)
            else:
                names |= {name, f"pre{name}", f"{name}.bak", name.upper(), f"a.b.{name}"}
    names |= set(extension_patterns[::3]) | {f"a.b.{name}" for name in extension_patterns[::7]}
    # Names first seen in any order: a name may stand for others already.
    for name in sorted(names, key=lambda name: name[::-1]):
        assert render._lexer_class(name) is (find_lexer_class_for_filename(name) or TextLexer), name


def test_it_only_escapes_a_text_over_the_size_limit():
    line = "int x = 1; // <b>\n"
    text = line * (render.HIGHLIGHT_MAX_BYTES // len(line) + 1)
    lines = highlight_lines(text, "big.c")
    assert len(lines) == text.count("\n")
    assert lines[0] == "int x = 1; // &lt;b&gt;"
    assert all("<span" not in line for line in lines)


def test_it_only_escapes_a_text_over_the_line_limit():
    text = "x\n" * (render.HIGHLIGHT_MAX_LINES + 1)
    lines = highlight_lines(text, "many.py")
    assert len(lines) == render.HIGHLIGHT_MAX_LINES + 1
    assert lines[0] == "x"


def test_highlight_css_is_scoped_to_code():
    css = highlight_css()
    rules = [line for line in css.splitlines() if line.strip()]
    assert rules
    assert all(rule.startswith(".code") for rule in rules)
    assert ".code .k " in css


# Markdown


def test_it_rewrites_relative_links_and_images():
    text = "[guide](guide.md) [up](../README.md) ![logo](img/logo.png)\n"
    html = render_markdown(text, **BASES)
    assert 'href="/alice/p/blob/main/docs/guide.md"' in html
    assert 'href="/alice/p/blob/main/docs/../README.md"' in html
    assert 'src="/alice/p/raw/main/docs/img/logo.png"' in html


def test_it_leaves_absolute_and_external_urls_alone_and_prefixes_fragments():
    text = "[a](/bob/q) [b](#usage) [c](//example.com/x) [d](https://example.com/) ![e](https://example.com/e.png)\n"
    html = render_markdown(text, **BASES)
    for url in ['href="/bob/q"', 'href="#user-content-usage"', 'href="//example.com/x"', 'href="https://example.com/"']:
        assert url in html
    assert 'src="https://example.com/e.png"' in html


def test_it_rewrites_relative_urls_in_raw_html_too():
    html = render_markdown('<a href="CONTRIBUTING.md">c</a> <img src="shot.png" alt="s">', **BASES)
    assert 'href="/alice/p/blob/main/docs/CONTRIBUTING.md"' in html
    assert 'src="/alice/p/raw/main/docs/shot.png"' in html


def test_links_get_nofollow_noopener_noreferrer():
    html = render_markdown('[x](https://example.com) <a href="x" rel="opener" target="_blank">y</a>', **BASES)
    assert html.count('rel="nofollow noopener noreferrer"') == 2
    assert "opener" not in html.replace("noopener", "")
    assert "target" not in html


def test_it_renders_headings_with_ids_tables_and_lists():
    html = render_markdown("# Getting started\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n3. three\n4. four\n", **BASES)
    assert '<h1 id="user-content-getting-started">Getting started</h1>' in html
    assert '<th align="left">a</th>' in html
    assert '<td align="right">2</td>' in html
    assert '<ol start="3">' in html


def test_it_highlights_fenced_code_with_classes_only():
    html = render_markdown("```python\ndef f():\n    return '<b>'\n```\n", **BASES)
    assert '<div class="code">' in html
    assert '<span class="k">def</span>' in html
    assert "&lt;b&gt;" in html
    assert "style=" not in html


def test_code_blocks_share_one_style_table_and_each_gets_its_classes():
    blocks = "```python\nimport os\n```\n\n```shell\necho $HOME\n```\n"
    first, again = render_markdown(blocks, **BASES), render_markdown(blocks, **BASES)
    assert first == again
    assert '<span class="kn">import</span>' in first
    assert '<span class="nb">echo</span><span class="w"> </span><span class="nv">$HOME</span>' in first


def test_it_drops_classes_that_are_not_pygments_own():
    html = render_markdown('<p class="btn btn-danger">x</p><span class="k navbar">y</span>', **BASES)
    assert "btn" not in html
    assert "navbar" not in html


XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="https://example.com"></iframe>',
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<style>body { display: none }</style>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "![x](javascript:alert(1))",
    '<img src="javascript:alert(1)">',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<form action="https://example.com"><button>go</button></form>',
    '<p style="background:url(javascript:alert(1))" onclick="alert(1)">x</p>',
    '<details open ontoggle="alert(1)"><summary>s</summary></details>',
    '<a href="x" onmouseover="alert(1)">x</a>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "```\n</code></pre><script>alert(1)</script>\n```",
]


@pytest.mark.parametrize("text", XSS)
def test_markdown_output_has_no_script(text):
    html = render_markdown(text, **BASES).lower()
    assert "<script" not in html
    assert not re.search(r"\son\w+\s*=", html)
    assert "javascript:" not in html
    assert "vbscript:" not in html
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*data:""", html)
    assert "<svg" not in html
    assert "<math" not in html
    assert "<iframe" not in html
    assert "<style" not in html
    assert "<object" not in html
    assert "<embed" not in html
    assert "<form" not in html
    assert "style=" not in html


def test_it_recognises_markdown_names():
    assert all(is_markdown(name) for name in ["README.md", "a.MARKDOWN", "x.mdown", "y.Mkd"])
    assert not any(is_markdown(name) for name in ["README", "md", "a.mdx", "notes.txt"])


# Intraline


def test_it_marks_only_the_changed_word():
    old, new = intraline("total = price * count", "total = price * amount")
    assert old == "total = price * <del>count</del>"
    assert new == "total = price * <ins>amount</ins>"


def test_it_escapes_both_lines():
    old, new = intraline("if a < b && c:", "if a <= b && c:")
    assert "<" not in old.replace("<del>", "").replace("</del>", "")
    assert "&lt;" in old and "&amp;&amp;" in old
    assert "&lt;" in new and "&amp;&amp;" in new
    assert "<ins>=</ins>" in new


def test_identical_lines_get_no_marks():
    assert intraline("same <line>", "same <line>") == ("same &lt;line&gt;", "same &lt;line&gt;")


def test_very_different_lines_get_no_marks():
    assert intraline("alpha beta gamma", "1 + 2 < 3") == ("alpha beta gamma", "1 + 2 &lt; 3")


def test_long_lines_get_no_marks():
    old = "x = " + "a" * 600
    new = "y = " + "a" * 600
    assert intraline(old, new) == (old, new)
    assert intraline("a < b", "<" * 501)[0] == "a &lt; b"


# Content types


def test_image_type_by_name_never_svg():
    assert image_type("logo.PNG") == "image/png"
    assert image_type("photo.jpeg") == "image/jpeg"
    assert image_type("favicon.ico") == "image/x-icon"
    assert image_type("drawing.svg") is None
    assert image_type("png") is None


def test_raw_html_and_svg_are_served_as_text():
    assert raw_content_type("index.html", b"<script>alert(1)</script>") == "text/plain; charset=utf-8"
    assert raw_content_type("logo.svg", b"<svg onload=alert(1)></svg>") == "text/plain; charset=utf-8"
    assert raw_content_type("old.txt", b"caf\xe9") == "text/plain; charset=windows-1252"


def test_raw_png_is_served_as_an_image():
    assert raw_content_type("logo.png", PNG) == "image/png"


def test_raw_image_name_with_other_bytes_is_not_an_image():
    assert raw_content_type("evil.png", b"<html><script>alert(1)</script>") == "text/plain; charset=utf-8"


def test_raw_binary_is_an_octet_stream():
    assert raw_content_type("app.bin", b"\x7fELF\x02\x01\x01\x00\x00") == "application/octet-stream"
    assert raw_content_type("logo.txt", PNG) == "application/octet-stream"


def test_markdown_ids_and_in_page_links_get_a_prefix_of_their_own():
    html = render_markdown("# L12\n\n[down](#l12) [readme](#readme)\n\n## readme\n", link_base="/b/", image_base="/r/")
    assert 'id="user-content-l12"' in html and 'href="#user-content-l12"' in html
    assert 'id="user-content-readme"' in html and 'href="#user-content-readme"' in html
    assert 'id="l12"' not in html and 'id="readme"' not in html
