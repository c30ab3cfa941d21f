"""Reading jsonc files: JSON with `//` and `/* */` comments (and trailing commas).

commentjson 0.9, the last release, fails on `/* */` block comments, so they are blanked out
first. Blanking keeps every newline and column, so the line and column that a parse error
reports still point into the file the user wrote.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import commentjson

from unmix.core.errors import ConfigurationError


def blank_block_comments(text: str) -> str:
    """Replace each `/* ... */` outside strings with spaces, keeping newlines."""
    result = []
    index = 0
    in_string = False
    while index < len(text):
        char = text[index]
        if in_string:
            result.append(char)
            if char == "\\" and index + 1 < len(text):
                result.append(text[index + 1])
                index += 2
                continue
            if char == '"':
                in_string = False
            index += 1
        elif char == '"':
            in_string = True
            result.append(char)
            index += 1
        elif text.startswith("//", index):
            end = text.find("\n", index)
            end = len(text) if end == -1 else end
            result.append(text[index:end])
            index = end
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            if end == -1:
                raise ValueError(_position(text, index) + "block comment '/*' is never closed")
            comment = text[index : end + 2]
            result.append("".join("\n" if c == "\n" else " " for c in comment))
            index = end + 2
        else:
            result.append(char)
            index += 1
    return "".join(result)


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}: "


log = logging.getLogger("unmix")
BYTE_ORDER_MARK = "\ufeff"
# The tokens that matter for finding keys, once block comments are blanked.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|//[^\n]*|[{}\[\]:]')


def duplicate_keys(text: str) -> list[tuple[str, int, int]]:
    """Each key repeated within one object of jsonc `text`: (key, its line, the earlier line)."""
    text = blank_block_comments(text)
    objects: list[dict[str, int] | None] = []
    repeated = []
    pending: tuple[str, int] | None = None
    for match in _TOKEN.finditer(text):
        token = match.group()
        line = text.count("\n", 0, match.start()) + 1
        if token.startswith("//"):
            continue
        if token == ":" and pending is not None and objects and objects[-1] is not None:
            key, key_line = pending
            if key in objects[-1]:
                repeated.append((key, key_line, objects[-1][key]))
            objects[-1][key] = key_line
        pending = (token[1:-1], line) if token.startswith('"') else None
        if token in "{[":
            objects.append({} if token == "{" else None)
        elif token in "}]" and objects:
            objects.pop()
    return repeated


def parse_jsonc(text: str, origin: str) -> Any:
    """Parse jsonc text; errors name `origin` with line and column."""
    text = text.removeprefix(BYTE_ORDER_MARK)
    try:
        parsed = commentjson.loads(blank_block_comments(text))
    except ValueError as error:
        detail = str(error)
        if detail.startswith("line "):
            raise ConfigurationError(f"{origin}: invalid jsonc at {detail}") from None
        raise ConfigurationError(f"{origin}: invalid jsonc ({_lark_detail(error)}); fix the syntax") from None
    except Exception as error:  # lark's exceptions do not share a base class with ValueError
        raise ConfigurationError(f"{origin}: invalid jsonc ({_lark_detail(error)}); fix the syntax") from None
    for key, line, earlier in duplicate_keys(text):
        log.warning("%s: line %d: key '%s' repeats the one at line %d, which is ignored; remove one of them",
                    origin, line, key, earlier)
    return parsed


def _lark_detail(error: BaseException) -> str:
    line = getattr(error, "line", None)
    column = getattr(error, "column", None)
    token = getattr(error, "token", None)
    if line is not None and line != -1:
        if token is None:
            found = ""
        elif str(token) == "":
            found = ": unexpected end of file"
        else:
            found = f": unexpected {str(token)!r}"
        return f"line {line}, column {column}{found}"
    cause = getattr(error, "orig_exc", None) or error.__context__
    if cause is not None and cause is not error:
        return _lark_detail(cause)
    return "unexpected end of input or unbalanced brackets"


def load_jsonc(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file '{path}' does not exist; check the path") from None
    except IsADirectoryError:
        raise ConfigurationError(f"configuration file '{path}' is a folder; give a .jsonc file") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"configuration file '{path}' is not UTF-8 text") from None
    return parse_jsonc(text, str(path))
