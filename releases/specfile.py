"""What buildspec.yml and appspec.yml have in common: YAML read as nodes, so that every error and warning names the
file, the line and the key path it is about, and a node reader the two files' readers build on."""

from dataclasses import dataclass

import yaml

STR = "tag:yaml.org,2002:str"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SpecError(ValueError):
    """A file its service would refuse: where (file, line, key path) and why."""

    def __init__(self, filename: str, line: int | None, path: str, message: str):
        self.filename = filename
        self.line = line
        self.path = path
        self.message = message
        where = filename if line is None else f"{filename}, line {line}"
        super().__init__(f"{where}, {path}: {message}" if path else f"{where}: {message}")


@dataclass(frozen=True)
class SpecWarning:
    """A key accepted but not acted on, with the line it is on."""

    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.path}: {self.message}"


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class SpecReader:
    """Reads a file's nodes into values, refusing with `error` (a SpecError) and noting `warning`s."""

    error: type[SpecError] = SpecError
    warning: type[SpecWarning] = SpecWarning
    max_bytes = 256 * 1024
    # What an empty file lacks, as the end of "the file is empty (expected …)".
    expected = ""

    def __init__(self, filename: str):
        self.filename = filename
        self.warnings: list = []

    def fail(self, node: yaml.Node | None, path: str, message: str):
        raise self.error(self.filename, line_of(node) if node is not None else None, path, message)

    def warn(self, node: yaml.Node, path: str, message: str) -> None:
        self.warnings.append(self.warning(line_of(node), path, message))

    def compose(self, text: str | bytes) -> yaml.Node:
        """The document's root node: UTF-8 YAML of at most max_bytes, not empty."""
        if len(text) > self.max_bytes:
            self.fail(None, "", f"the file is larger than {self.max_bytes} bytes")
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                self.fail(None, "", f"not UTF-8 text ({error.reason} at byte {error.start})")
        try:
            root = yaml.compose(text, Loader=Loader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
            problem = getattr(error, "problem", None) or str(error)
            raise self.error(
                self.filename, mark.line + 1 if mark is not None else None, "", f"not valid YAML: {problem}"
            )
        if root is None:
            self.fail(None, "", f"the file is empty (expected {self.expected})")
        return root

    def mapping(self, node: yaml.Node, path: str, allowed: tuple[str, ...] | None = None) -> dict[str, tuple]:
        """The mapping's entries as {key: (key_node, value_node)}, refusing duplicates and keys not allowed."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, path, "expected a mapping of keys")
        entries: dict[str, tuple] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(key_node, path, "expected a plain key")
            key = key_node.value
            if key in entries:
                self.fail(key_node, join(path, key), "duplicate key")
            if allowed is not None and key not in allowed:
                self.fail(key_node, join(path, key), f"unknown key (expected one of {', '.join(allowed)})")
            entries[key] = (key_node, value_node)
        return entries

    def string(self, node: yaml.Node, path: str) -> str:
        if isinstance(node, yaml.MappingNode):
            self.fail(
                node,
                path,
                "expected a string, found a mapping (a ': ' inside a command makes YAML read a mapping: quote it)",
            )
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL:
            self.fail(node, path, "expected a string")
        return node.value

    def strings(self, node: yaml.Node, path: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, "expected a list of strings")
        return tuple(self.string(item, f"{path}[{index}]") for index, item in enumerate(node.value))

    def boolean(self, node: yaml.Node, path: str) -> bool:
        value = self.string(node, path)
        if node.tag == BOOL or node.tag == STR:
            lowered = value.lower()
            if lowered in ("yes", "true", "on"):
                return True
            if lowered in ("no", "false", "off"):
                return False
        self.fail(node, path, "expected yes or no")
