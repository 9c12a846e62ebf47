"""Settings models as HTML forms: a description of each field, and form strings back to values."""
from __future__ import annotations

import contextlib
import enum
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

import annotated_types as at
from pydantic import BaseModel, SecretBytes, SecretStr


__all__ = ["FieldSpec", "coerce_form", "form_fields"]


# ------------------------------------------------------------------- HTML forms
@dataclass
class FieldSpec:
    """How to render one settings field as an HTML form control.

    ``input_type`` is ``number``, ``checkbox``, ``text``, ``select`` or ``password``;
    ``choices`` holds ``(value, label)`` pairs for selects; ``min``/``max`` are inclusive
    HTML bounds derived from ``ge/gt/le/lt`` (``gt``/``lt`` on floats stay as given and
    are enforced on submit). Secrets never expose their value or default (both ``""``).
    """

    name: str
    label: str
    input_type: str
    required: bool = False
    default: Any = None
    value: Any = None
    help: str = ""
    step: Optional[str] = None
    min: Optional[float] = None
    max: Optional[float] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    choices: List[Tuple[Any, str]] = field(default_factory=list)
    optional: bool = False


def _analyse(annotation: Any, metadata: List[Any]) -> Tuple[Any, List[Any], bool]:
    """Strip ``Optional``/``Annotated`` wrappers.

    :param annotation: the field annotation.
    :param metadata: the field metadata (extended with nested ``Annotated`` metadata).
    :return: ``(base type, metadata, accepts None)``.
    """
    metadata, optional = list(metadata), False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = annotation.__origin__
        elif origin is typing.Union or origin is getattr(types, "UnionType", object()):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, metadata, optional
            annotation = args[0]
        else:
            return annotation, metadata, optional


def _plain(value: Any) -> Any:
    """Return enum members by value, anything else unchanged.

    :param value: a field value.
    """
    return value.value if isinstance(value, enum.Enum) else value


def form_fields(model: Any) -> List[FieldSpec]:
    """Describe each field of a settings model (class or instance) for an HTML form.

    :param model: a ``BaseModel`` subclass (values = defaults) or instance (values = current).
    """
    cls: Type[BaseModel] = model if isinstance(model, type) else type(model)
    specs: List[FieldSpec] = []
    for name, info in cls.model_fields.items():
        tp, metadata, optional = _analyse(info.annotation, list(info.metadata))
        required = info.is_required()
        default = None if required else info.get_default(call_default_factory=True)
        value = default if isinstance(model, type) else getattr(model, name)
        spec = FieldSpec(name=name, label=info.title or name.replace("_", " ").strip().capitalize(),
                         input_type="text", required=required, default=_plain(default),
                         value=_plain(value), help=info.description or "", optional=optional)
        if typing.get_origin(tp) is typing.Literal:
            spec.input_type = "select"
            spec.choices = [(_plain(a), str(a)) for a in typing.get_args(tp)]
        elif isinstance(tp, type) and issubclass(tp, enum.Enum):
            spec.input_type = "select"
            spec.choices = [(member.value, member.name) for member in tp]
        elif tp is bool:
            spec.input_type = "checkbox"
        elif isinstance(tp, type) and issubclass(tp, (int, float, Decimal)):
            is_int = issubclass(tp, int)
            spec.input_type, spec.step = "number", "1" if is_int else "any"
            for m in metadata:
                gt, ge = getattr(m, "gt", None), getattr(m, "ge", None)
                lt, le = getattr(m, "lt", None), getattr(m, "le", None)
                if isinstance(m, at.MultipleOf):
                    spec.step = str(m.multiple_of)
                if ge is not None or gt is not None:
                    spec.min = ge if gt is None else gt + 1 if is_int else gt
                if le is not None or lt is not None:
                    spec.max = le if lt is None else lt - 1 if is_int else lt
        elif isinstance(tp, type) and issubclass(tp, (SecretStr, SecretBytes)):
            spec.input_type, spec.default, spec.value = "password", "", ""
        for m in metadata:
            if isinstance(m, at.MinLen):
                spec.min_length = m.min_length
            elif isinstance(m, at.MaxLen):
                spec.max_length = m.max_length
        specs.append(spec)
    return specs


def coerce_form(model: Any, form: Mapping[str, str]) -> Dict[str, Any]:
    """Turn submitted HTML form strings into values for :meth:`SettingsStore.update`.

    Checkboxes: absent or ``""/0/false/off`` -> ``False``, anything else -> ``True``.
    Numbers: parsed when possible, otherwise the raw string is passed on so pydantic reports
    the error (an empty string included, unless the field is ``Optional`` -> ``None``).
    Selects: mapped back to the choice whose ``str`` matches. An empty password means "keep
    the current secret" and is omitted. Other fields absent from the form are omitted, as
    are form keys that are not fields (CSRF tokens, buttons).

    :param model: the settings model class or an instance.
    :param form: field name -> submitted string.
    """
    out: Dict[str, Any] = {}
    for spec in form_fields(model):
        raw = form.get(spec.name)
        if spec.input_type == "checkbox":
            out[spec.name] = raw is not None and raw.strip().lower() not in ("", "0", "false", "off")
        elif raw is None or (spec.input_type == "password" and raw == ""):
            continue
        elif raw.strip() == "" and spec.optional:
            out[spec.name] = None
        elif spec.input_type == "select":
            matches = [value for value, _label in spec.choices if str(value) == raw]
            out[spec.name] = matches[0] if matches else raw
        elif spec.input_type == "number":
            out[spec.name] = _parse_number(raw.strip())
        else:
            out[spec.name] = raw
    return out


def _parse_number(text: str) -> Any:
    """Parse a number field as ``int``, else ``float``, else return the text unchanged.

    :param text: stripped form input.
    """
    for parse in (int, float):
        with contextlib.suppress(ValueError):
            return parse(text)
    return text
