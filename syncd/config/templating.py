"""The template language of computed columns and ``where:`` filters: Jinja2 in its sandbox.

One environment serves config validation (does a template parse?) and the mapping (what does
it give for this resource?), so a template that passes ``syncd check-config`` renders with the
same rules in the daemon. Results are native: a template that is one expression
(``{{ units * 2 }}``) gives that Python value, so numbers stay numbers in the sheet; a template
of several parts gives their text joined. Text is never parsed back into a value, so a name
"1234" stays text.

The sandbox keeps Python's internals out of reach; on top of it, everything that makes a
result much larger than its input (``*``, ``**``, ``+``, ``~``, ``%``, padding and replacing)
is measured before it runs, and rendered text stops at MAX_TEXT characters, so a template
mistake fails fast instead of eating the daemon's memory. See docs/templates.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The longest text a template may make; longer output fails the template (Google refuses
#: cells of more than 50,000 characters anyway).
MAX_TEXT = 50_000
#: The largest whole number a template may compute, in bits (about 1,200 decimal digits).
MAX_BITS = 4_096


class BadTemplate(ValueError):
    """A template or expression that does not compile; the message is one line."""


class TemplateFailure(Exception):
    """A template that compiled but failed for one resource; the message is one line."""


# -- moments: Cobot's dates and times, read the same in templates and typed columns ----------

_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d")
_DATETIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S %z",
    "%Y/%m/%d %H:%M %z",
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M %z",
)
#: Cobot's own date and datetime shapes (``2025/06/01``, ``2025/06/01 12:00:00 +0000``), read
#: without strptime, which costs most of a row's mapping; anything else takes the slow path.
_COBOT_MOMENT = re.compile(
    r"(\d{4})/(\d{2})/(\d{2})(?: (\d{2}):(\d{2})(?::(\d{2}))? ([+-])(\d{2})(\d{2}))?"
)


def parse_moment(value: Any, tz: tzinfo) -> date | datetime:
    """Parse Cobot's dates (``2025/06/01``), datetimes (``2025/06/01 12:00:00 +0000``) and ISO
    8601; raise ValueError or TypeError for anything else.

    Datetimes are converted to ``tz``; plain dates are calendar dates and stay as they are.
    """
    if not isinstance(value, str):
        raise TypeError("not a date string")
    text = value.strip()
    cobot = _COBOT_MOMENT.fullmatch(text)
    if cobot is not None:
        with contextlib.suppress(ValueError):  # e.g. 2025/02/30: the slow path says so
            return _cobot_moment(cobot, tz)
    for fmt in _DATE_FORMATS:
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, fmt).date()
    for fmt in _DATETIME_FORMATS:
        with contextlib.suppress(ValueError):
            return datetime.strptime(text, fmt).astimezone(tz)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(tz)


def _cobot_moment(match: re.Match[str], tz: tzinfo) -> date | datetime:
    """What strptime makes of a ``_COBOT_MOMENT`` match, the same as parse_moment's loop."""
    year, month, day, hour, minute, second, sign, off_h, off_m = match.groups()
    if hour is None:
        return date(int(year), int(month), int(day))
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    zone = timezone(-offset if sign == "-" else offset)
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=zone
    )
    return moment.astimezone(tz)


# -- the filters managers need and Jinja2 lacks (each has an example in docs/templates.md) ---

#: The configured time zone while one template renders, for the date filters.
_ZONE: contextvars.ContextVar[tzinfo] = contextvars.ContextVar("template_zone", default=UTC)


def _moment(value: Any) -> date | datetime | None:
    if isinstance(value, date):
        return value
    try:
        return parse_moment(value, _ZONE.get())
    except (TypeError, ValueError, OverflowError):
        return None


def cobot_datetime(value: Any) -> datetime | None:
    """``'2025/06/10 09:00:00 +0000' | cobot_datetime``: the moment in the configured time
    zone (a plain date is its midnight); None when it is not a date."""
    moment = _moment(value)
    if moment is None or isinstance(moment, datetime):
        return moment
    return datetime(moment.year, moment.month, moment.day, tzinfo=_ZONE.get())


def cobot_date(value: Any) -> date | None:
    """``'2025/06/10 23:30:00 +0000' | cobot_date``: the calendar day in the configured time
    zone; None when it is not a date."""
    moment = _moment(value)
    return moment.date() if isinstance(moment, datetime) else moment


def hours_between(start: Any, end: Any) -> float | None:
    """``this['from'] | hours_between(this.to)``: hours from start to end (a booking's
    length); None when either is not a date."""
    first, last = cobot_datetime(start), cobot_datetime(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds() / 3600


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def amount(value: Any) -> float | None:
    """``'148.745' | amount``: a number rounded half up to 2 places (148.75); None when the
    value is not a number."""
    number = _decimal(value)
    if number is None:
        return None
    try:
        return float(number.quantize(Decimal("0.01"), ROUND_HALF_UP))
    except InvalidOperation:  # more digits than a Decimal holds: no amount of money
        return None


def cents_to_amount(value: Any) -> float | None:
    """``12345 | cents_to_amount``: 123.45; None when the value is not a number."""
    number = _decimal(value)
    return None if number is None else amount(number / 100)


def date_format(value: Any, pattern: str = "%Y-%m-%d") -> str | None:
    """``valid_from | date_format('%d.%m.%Y %H:%M')``: a Cobot date or time written with a
    strftime pattern, in the configured time zone; None when it is not a date."""
    moment = _moment(value)
    return None if moment is None else moment.strftime(str(pattern))


FILTERS: dict[str, Callable[..., Any]] = {
    "amount": amount,
    "cents_to_amount": cents_to_amount,
    "cobot_date": cobot_date,
    "cobot_datetime": cobot_datetime,
    "date_format": date_format,
    "hours_between": hours_between,
}


# -- bounds ------------------------------------------------------------------------------------


def _refuse_above(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise SecurityError(f"{what} would be longer than {MAX_TEXT:,} characters")


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")


def _check_format(text: str) -> None:
    """Refuse widths and precisions (``%99999999s``, ``{:>99999999}``) that pad beyond bounds."""
    for match in _PRINTF_SPEC.finditer(text):
        for size in match.groups():
            if size == "*" or (size and int(size) > MAX_TEXT):
                raise SecurityError(f"a format width above {MAX_TEXT:,} characters")
    if _NESTED_SPEC.search(text):
        raise SecurityError("a format width taken from an argument")
    for spec in _BRACE_SPEC.findall(text):
        if any(int(digits) > MAX_TEXT for digits in re.findall(r"\d+", spec)):
            raise SecurityError(f"a format width above {MAX_TEXT:,} characters")


def _check_sizes(name: str, value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a filter or text method call whose result would far outgrow MAX_TEXT."""
    if name == "format" and isinstance(value, str):
        _check_format(value)
        return
    if name in ("replace", "indent", "expandtabs"):
        _check_text(name, value if isinstance(value, str) else str(value), args, kwargs)
    for number in (*args, *kwargs.values()):
        if isinstance(number, int) and abs(number) > MAX_TEXT:
            raise SecurityError(f"{name}: a size above {MAX_TEXT:,}")


def _check_text(name: str, text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """The result's length of the calls that repeat parts of a text."""
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = text.count(old) if old else len(text) + 1
        _refuse_above(len(text) + hits * len(new), "replace")
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        step = len(width) if isinstance(width, str) else int(width)
        _refuse_above(len(text) + (text.count("\n") + 1) * step, "indent")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _refuse_above(len(text) + text.count("\t") * int(size), "expandtabs")


def _check_join(separator: str, items: list[Any]) -> None:
    _refuse_above(sum(len(str(item)) for item in items) + len(separator) * len(items), "join")


def _sized_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A builtin filter that measures its result before making it."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def sized(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[skip], args[skip + 1 :]
        if name == "join":
            items = list(value)
            _check_join(str(rest[0] if rest else kwargs.get("d", "")), items)
            args = (*args[:skip], items, *rest)
        else:
            _check_sizes(name, value, rest, kwargs)
        return func(*args, **kwargs)

    return sized


#: Builtin filters whose result can be much larger than their input.
_SIZED_FILTERS = ("batch", "center", "format", "indent", "join", "replace", "round", "slice")
#: Binary operators measured before they run.
_MEASURED = {"+": operator.add, "*": operator.mul, "**": operator.pow, "%": operator.mod}


def _check_binop(symbol: str, left: Any, right: Any) -> None:
    if isinstance(left, bool) or isinstance(right, bool):
        return
    sized = (str, list, tuple)
    if symbol == "+" and isinstance(left, sized) and isinstance(right, sized):
        _refuse_above(len(left) + len(right), "+")
    elif symbol == "*" and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_BITS:
            raise SecurityError(f"a number of more than {MAX_BITS:,} bits")
    elif symbol == "*":
        seq, count = (left, right) if isinstance(left, sized) else (right, left)
        if isinstance(seq, sized) and isinstance(count, int):
            _refuse_above(len(seq) * count, "*")
    elif symbol == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if left.bit_length() * right > MAX_BITS:
            raise SecurityError(f"a number of more than {MAX_BITS:,} bits")
    elif symbol == "%" and isinstance(left, str):
        _check_format(left)


def _text(part: Any) -> str:
    """A part of joined text: None and undefined values are empty, not "None"."""
    return "" if part is None or isinstance(part, Undefined) else str(part)


class _CodeGenerator(NativeCodeGenerator):
    """Native output, and ``~`` joined by the environment so that it is measured."""

    def _output_child_to_const(
        self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo
    ) -> Any:
        """Only literal text is folded into the code: a folded ``{{ 42 }}`` would be text."""
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with native results, measured growth and JSON fields before methods."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset(_MEASURED)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _MEASURED[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Text methods (``'x'.ljust(n)``, ``','.join(items)``) are measured before they run."""
        method = getattr(__obj, "__wrapped__", __obj)  # str.format arrives wrapped
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            name = getattr(method, "__name__", "")
            if name == "join" and len(args) == 1 and not kwargs:
                args = (list(args[0]),)
                _check_join(owner, args[0])
            else:
                _check_sizes(name, owner, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        """Python's internals fail the template loudly instead of rendering empty."""
        raise SecurityError(f"{attribute!r} is not available in templates")

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``this.items`` is the resource's field, not the dict method of that name."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``this['items']`` is the field or nothing, never the dict method of that name."""
        if isinstance(obj, dict) and isinstance(argument, str) and argument not in obj:
            return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)

    def join_text(self, parts: Iterable[Any]) -> str:
        texts = [_text(part) for part in parts]
        _refuse_above(sum(map(len, texts)), "~")
        return "".join(texts)


_ENV = _Environment(undefined=ChainableUndefined, autoescape=False)
del _ENV.globals["lipsum"]  # its paragraph count is unbounded
_ENV.filters.update({name: _sized_filter(name, _ENV.filters[name]) for name in _SIZED_FILTERS})
_ENV.filters.update(FILTERS)

_NOTHING = object()


def _joined(parts: Iterator[Any]) -> Any:
    """One part as its own value (undefined as None); several as text, stopping at MAX_TEXT."""
    first = next(parts, _NOTHING)
    second = next(parts, _NOTHING)
    if second is _NOTHING:
        return None if first is _NOTHING or isinstance(first, Undefined) else first
    texts = [_text(first), _text(second)]
    size = len(texts[0]) + len(texts[1])
    for part in parts:
        texts.append(_text(part))
        size += len(texts[-1])
        if size > MAX_TEXT:
            break
    _refuse_above(size, "the output")
    return "".join(texts)


def _failure(exc: Exception) -> TemplateFailure:
    """The error as one short line (its text may quote a value, never the whole resource)."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return TemplateFailure(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


@dataclass(frozen=True, eq=False)
class CompiledTemplate:
    """A compiled template (or ``where:`` expression), rendered once per resource."""

    source: str
    #: Every variable it reads (``member``, ``this``, fields), from jinja2.meta.
    variables: frozenset[str]
    _template: Template
    _expression: bool

    def render(self, variables: Mapping[str, Any], zone: tzinfo = UTC) -> Any:
        """The value for these variables (dates in ``zone``); raise TemplateFailure."""
        token = _ZONE.set(zone)
        try:
            context = self._template.new_context(dict(variables))
            if self._expression:
                for _ in self._template.root_render_func(context):
                    pass
                result = context.vars["result"]
                return None if isinstance(result, Undefined) else result
            return _joined(self._template.root_render_func(context))
        except Exception as exc:  # any error of a template is its own failure
            raise _failure(exc) from None
        finally:
            _ZONE.reset(token)


@functools.lru_cache(maxsize=1024)
def compile_template(source: str) -> CompiledTemplate:
    """A column's template, compiled once; raise BadTemplate when it does not parse."""
    with _compiling():
        tree = _ENV.parse(source)
        _check_names(tree)
        template = _ENV.from_string(tree)
    return CompiledTemplate(source, _variables(tree), template, _expression=False)


@functools.lru_cache(maxsize=256)
def compile_expression(source: str) -> CompiledTemplate:
    """A ``where:`` expression (``paid_status == 'unpaid'``), compiled once; its render gives the
    expression's value. Raise BadTemplate when it does not parse."""
    with _compiling():
        parser = Parser(_ENV, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                "chunk after expression", parser.stream.current.lineno, None, None
            )
        store = nodes.Assign(nodes.Name("result", "store"), expression)
        tree = nodes.Template([store], lineno=1)
        tree.set_environment(_ENV)
        _check_names(tree)
        template = _ENV.from_string(tree)
    return CompiledTemplate(source, _variables(tree), template, _expression=True)


def undefined(name: str) -> Undefined:
    """What a variable holds that has nothing to show (``member`` without a membership):
    it renders empty, and ``member.address.company`` on it is empty too."""
    return ChainableUndefined(name=name)


def template_variables(source: str) -> frozenset[str]:
    """The variables a template reads; raise BadTemplate when it does not parse."""
    return compile_template(source).variables


@contextlib.contextmanager
def _compiling() -> Iterator[None]:
    try:
        yield
    except TemplateSyntaxError as exc:
        reason = " ".join((exc.message or "invalid").split()).rstrip(".")
        line = f" (line {exc.lineno})" if exc.lineno else ""
        raise BadTemplate(f"does not parse: {reason}{line}") from None


def _check_names(tree: nodes.Template) -> None:
    """Unknown filters and tests fail now, also those in a branch that seldom runs."""
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
        if node.name not in known:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            close = difflib.get_close_matches(node.name, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BadTemplate(f"uses the unknown {kind} {node.name!r}{hint}; see docs/templates.md")


def _variables(tree: nodes.Template) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(tree))
