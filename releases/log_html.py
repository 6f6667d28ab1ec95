"""A build's log as HTML: each line with its number and anchor, ANSI colours as CSS classes, the runner's phase
lines as headers.

The page's Content-Security-Policy allows no style attribute, so a colour is a class (ansi-fg-N, ansi-bg-N for the
16 colours, ansi-bold); a 256-colour or 24-bit colour becomes the nearest of the 16. Every other escape sequence is
dropped and everything else is escaped: a build prints what it likes, `<script>` included. Secrets were masked by
the runner before the log was written, so nothing here looks at the content beyond its escapes."""

import re
from dataclasses import dataclass

from django.utils.html import escape

from releases.runner import PREFIX

# CSI sequences (ESC [ params final), OSC sequences (ESC ] ... BEL or ESC \), and any other two-byte escape.
_ESCAPE = re.compile(r"\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
# Control characters a terminal would not show (tab is kept).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PHASE = re.compile(r"^" + re.escape(PREFIX) + r"Entering phase ([A-Z_]+)")
# A deployment target's log starts each lifecycle event's section with "==> EventName" (releases.deploy_job).
HOOK = re.compile(r"^==> ([A-Za-z]+)$")

# xterm's 16 colours, to find the nearest one of a 256-colour or 24-bit colour.
PALETTE = [
    (0, 0, 0),
    (205, 0, 0),
    (0, 205, 0),
    (205, 205, 0),
    (0, 0, 238),
    (205, 0, 205),
    (0, 205, 205),
    (229, 229, 229),
    (127, 127, 127),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (92, 92, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
]
_CUBE = (0, 95, 135, 175, 215, 255)


def nearest_colour(rgb: tuple[int, int, int]) -> int:
    return min(range(16), key=lambda n: sum((a - b) ** 2 for a, b in zip(PALETTE[n], rgb, strict=True)))


def colour_256(n: int) -> int:
    """One of the 16 colours for an xterm 256-colour index."""
    if n < 16:
        return n
    if n < 232:
        n -= 16
        return nearest_colour((_CUBE[n // 36], _CUBE[n // 6 % 6], _CUBE[n % 6]))
    grey = 8 + (n - 232) * 10
    return nearest_colour((grey, grey, grey))


@dataclass
class Style:
    foreground: int | None = None
    background: int | None = None
    bold: bool = False

    def classes(self) -> str:
        names = []
        if self.foreground is not None:
            names.append(f"ansi-fg-{self.foreground}")
        if self.background is not None:
            names.append(f"ansi-bg-{self.background}")
        if self.bold:
            names.append("ansi-bold")
        return " ".join(names)

    def apply(self, params: str) -> None:
        """Apply one SGR sequence's parameters (an empty one resets)."""
        codes = [int(part) if part.isdigit() else 0 for part in params.replace(":", ";").split(";")]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.foreground, self.background, self.bold = None, None, False
            elif code == 1:
                self.bold = True
            elif code in (21, 22):
                self.bold = False
            elif 30 <= code <= 37:
                self.foreground = code - 30
            elif 90 <= code <= 97:
                self.foreground = code - 90 + 8
            elif code == 39:
                self.foreground = None
            elif 40 <= code <= 47:
                self.background = code - 40
            elif 100 <= code <= 107:
                self.background = code - 100 + 8
            elif code == 49:
                self.background = None
            elif code in (38, 48):
                colour, used = _extended(codes[i + 1 :])
                if colour is not None:
                    if code == 38:
                        self.foreground = colour
                    else:
                        self.background = colour
                i += used
            i += 1


def _extended(rest: list[int]) -> tuple[int | None, int]:
    """The colour of a 38/48 sequence's tail (5;n or 2;r;g;b) and how many parameters it used."""
    if len(rest) >= 2 and rest[0] == 5:
        return colour_256(min(rest[1], 255)), 2
    if len(rest) >= 4 and rest[0] == 2:
        return nearest_colour(tuple(min(value, 255) for value in rest[1:4])), 4
    return None, len(rest)


def render_text(text: str, style: Style) -> str:
    """One line's text as escaped HTML with its colours as spans; style carries over to the next line, as in a
    terminal."""
    parts = []
    position = 0
    for match in _ESCAPE.finditer(text):
        parts.append(_span(text[position : match.start()], style))
        if match.group(2) == "m":
            style.apply(match.group(1))
        position = match.end()
    parts.append(_span(text[position:], style))
    return "".join(parts)


def _span(text: str, style: Style) -> str:
    if not text:
        return ""
    text = escape(_CONTROL.sub("", text))
    classes = style.classes()
    return f'<span class="{classes}">{text}</span>' if classes else text


def render_lines(
    data: bytes, first_number: int, durations: dict[str, str] | None = None, *, header: re.Pattern | None = None
) -> str:
    """Lines of a log (bytes, split at newlines; a last piece without one is a line too) as HTML, numbered from
    first_number; a phase's header (a line matching header, a build's phase or a deployment's HOOK) shows its
    duration when durations (by phase name) has it."""
    if not data:
        return ""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    style = Style()
    rendered = []
    for number, line in enumerate(lines, start=first_number):
        phase = (header or _PHASE).match(line)
        kind = " log-phase" if phase else (" log-runner" if line.startswith(PREFIX) else "")
        attributes = f' data-phase="{escape(phase.group(1))}"' if phase else ""
        took = (durations or {}).get(phase.group(1)) if phase else None
        rendered.append(
            f'<div class="log-line{kind}" id="L{number}"{attributes}>'
            f'<a class="log-number" href="#L{number}" aria-label="Line {number}">{number}</a>'
            f'<span class="log-text">{render_text(line, style)}</span>'
            + (f'<span class="log-duration">{escape(took)}</span>' if took else "")
            + "</div>"
        )
    return "".join(rendered)


def count_lines(data: bytes) -> int:
    """How many lines render_lines makes of data."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
