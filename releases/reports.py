"""Test reports: the JUnit XML files of a buildspec's report groups, read into test cases with CodeBuild's statuses."""

import os
import stat
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from releases.artifacts import safe_directory, select, walk
from releases.buildspec import ReportGroup

MAX_REPORT_BYTES = 16 * 1024**2
MAX_MESSAGE_CHARS = 64 * 1024


class TestStatus(StrEnum):
    __test__ = False
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class TestCase:
    __test__ = False
    suite: str
    classname: str
    name: str
    status: TestStatus
    duration_seconds: float | None
    message: str = ""
    details: str = ""
    file: str = ""


@dataclass(frozen=True)
class Report:
    group: str
    test_cases: tuple[TestCase, ...]
    files: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def count(self, status: TestStatus) -> int:
        return sum(1 for case in self.test_cases if case.status == status)


class ReportError(ValueError):
    pass


def parse_junit(data: bytes, *, filename: str = "") -> list[TestCase]:
    """Every <testcase> of a JUnit XML file (a <testsuites> or a lone <testsuite>), nested suites included."""
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"{filename}: larger than {MAX_REPORT_BYTES} bytes")
    # ElementTree resolves no external entity, and expat bounds entity expansion (billion laughs).
    if b"<!ENTITY" in data:
        raise ReportError(f"{filename}: entity declarations are not accepted in a report")
    try:
        root = ElementTree.fromstring(data)  # noqa: S314 (entities refused above)
    except ElementTree.ParseError as error:
        raise ReportError(f"{filename}: not valid XML ({error})")
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportError(f"{filename}: not a JUnit report (root element <{root.tag}>)")
    cases: list[TestCase] = []
    _read_suite(root, root.get("name", ""), filename, cases)
    return cases


def _read_suite(element, suite: str, filename: str, cases: list[TestCase]) -> None:
    for child in element:
        if child.tag == "testsuite":
            _read_suite(child, child.get("name", suite), filename, cases)
        elif child.tag == "testcase":
            cases.append(_test_case(child, suite, filename))


def _test_case(element, suite: str, filename: str) -> TestCase:
    status = TestStatus.SUCCEEDED
    message = details = ""
    for tag, outcome in (("failure", TestStatus.FAILED), ("error", TestStatus.ERROR), ("skipped", TestStatus.SKIPPED)):
        found = element.find(tag)
        if found is not None:
            status = outcome
            message = (found.get("message") or "")[:MAX_MESSAGE_CHARS]
            details = (found.text or "").strip()[:MAX_MESSAGE_CHARS]
            break
    try:
        duration = float(element.get("time", "").replace(",", ""))
    except ValueError:
        duration = None
    return TestCase(
        suite=suite,
        classname=element.get("classname", ""),
        name=element.get("name", ""),
        status=status,
        duration_seconds=duration,
        message=message,
        details=details,
        file=filename,
    )


def collect_report(group: ReportGroup, source_root: Path) -> Report:
    """Read a report group's files under source_root; a file that cannot be read is an error of the report."""
    base = safe_directory(source_root, group.base_directory)
    if base is None:
        return Report(group.name, (), errors=(f"base-directory {group.base_directory!r} is not a directory",))
    files = [path for path, kind in select(walk(base), group.files) if kind == "file"]
    if not files:
        return Report(group.name, (), errors=(f"no report files match {', '.join(group.files)}",))
    cases: list[TestCase] = []
    errors: list[str] = []
    for path in files:
        try:
            cases += parse_junit(_read_regular(base / path), filename=path)
        except (ReportError, OSError) as error:
            errors.append(str(error))
    return Report(group.name, tuple(cases), files=tuple(files), errors=tuple(errors))


def _read_regular(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as reader:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ReportError(f"{path.name}: not a regular file")
        data = reader.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise ReportError(f"{path.name}: larger than {MAX_REPORT_BYTES} bytes")
    return data
