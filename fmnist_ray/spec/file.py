"""The guarded boundary for spec files: bytes to a validated `SweepSpec`, or one clear line
per problem, naming the file and line (or the `--set` option) it comes from.

Specs are small, hand-written files, so anything that is not one is refused before it is
built: files over `MAX_BYTES`, text that is not UTF-8, duplicate keys, anchors and aliases
(the "billion laughs" bomb), nesting deeper than `MAX_DEPTH`. Numbers follow YAML 1.2, where
`1e-3` is a float (YAML 1.1, PyYAML's default, reads it as a string). Every problem the
loader can place names its line and column.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fmnist_ray.config import SweepSpec
from fmnist_ray.errors import UserError
from fmnist_ray.spec.problems import describe, semantic_problems

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
# YAML 1.2 core schema floats: 1e-3, 1.5E+2, .5, -inf, .nan (PyYAML needs a dot and a signed
# exponent, so it reads `1e-3` as a string).
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"
                    r"|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader without aliases, duplicate keys or deep nesting, with YAML 1.2 floats."""

    depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise _Refused(mark, "anchors and aliases (&name / *name) are not allowed in a "
                                 "spec; write each value out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise _Refused(event.start_mark, "anchors and aliases (&name / *name) are not "
                                             "allowed in a spec; write each value out")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep; remove "
                                             f"the extra nesting (a spec needs a few levels)")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses integers of over 4,300 digits
            raise _Refused(node.start_mark, "a number with far too many digits; write a "
                                            "sensible value") from None


# Resolvers are class-level: YAML 1.2 floats for our loader only (a copy of SafeLoader's table).
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
_SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT,
                                  list("-+0123456789.") + ["i", "I", "n", "N"])


class _Refused(yaml.YAMLError):
    def __init__(self, mark, problem: str):
        super().__init__(problem)
        self.problem_mark = mark
        self.problem = problem


def _short(value: Any, limit: int = 60) -> str:
    """A value for an error message, never longer than `limit` characters."""
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


def parse_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """The document in `text` as plain data, and the line of each key path (`trial.lr`)."""
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        _key_lines(node, "", lines)
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise UserError(f"{source}: {_where(exc.problem_mark)}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: {_syntax_error(exc)}") from None
    except RecursionError:  # nesting the depth limit did not see (e.g. inside a flow mapping key)
        raise UserError(f"{source}: nested too deeply; a spec needs a few levels at most"
                        ) from None
    finally:
        loader.dispose()
    return data, lines


def _syntax_error(exc: yaml.YAMLError) -> str:
    """A PyYAML error as `line L, column C: what; the fix`, placed where the construct that
    went wrong began (the `{` never closed), not where the parser gave up."""
    mark = getattr(exc, "problem_mark", None)
    start = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or _short(str(exc).splitlines()[0], 120)
    if "'\\t'" in problem:
        return (f"{_where(mark)}a tab in the indentation; YAML indents with spaces: replace "
                f"the tab with spaces")
    if start is not None and mark is not None and start.line != mark.line:
        context = getattr(exc, "context", None) or "here"
        return (f"{_where(start)}YAML syntax error {context.removeprefix('while ')} that is "
                f"not closed ({problem} on line {mark.line + 1}); close it or fix the quoting")
    return f"{_where(mark)}YAML syntax error: {problem}; fix the indentation or quoting there"


def _key_lines(node, prefix: str, lines: dict[str, int]) -> None:
    """Each key path's line; refuses a key given twice in one mapping, naming its path."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node.start_mark, "a key must be a plain name; write it as "
                                                    "a name")
            path = f"{prefix}{_short(key_node.value, 40)}"
            if path in lines:
                raise _Refused(key_node.start_mark, f"{path}: duplicate key (first on line "
                                                    f"{lines[path]}); keep one of them")
            lines[path] = key_node.start_mark.line + 1
            _key_lines(value_node, f"{path}.", lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault(f"{prefix}{i}", item.start_mark.line + 1)
            _key_lines(item, f"{prefix}{i}.", lines)


def parse_value(text: str) -> Any:
    """A `--set KEY=VALUE` value read as YAML (numbers, lists, booleans); else the text."""
    try:
        value, _ = parse_yaml(text, "--set")
    except UserError:
        return text
    return value


def read_spec_text(path: Path) -> str:
    """The text of a spec file: refused when missing, too big, binary or not UTF-8."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UserError(f"{path}: is a directory; pass a .yaml spec file")
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size:,} bytes is too big for a sweep spec (the limit is "
                            f"{MAX_BYTES // 1024} KiB); check that this is the spec file")
        data = path.read_bytes()
    except FileNotFoundError:
        beside = path.with_name(f"{path.name}.yaml")
        hint = f"did you mean {beside}?" if beside.is_file() else \
            "check the path (shipped specs are in sweeps/)"
        raise UserError(f"{path}: spec file not found; {hint}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: a symbolic link that loops; point at the spec file "
                            f"itself") from None
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc}); check the path and "
                        f"its permissions") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{path}: saved as UTF-16; save it as UTF-8 (e.g. `iconv -f UTF-16 -t "
                        f"UTF-8`)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        binary = b"\x00" in data[:1024]
        what = "a binary file, not a YAML spec" if binary else "not UTF-8 text"
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line}: {what} (byte 0x{data[exc.start]:02x}); save the "
                        f"spec as UTF-8 text") from None
    if "\x00" in text:
        raise UserError(f"{path}: a binary file, not a YAML spec (it holds NUL bytes); pass the "
                        f".yaml spec file")
    return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `KEY=VALUE` overrides (dotted keys, YAML values) to a raw spec dict."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or not all(key.split(".")):
            raise UserError(f"--set {_short(item)}: expected KEY=VALUE; write it as e.g. "
                            f"--set trial.epochs=2")
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = parse_value(text)
    return raw


def _origin(problem: str, source: str, lines: dict[str, int], labels: dict[str, str]) -> str:
    """Where a problem comes from: the option that set its key, else the file and its line."""
    path = problem.split(": ", 1)[0] if ": " in problem else ""
    for key, label in labels.items():
        if path and (path == key or path.startswith(f"{key}.") or key.startswith(f"{path}.")):
            return label
    while path and path not in lines:
        path = path.rpartition(".")[0]
    return f"{source}: line {lines[path]}" if path else source


def parse_spec(raw: Any, source: str, lines: dict[str, int] | None = None,
               labels: dict[str, str] | None = None) -> SweepSpec:
    """Validate a raw spec dict; raise one UserError listing every problem, one per line.

    `lines` gives each key path's line in the file; `labels` names the command-line option
    that set a key (`--set trial.lr=0.1`), so its problems are blamed on the option.
    """
    if raw is None:
        raise UserError(f"{source}: the spec is empty; write at least `name: ...` and the "
                        f"settings to vary (see sweeps/ for examples)")
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a sweep spec must be a YAML mapping of keys (name, trial, "
                        f"axes, ...), got {type(raw).__name__}; start it with `name: ...`")
    if not all(isinstance(key, str) for key in raw):
        raise UserError(f"{source}: every top-level key must be a name (name, trial, axes, ...); "
                        f"fix the keys")
    try:
        spec = SweepSpec(**raw)
    except ValidationError as exc:
        errors = exc.errors()
        # `axes.lr: {logunif: ...}` fails as a list too: only the range's own problem counts.
        ranges = {tuple(e["loc"][:2]) for e in errors if "Range" in e["loc"]}
        problems = [describe(e) for e in errors
                    if not (e["type"] == "list_type" and "Range" not in e["loc"]
                            and tuple(e["loc"][:2]) in ranges)]
    else:
        problems = semantic_problems(spec)
    if problems:
        raise UserError("\n".join(f"{_origin(p, source, lines or {}, labels or {})}: {p}"
                                   for p in problems))
    return spec


def parse_spec_text(text: str, source: str) -> SweepSpec:
    """A spec from YAML text (a stored `spec.yaml`), validated like a spec file."""
    raw, lines = parse_yaml(text, source)
    return parse_spec(raw, source, lines)


def load_spec(path: Path | str, overrides: list[str] | None = None,
              name: str | None = None) -> SweepSpec:
    """Read and validate a sweep spec file, with `--set KEY=VALUE` overrides and `--name`."""
    return load_spec_text(read_spec_text(Path(path)), str(path), overrides, name)


def load_spec_text(text: str, path: str, overrides: list[str] | None = None,
                   name: str | None = None) -> SweepSpec:
    """A spec from YAML text read from `path`, with `--set KEY=VALUE` overrides and `--name`."""
    raw, lines = parse_yaml(text, path)
    overrides = list(overrides or [])
    labels = {o.partition("=")[0]: f"--set {_short(o)}" for o in overrides}
    if name is not None:
        overrides.append(f"name={name}")
        labels["name"] = f"--name {_short(name)}"
    if overrides:
        if not isinstance(raw, dict):
            parse_spec(raw, path)  # refused: the file is not a mapping
        raw = apply_overrides(raw, overrides)
        changed = [o for o in overrides if not o.startswith(("name=", "description="))]
        if changed and isinstance(raw.get("description"), str):
            # The description was written for the file as it is: say what --set changed.
            raw["description"] += f" (changed with --set {', '.join(changed)})"
    return parse_spec(raw, path, lines, labels)


def spec_to_yaml(spec: SweepSpec) -> str:
    """The spec as YAML, stored beside the results so a resume can compare search spaces."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)


def read_stored_spec(uri: str, overrides: list[str] | None = None,
                     name: str | None = None) -> SweepSpec:
    """The spec a sweep was started with, from `spec.yaml` beside its results, parsed again so
    that settings added since come with their defaults; with `--set` overrides and `--name`
    (`extend`). Every reader of a stored spec (resume, extend, the report) calls this."""
    from fmnist_ray.results.exports import SPEC_FILE, read_text

    return load_spec_text(read_text(uri, SPEC_FILE), f"{uri}/{SPEC_FILE}", overrides, name)
