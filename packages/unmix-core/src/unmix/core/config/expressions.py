"""The seed's value expressions, parsed instead of eval'd.

The original passed every configuration value through Python's `eval`, so
`"int(env('UNMIX_SONG_LIMIT'))"` became a number (and any config file could run code). unmix
accepts the same forms through a tiny parser: `env('NAME')`, `env('NAME', default)` (an unmix
addition), and `int(...)`, `float(...)`, `str(...)`, `str2bool(...)` around them. A string that does not
start with one of these calls is plain text and stays as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

FUNCTIONS = ("env", "int", "float", "str", "str2bool")
_CALL_START = re.compile(r"\s*(env|int|float|str|str2bool)\s*\(")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_TRUE = {"true", "yes", "y", "1", "on", "t"}
_FALSE = {"false", "no", "n", "0", "off", "f", ""}


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the config loader adds key and file."""


class MissingVariableError(ExpressionError):
    def __init__(self, variable: str) -> None:
        super().__init__(variable)
        self.variable = variable


def is_expression(value: object) -> bool:
    return isinstance(value, str) and _CALL_START.match(value) is not None


def str2bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ExpressionError(f"str2bool cannot read {value!r} as true or false")


def _to_int(value: object) -> int:
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)
            if number.is_integer():
                return int(number)
            raise ExpressionError(f"int() got {value!r}, which is not a whole number") from None
    return int(value)  # type: ignore[call-overload]


def evaluate(text: str, environment: Mapping[str, str] | None = None) -> Any:
    """Evaluate one expression such as `int(env('UNMIX_SONG_LIMIT'))`."""
    parser = _Parser(text, os.environ if environment is None else environment)
    return parser.parse()


class _Parser:
    def __init__(self, text: str, environment: Mapping[str, str]) -> None:
        self.text = text
        self.environment = environment
        self.tokens = self._tokenize(text)
        self.position = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens = []
        index = 0
        while index < len(text):
            if text[index:].strip() == "":
                break
            match = _TOKEN.match(text, index)
            if match is None:
                raise ExpressionError(f"cannot parse {text!r} at character {index + 1}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match.group(kind)))
            index = match.end()
        return tokens

    def parse(self) -> Any:
        value = self._expression()
        if self.position != len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.position][1]!r} in {self.text!r}")
        return value

    def _next(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ExpressionError(f"{self.text!r} ends too early")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _expect(self, punct: str) -> None:
        kind, value = self._next()
        if (kind, value) != ("punct", punct):
            raise ExpressionError(f"expected {punct!r} but found {value!r} in {self.text!r}")

    def _expression(self) -> Any:
        kind, value = self._next()
        if kind == "string":
            return value[1:-1]
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "name":
            if value in ("True", "False", "true", "false"):
                return value.lower() == "true"
            if value in ("None", "null"):
                return None
            if value not in FUNCTIONS:
                raise ExpressionError(f"unknown function {value!r} in {self.text!r}; use one of {', '.join(FUNCTIONS)}")
            return self._call(value)
        raise ExpressionError(f"unexpected {value!r} in {self.text!r}")

    def _call(self, function: str) -> Any:
        self._expect("(")
        arguments = [self._expression()]
        while self.position < len(self.tokens) and self.tokens[self.position] == ("punct", ","):
            self.position += 1
            arguments.append(self._expression())
        self._expect(")")
        return self._apply(function, arguments)

    def _apply(self, function: str, arguments: list[Any]) -> Any:
        if function == "env":
            if len(arguments) not in (1, 2) or not isinstance(arguments[0], str):
                raise ExpressionError(f"env() takes a variable name and an optional default, in {self.text!r}")
            name = arguments[0]
            if name in self.environment:
                return self.environment[name]
            if len(arguments) == 2:
                return arguments[1]
            raise MissingVariableError(name)
        if len(arguments) != 1:
            raise ExpressionError(f"{function}() takes one argument, in {self.text!r}")
        converters: dict[str, Callable[[Any], Any]] = {
            "int": _to_int,
            "float": float,
            "str": str,
            "str2bool": str2bool,
        }
        try:
            return converters[function](arguments[0])
        except ExpressionError:
            raise
        except (TypeError, ValueError):
            raise ExpressionError(f"{function}() cannot convert {arguments[0]!r}") from None
