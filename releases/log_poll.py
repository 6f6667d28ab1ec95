"""A live log as a page follows it (a build's, a deployment's, a deployment target's): each answer is the log from a
byte offset as rendered lines, {"offset", "line", "html", "ended", "status", "more"}, and the page asks again from
the offset it was given (static/portal/logfollow.js).

releases.logs reads the log wherever it is, releases.log_html renders it; the views only choose how its lines are
rendered and which status a person reads."""

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse

from releases import log_html, logs

# How a piece's bytes become HTML: (bytes, number of their first line) -> lines as releases.log_html renders them.
Render = Callable[[bytes, int], str]


def piece(owner, offset: int, line: int, status: str, render: Render = log_html.render_lines) -> dict:
    """The log of owner (a build, a deployment or a target) from offset as rendered lines, numbered from line + 1:
    up to the last newline while it runs (a line still being printed comes whole in a later answer), everything
    once it ended. status is what the page shows when the log ends."""
    data = logs.read(owner, offset).data
    full = len(data) < logs.READ_LIMIT
    if not (owner.is_ended and full):
        data = data[: data.rfind(b"\n") + 1]
    return {
        "offset": offset + len(data),
        "line": line + log_html.count_lines(data),
        "html": render(data, line + 1),
        "ended": owner.is_ended,
        "status": status,
        # More of the log is there to fetch at once (a long log comes in pieces of READ_LIMIT bytes).
        "more": not full,
    }


def answer(request: HttpRequest, piece_at: Callable[[int, int], dict]) -> JsonResponse:
    """The answer to a poll for the log after ?offset=<bytes> (numbered after ?line=<lines already shown>):
    piece_at(offset, line) as JSON, never kept by a cache; 400 when either is not a number."""
    try:
        offset = max(0, int(request.GET.get("offset", "0")))
        line = max(0, int(request.GET.get("line", "0")))
    except ValueError:
        return JsonResponse({"error": "offset and line are numbers of bytes and lines."}, status=400)
    response = JsonResponse(piece_at(offset, line))
    response["Cache-Control"] = "private, no-cache"
    return response
