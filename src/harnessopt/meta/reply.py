"""Reading a meta-model reply: a small JSON action header, with code outside the JSON.

Small models fail at whole rewrites inside a JSON string (every quote and newline escaped), so
code travels as plain text after the header:

    {"action": "write", "hypothesis": "...", "predicted": 0.2}
    ```python
    <the whole harness file>
    ```

or as one or more search/replace blocks (the format code-editing tools use):

    {"action": "edit", "hypothesis": "..."}
    <<<<<<< SEARCH
    text copied exactly from the parent
    =======
    the replacement
    >>>>>>> REPLACE

Only the header is schema-checked. `apply_edits` applies blocks to a parent's code and says in one
line what did not match, so the model can repair within the same iteration.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field


class ReplyError(ValueError):
    """A reply that cannot be read: the message says what was expected, in one line."""


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    search: str
    replace: str


class Reply(BaseModel):
    """A reply split into its parts: header JSON text, a full file, or edit blocks."""

    model_config = ConfigDict(extra="forbid")
    header: str
    code: str | None = None
    edits: list[Edit] = Field(default_factory=list)


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\r?\n(.*?)(?:\r?\n)?```", re.S | re.I)
_OPEN_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\r?\n(.*)\Z", re.S | re.I)
_EDIT = re.compile(r"<{5,9} ?SEARCH[ \t]*\r?\n(.*?)\r?\n?={5,9}[ \t]*\r?\n(.*?)\r?\n?>{5,9} ?REPLACE", re.S)


def split_reply(text: str) -> Reply:
    """Header (first JSON object), then a fenced python file or search/replace blocks if present."""
    try:
        header = first_json_object(text)
    except ReplyError:
        if "{" not in text:
            raise
        return Reply(header=text[text.find("{"):].strip())  # cut at max_tokens: the caller may close it
    rest = text[text.find(header) + len(header):]
    edits = [Edit(search=m.group(1), replace=m.group(2)) for m in _EDIT.finditer(rest)]
    code = None
    if not edits:
        m = _FENCE.search(rest) or _OPEN_FENCE.search(rest)  # an unclosed fence: cut at max_tokens
        if m and m.group(1).strip():
            code = m.group(1).rstrip() + "\n"
    return Reply(header=header, code=code, edits=edits)


def first_json_object(text: str) -> str:
    """The first balanced {...} object in a reply (models sometimes wrap JSON in prose or fences)."""
    start = text.find("{")
    if start < 0:
        raise ReplyError("no JSON object in the reply; start the reply with one JSON header")
    depth, in_str, escape = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    raise ReplyError("unterminated JSON header in the reply; close it before any code")


def apply_edits(source: str, edits: list[Edit]) -> str:
    """Apply search/replace blocks in order; each search text must occur exactly once.

    Whitespace at line ends is forgiven (small models drop or add trailing spaces); anything else
    that does not match raises ReplyError naming the block and what to do.
    """
    out = source
    for i, edit in enumerate(edits, 1):
        if not edit.search.strip():
            raise ReplyError(f"edit block {i}: the SEARCH part is empty; copy the lines to change from the parent")
        count = out.count(edit.search)
        if count == 1:
            out = out.replace(edit.search, edit.replace, 1)
            continue
        if count > 1:
            raise ReplyError(f"edit block {i}: the SEARCH text occurs {count} times; include more lines so it is unique")
        loose = _loose_find(out, edit.search)
        if loose is None:
            first = edit.search.strip().splitlines()[0][:80]
            raise ReplyError(f"edit block {i}: the SEARCH text is not in the parent (first line {first!r}); "
                             "copy the lines exactly from the code shown")
        start, end = loose
        out = out[:start] + edit.replace + out[end:]
    return out


def _loose_find(source: str, search: str) -> tuple[int, int] | None:
    """Where `search` occurs in `source` ignoring trailing whitespace per line; None unless unique."""
    want = [line.rstrip() for line in search.strip("\n").splitlines()]
    lines = source.splitlines(keepends=True)
    stripped = [line.rstrip() for line in lines]
    hits = [i for i in range(len(lines) - len(want) + 1) if stripped[i:i + len(want)] == want]
    if len(hits) != 1:
        return None
    start = sum(len(x) for x in lines[:hits[0]])
    end = start + sum(len(x) for x in lines[hits[0]:hits[0] + len(want)])
    # Keep the final newline of the matched block if the replacement lacks one.
    return start, end - (1 if lines[hits[0] + len(want) - 1].endswith("\n") else 0)
