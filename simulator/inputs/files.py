"""Reading the files users and the repository provide: text, YAML, JSON, and validation against a schema, each
failure a SpecError that names the file and the problem.

A file is checked before it is parsed and its content before any schema or loop sees it, so a hostile or careless
file is refused in well under a second with one line:
- only regular files are read (a FIFO or a device would block or never end), of at most MAX_FILE_BYTES;
- YAML is read as YAML 1.2's core schema: `true`/`false` are the only booleans (`yes`, `on`, `n` stay text), integers
  are decimal (no sexagesimal `1:30` = 90, no octal `010` = 8), `1e9` is a number, no timestamps; a key given twice
  in one mapping is refused (YAML 1.1 loaders silently keep the last);
- JSON integers have at most MAX_INT_DIGITS digits (Python refuses over 4,300 with a traceback);
- the parsed document nests at most MAX_DEPTH levels and holds at most MAX_VALUES values (aliases counted as
  expanded, so a 'billion laughs' document stops here), and every number in it is finite (`.inf`, `.nan`, `NaN`,
  `Infinity` and `1e999` are refused with the key path named).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import SpecError
from simulator.inputs.schema_errors import format_errors
from simulator.inputs.schema_errors import loc_part as _loc_part
from simulator.inputs.schema_errors import short as _short
from simulator.units import MIB

MAX_FILE_BYTES = 10 * MIB
"""10 MiB. The largest shipped YAML is 53 KB (validation/whole_runs.yaml), a config.json a few KB; a calibration
file with every sample is well under 1 MB."""
MAX_DEPTH = 64
"""Nesting levels of mappings and lists. Shipped files and Hugging Face configs nest at most 5."""
MAX_VALUES = 1_000_000
"""Values (scalars, lists and mappings) in one parsed document, aliases expanded."""
MAX_YAML_NODES = 200_000
"""YAML nodes one file may hold: PyYAML resolves each in Python (about 5 us a node), so this bounds a YAML file's
parse to about a second. The largest shipped YAML has under 10,000."""
MAX_INT_DIGITS = 30
"""Digits of one integer. The largest count costsim reads (tokens, 1e17) has 18."""


def _format_validation(
    path: Path | str, schema: type[BaseModel], err: ValidationError, shown: int = 5, read_from: dict[str, str] | None = None
) -> str:
    """One line: the file, the schema, and each failing field with the value given, what it takes and the fix."""
    return _one_line(f"{path}: invalid {schema.__name__}: {format_errors(schema, err, shown, read_from)}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def is_dir(path: Path) -> bool:
    """Whether `path` is a folder; a name the file system refuses (too long, a NUL byte) is none, not an error."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def is_file(path: Path) -> bool:
    """Whether `path` is a file; a name the file system refuses (too long, a NUL byte) is none, not an error."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def refused_name(path: Path) -> str | None:
    """Why the file system refuses the name `path` for a file or folder to be written (a name over its length limit, a
    NUL byte, a file where a folder is needed), in words with the numbers; None where the name is taken, whether or
    not something is there yet. Output paths are checked with it before the work, not when writing after it."""
    path = Path(path)
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except ValueError:
        return "the name holds a NUL byte, which no file name can"
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            longest, most = max(path.parts, key=len, default=""), _name_max(path)
            if len(longest) > most:
                return f"file name too long: a name of {len(longest):,} characters, where the file system takes at most {most:,}"
            return f"file name too long: a path of {len(str(path)):,} characters, over the system's limit"
        if e.errno == errno.ENOTDIR:
            return "a folder on the path is a file"
        return e.strerror or str(e)
    return None


def _name_max(path: Path) -> int:
    """The longest file name the file system under `path` takes (255 on Linux and macOS file systems)."""
    for folder in (path.parent, *path.parent.parents):
        try:
            return os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return 255


def read_text(path: Path) -> str:
    """The UTF-8 text of a regular file of at most MAX_FILE_BYTES (checked before it is opened)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot be read ({e.strerror})") from None
    except ValueError:  # a NUL byte in the name: no file can have it
        raise SpecError(f"{str(path)!r}: not a file name (it holds a NUL byte); give the path to a file") from None
    if stat.S_ISDIR(st.st_mode):
        raise SpecError(f"{path}: is a directory; pass a YAML or JSON file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise SpecError(f"{path}: is {kind}, not a regular file; save the content to a file and pass that")
    if st.st_size > MAX_FILE_BYTES:
        raise SpecError(
            f"{path}: {st.st_size:,} bytes is over the {MAX_FILE_BYTES:,}-byte limit for an input file; "
            "pass the input file itself (a spec, profile, plan, fleet, price sheet or config.json), not an archive or a dump"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise SpecError(f"{path}: cannot be read ({e.strerror})") from None
    if len(data) > MAX_FILE_BYTES:  # grew since the stat
        raise SpecError(f"{path}: over the {MAX_FILE_BYTES:,}-byte limit for an input file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a UTF-8 text file (byte {e.start}); save it as UTF-8 YAML or JSON") from None


# --------------------------------------------------------------------------- YAML

# libyaml's parser where PyYAML has it (10x faster than the pure-Python one); the resolver and constructor below
# are Python either way.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


class _TooLarge(Exception):
    """Raised inside the parser when a limit is passed (not a YAMLError: the message is ours)."""


class StrictLoader(_BASE_LOADER):
    """A safe YAML loader with YAML 1.2 core-schema scalars, duplicate keys refused and a node limit."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream):
        super().__init__(stream)
        self._nodes = 0

    def resolve(self, kind, value, implicit):
        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise _TooLarge(f"more than {MAX_YAML_NODES:,} YAML nodes")
        return super().resolve(kind, value, implicit)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base constructor names it
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {_short(key)} is given twice (lines {first} and {line}); keep one", key_node.start_mark
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        value = self.construct_scalar(node)
        if not _INT.match(value):
            raise yaml.constructor.ConstructorError(None, None, f"{value!r} is not a decimal integer", node.start_mark)
        if len(value.lstrip("+-")) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(value.lstrip('+-')):,} digits (at most {MAX_INT_DIGITS})", node.start_mark
            )
        return int(value, 10)

    def construct_yaml_float(self, node):
        value = self.construct_scalar(node)
        if not _FLOAT.match(value):
            raise yaml.constructor.ConstructorError(None, None, f"{value!r} is not a number", node.start_mark)
        return float(value.lower().replace(".inf", "inf").replace(".nan", "nan"))


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error as one line: the problem and where."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    context = getattr(e, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    text = f"{context}: {problem}" if context and problem else problem
    return _one_line(f"{where}{text}")


def parse_yaml(text: str, where: Path | str = "<text>") -> object:
    """YAML text -> Python data under the limits above; SpecError naming `where` otherwise."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"{where}: over the {MAX_FILE_BYTES:,}-byte limit for an input file")
    loader = StrictLoader(text)
    try:
        data = loader.get_single_data()
    except _TooLarge as e:
        raise SpecError(
            f"{where}: {e}; costsim's input files hold a few thousand (a workload's 10,000 request classes about 70,000): "
            "shorten the file"
        ) from None
    except yaml.YAMLError as e:
        raise SpecError(f"{where}: not valid YAML ({_yaml_problem(e)})") from None
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to read (at most {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()
    check_tree(data, where)
    return data


def read_yaml(path: Path) -> object:
    return parse_yaml(read_text(path), path)


# --------------------------------------------------------------------------- JSON


class _Digits(Exception):
    pass


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Digits(len(text.lstrip("-")))
    return int(text)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's pairs as a dict, refusing a key given twice (as the YAML loader refuses it): a config.json with
    a second num_hidden_layers silently doubled the model."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def parse_json(text: str, where: Path | str = "<text>", *, finite: bool = True) -> object:
    """JSON text -> Python data under the limits above; SpecError naming `where` otherwise. finite=False leaves
    NaN and Infinity to the caller's schema (calibration files name them in their own terms)."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"{where}: over the {MAX_FILE_BYTES:,}-byte limit for an input file")
    try:
        data = json.loads(text, parse_int=_json_int, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise SpecError(
            f"{where}: key {e.args[0]!r} is given twice in one object (JSON keeps the last silently); keep one"
        ) from None
    except json.JSONDecodeError as e:
        raise SpecError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except _Digits as e:
        raise SpecError(
            f"{where}: an integer of {e.args[0]:,} digits; numbers in costsim's inputs have at most {MAX_INT_DIGITS}, "
            "so fix that number"
        ) from None
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to read (at most {MAX_DEPTH} levels of objects and arrays)") from None
    check_tree(data, where, finite=finite)
    return data


def read_json(path: Path, *, finite: bool = True) -> object:
    return parse_json(read_text(path), path, finite=finite)


# --------------------------------------------------------------------------- the parsed tree


def _key_path(parts: tuple) -> str:
    return ".".join(_loc_part(p) for p in parts) or "(top level)"


def check_tree(data: object, where: Path | str, *, finite: bool = True) -> None:
    """Depth, size and finiteness of a parsed document, walked without recursion; SpecError naming the key path."""
    stack: list[tuple[object, tuple, int]] = [(data, (), 0)]
    count = 0
    while stack:
        node, parts, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise SpecError(
                f"{where}: more than {MAX_VALUES:,} values (aliases counted as expanded); "
                "costsim's files hold a few thousand at most"
            )
        if finite and isinstance(node, float) and not math.isfinite(node):
            raise SpecError(
                f"{where}: `{_key_path(parts)}` is {node}; every number must be finite, so give the measured or published value"
            )
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise SpecError(
                    f"{where}: `{_key_path(parts[:8])}...` nests deeper than {MAX_DEPTH} levels; "
                    "costsim's files nest at most a handful"
                )
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in items:
                if isinstance(key, float) and not math.isfinite(key):
                    raise SpecError(f"{where}: a key `{key}` under `{_key_path(parts)}` is not a finite number")
                stack.append((value, (*parts, key), depth + 1))


def validate(raw: object, schema: type[BaseModel], where: Path | str, read_from: dict[str, str] | None = None):
    """`raw` validated against `schema`, or SpecError naming the file, each field, the value, and the fix.
    `read_from`: when `raw` was built from another format, the file's key each field is read from (named in the fix)."""
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where}: expected a mapping of {schema.__name__} fields (key: value lines), got {type(raw).__name__}; "
            "write the fields at the top level of the file"
        )
    try:
        return schema.model_validate(raw)
    except ValidationError as e:
        raise SpecError(_format_validation(where, schema, e, read_from=read_from)) from None


# Keys that tell one kind of costsim file from another, and how each is passed.
FILE_KINDS = (
    ("stages", "a plan", "estimate, report and claim take it as --plan"),
    ("dense_tflop_per_s", "a hardware profile", "give it as --gpu"),
    ("n_layers", "a model spec", "give it as the MODEL argument"),
    ("tokens", "a fleet (a day of serving)", "run it with costsim fleet"),
    ("cases", "a validation dataset", "it is read by costsim validate"),
)


def refuse_other_kind(raw: object, path: Path, expected: str, key: str) -> None:
    """One line where the file is another kind of costsim file (a plan given as MODEL), instead of a page of the
    schema's field errors."""
    if not isinstance(raw, dict) or key in raw:
        return
    for marker, kind, how in FILE_KINDS:
        if marker in raw and marker != key:
            raise SpecError(f"{path}: this is {kind}, not {expected}; {how}")


def cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in the existing folder `folder`, or None where one can: the kernel's permission
    check, then a file created and removed there, since os.access says yes to root anywhere (/proc, a read-only
    mount) and a fit, a calibration or a report would learn otherwise only after its work. A file that can be created
    but not removed (an append-only folder) is named, not left behind silently."""
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return "it is not writable"
    try:
        fd, probe = tempfile.mkstemp(prefix=".costsim-probe.", suffix=".tmp", dir=folder)
    except OSError as e:
        return f"a file cannot be created there ({e.strerror})"
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as e:
        return f"a file created there cannot be removed ({e.strerror}; remove {probe})"
    return None
