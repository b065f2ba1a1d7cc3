"""Pydantic validation errors of an input file (model spec, hardware profile, plan, stacks, calibration) in words:
each names the field path, the value given, what the field takes (its kind and range, read from the schema) and a
fix for that kind of error: "set n_layers to an integer between 1 and 1,000", "remove n_layer (did you mean
n_layers?)", "use a number, not a string: write d_model: 4096 without quotes", "add d_model, an integer between 1
and 1,000,000".

Custom rules (a model validator's ValueError) carry their own fix in their message.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, Tag, ValidationError
from pydantic.fields import FieldInfo

RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
TYPE_ERRORS = {
    "int_type", "int_parsing", "int_from_float", "float_type", "float_parsing", "bool_type", "bool_parsing",
    "string_type", "dict_type", "model_type", "model_attributes_type", "list_type", "tuple_type",
}  # fmt: skip
NO_KIND = {"value_error", "extra_forbidden", "literal_error", "enum"}
"""Errors whose message already says what the field takes (or that it takes nothing)."""


# --------------------------------------------------------------------------- what the schema says a field takes


class _Field:
    """A field's type with Optional stripped, its bounds and the model that holds it (for 'did you mean')."""

    def __init__(self, annotation: Any, constraints: list, parent: type[BaseModel] | None):
        self.annotation = annotation
        self.parent = parent
        self.bounds: dict[str, float] = {}
        self.min_length: int | None = None
        for c in constraints:
            for name in ("ge", "gt", "le", "lt"):
                if isinstance(c, getattr(annotated_types, name.capitalize())):
                    self.bounds[name] = getattr(c, name)
            if isinstance(c, annotated_types.MinLen):
                self.min_length = c.min_length


def _constraints(info: FieldInfo | None) -> list:
    return list(info.metadata) if info is not None else []


def _unwrap(annotation: Any, constraints: list) -> tuple[Any, list]:
    """Strip Optional and Annotated, collecting Annotated's bounds."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *meta = get_args(annotation)
            for m in meta:
                constraints += list(m.metadata) if isinstance(m, FieldInfo) else [m]
            annotation = base
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, constraints
            annotation = args[0]
        else:
            return annotation, constraints


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tagged_member(annotation: Any, tag: object) -> Any | None:
    """The member of a tagged union (Annotated[Model, Tag(name)] | ...) whose tag is `tag`, else None."""
    if get_origin(annotation) not in (Union, types.UnionType) or not isinstance(tag, str):
        return None
    for member in get_args(annotation):
        if get_origin(member) is Annotated:
            base, *meta = get_args(member)
            if any(isinstance(m, Tag) and m.tag == tag for m in meta):
                return base
    return None


def without_tags(schema: type[BaseModel], loc: tuple) -> tuple:
    """An error's location without the tags pydantic inserts after a tagged union (stages.0.rl.steps ->
    stages.0.steps): the path as the file writes it."""
    annotation: Any = schema
    out: list = []
    for part in loc:
        annotation, _ = _unwrap(annotation, [])
        member = _tagged_member(annotation, part)
        if member is not None:
            annotation = member
            continue
        out.append(part)
        origin = get_origin(annotation)
        if _is_model(annotation):
            info = annotation.model_fields.get(part) if isinstance(part, str) else None
            annotation = info.annotation if info is not None else Any
        elif origin in (list, tuple) and isinstance(part, int):
            annotation = (get_args(annotation) or (Any,))[0]
        elif origin is dict:
            annotation = (get_args(annotation) or (Any, Any))[-1]
        else:
            annotation = Any
    return tuple(out)


def field_at(schema: type[BaseModel], loc: tuple) -> _Field | None:
    """The field an error's location points at (list indices and mapping keys followed), or None where the schema
    cannot be followed (a union of models, a validator's own location)."""
    annotation: Any = schema
    constraints: list = []
    parent: type[BaseModel] | None = None
    for part in loc:
        annotation, constraints = _unwrap(annotation, [])
        member = _tagged_member(annotation, part)
        if member is not None:
            annotation = member
            continue
        origin = get_origin(annotation)
        if _is_model(annotation):
            info = annotation.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return _Field(None, [], annotation) if isinstance(part, str) else None
            parent, annotation, constraints = annotation, info.annotation, _constraints(info)
        elif origin in (list, tuple) and isinstance(part, int):
            annotation, constraints = (get_args(annotation) or (Any,))[0], []
        elif origin is dict:
            annotation, constraints = (get_args(annotation) or (Any, Any))[-1], []
        else:
            return None
    annotation, constraints = _unwrap(annotation, constraints)
    return _Field(annotation, constraints, parent)


def _number(x: float, integer: bool) -> str:
    if integer or (isinstance(x, int) and not isinstance(x, bool)):
        return f"{int(x):,}"
    return f"{x:,g}"  # thousands separated, 6 significant digits


def _range(f: _Field, integer: bool) -> str:
    b = f.bounds
    low = ("ge", b["ge"]) if "ge" in b else ("gt", b["gt"]) if "gt" in b else None
    high = ("le", b["le"]) if "le" in b else ("lt", b["lt"]) if "lt" in b else None
    if low and high:
        if low[0] == "ge" and high[0] == "le":
            return f" between {_number(low[1], integer)} and {_number(high[1], integer)}"
        lo = f"{'at least' if low[0] == 'ge' else 'above'} {_number(low[1], integer)}"
        return f" {lo} and {'at most' if high[0] == 'le' else 'below'} {_number(high[1], integer)}"
    if low:
        return f" {'of at least' if low[0] == 'ge' else 'above'} {_number(low[1], integer)}"
    if high:
        return f" {'of at most' if high[0] == 'le' else 'below'} {_number(high[1], integer)}"
    return ""


def expected_kind(f: _Field | None) -> str | None:
    """What a field takes, in words: 'an integer between 1 and 1,000', "one of 'swiglu', 'gelu'", 'true or false'."""
    if f is None or f.annotation is None:
        return None
    a = f.annotation
    if a is bool:
        return "true or false"
    if a is int:
        return "an integer" + _range(f, True)
    if a is float:
        return "a number" + _range(f, False)
    if a is str:
        return "text"
    if get_origin(a) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(a))
    if _is_model(a):
        return f"a mapping of {a.__name__} fields ({', '.join(a.model_fields)})"
    if get_origin(a) in (list, tuple):
        return "a list" + (f" of at least {f.min_length} item(s)" if f.min_length else "")
    if get_origin(a) is dict:
        return "a mapping"
    return None


# --------------------------------------------------------------------------- one error


def _loc(loc: tuple) -> str:
    return ".".join(loc_part(p) for p in loc)


def loc_part(part: object) -> str:
    """A key as written, or quoted when it is not a plain name (a key holding a new line stays on one line)."""
    text = str(part)
    return text if re.fullmatch(r"[\w.+-]{1,60}", text) else short(text)


def short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _numeric_text(value: str) -> bool:
    try:
        float(value.replace(",", "").replace("_", ""))
    except ValueError:
        return False
    return True


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _fix(e: dict, where: str, f: _Field | None, kind: str | None) -> str:
    """The fix for one error, specific to its type."""
    t, given = e["type"], e.get("input")
    takes = f", {kind}" if kind else ""
    leaf = loc_part(e["loc"][-1]) if e["loc"] else where
    if t == "missing":
        return f"add {where}{takes}"
    if t == "extra_forbidden":
        parent = f.parent if f is not None else None
        known = list(parent.model_fields) if parent is not None else []
        owner = f"{parent.__name__} has no such field" if parent is not None else "not a field here"
        return f"remove {where}: {owner}{_did_you_mean(str(leaf), known)}"
    if t == "string_too_long" and "max_length" in e.get("ctx", {}):
        return f"shorten {where} to at most {e['ctx']['max_length']:,} characters"
    if t in RANGE_ERRORS:
        return f"set {where} to {kind}" if kind else f"set {where} to a value in the range named"
    if t == "literal_error" or t == "enum":
        expected = e.get("ctx", {}).get("expected", kind or "one of the values named")
        guess = _did_you_mean(str(given), re.findall(r"'([^']*)'", str(expected))) if isinstance(given, str) else ""
        return f"use one of {expected}{guess}"
    if t == "finite_number":
        return f"give {where} a finite number" + (f" ({kind})" if kind else "")
    if t == "too_long" and "max_length" in e.get("ctx", {}):
        return f"give {where} at most {e['ctx']['max_length']:,} items"
    if t in ("too_short", "too_long"):
        return f"give {where} as {kind}" if kind else f"change the number of items in {where}"
    if t in TYPE_ERRORS:
        return _type_fix(t, given, where, leaf, kind)
    return f"set {where} to {kind}" if kind else f"correct {where}"


def _type_fix(t: str, given: object, where: str, leaf: str, kind: str | None) -> str:
    wants_number = t.startswith(("int", "float"))
    kind = kind or ("an integer" if t.startswith("int") else "a number" if wants_number else None)
    if wants_number and isinstance(given, str) and _numeric_text(given):
        text = given.strip()
        if t.startswith("int") and not re.fullmatch(r"[+-]?\d+", text):
            # '1e3' unquoted is still text to YAML 1.1 and a float to JSON: the integer needs its digits.
            value = float(text.replace(",", "").replace("_", ""))
            if not math.isfinite(value) or value != int(value):
                return f"use a whole number: set {where} to {kind}"
            text = str(int(value))
        return f"use a number, not a string: write {where} as {text} without quotes ({kind})"
    if wants_number and isinstance(given, bool):
        return f"use a number, not true/false: set {where} to {kind}"
    if t.startswith("int") and isinstance(given, float) and math.isfinite(given) and given == int(given):
        return f"write {where} as {int(given)}, without a decimal point or exponent ({kind})"
    if t.startswith("int") and isinstance(given, float):
        return f"use a whole number: set {where} to {kind}"
    if t.startswith("bool"):
        return f"write {where} as true or false (yes, no, on, off, 0 and 1 are not flags)"
    if t == "string_type":
        return f'quote it as text: write {where} as "{given}"' if isinstance(given, int | float) else f"give {where} as text"
    if t in ("dict_type", "model_type", "model_attributes_type"):
        return f"give {where} as {kind or 'a mapping'}, its keys indented under {leaf}:"
    if t in ("list_type", "tuple_type"):
        return f"give {where} as {kind or 'a list'}, one '- item' line each"
    return f"set {where} to {kind}" if kind else f"correct {where}"


def describe(e: dict, schema: type[BaseModel], read_from: dict[str, str] | None = None) -> tuple[str, str | None]:
    """(problem, fix) of one pydantic error: the field path, the rule it breaks with the value given and what the
    field takes; and the fix (None for a custom rule, whose message carries its own). `read_from`: for a schema filled
    from another format (a Hugging Face config.json), the file's key each field is read from, named in the fix."""
    where = _loc(without_tags(schema, e["loc"]))
    if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
        ctx = e.get("ctx", {})
        kind = e.get("input", {}).get("kind") if isinstance(e.get("input"), dict) else None
        expected = ctx.get("expected_tags", "")
        problem = f"{where + '.' if where else ''}kind {short(kind)} is not a kind this field takes"
        return problem, f"set {where + '.' if where else ''}kind to one of {expected} (left out, kind is the first)"
    msg = "is required but missing" if e["type"] == "missing" else str(e["msg"]).removeprefix("Value error, ")
    given = e.get("input")
    shown = "" if isinstance(given, dict | list) or e["type"] == "missing" else f" (got {short(given)})"
    problem = f"{where}: {msg}{shown}" if where else f"{msg}{shown}"
    if e["type"] == "value_error":
        return problem, None
    f = field_at(schema, e["loc"])
    kind = expected_kind(f)
    if read_from is not None and e["loc"] and kind:
        key = read_from.get(str(e["loc"][0]))
        if key:
            return problem, f"change {key} in the file so that {where} is {kind}"
        return problem, f"change the settings in the file that {where} is derived from so that it is {kind}"
    return problem, _fix(e, where or "the file", f, kind)


def format_errors(schema: type[BaseModel], err: ValidationError, shown: int = 5, read_from: dict[str, str] | None = None) -> str:
    """The first `shown` errors, each with its fix, as one line (the caller adds the file)."""
    errors = err.errors()
    parts = []
    for e in errors[:shown]:
        problem, fix = describe(e, schema, read_from)
        parts.append(f"{problem}; {fix}" if fix else problem)
    more = f"; and {len(errors) - shown} more" if len(errors) > shown else ""
    if len(parts) == 1:
        return parts[0] + more
    return f"{len(errors)} problems: " + " ".join(f"({i}) {p}." for i, p in enumerate(parts, 1)) + more
