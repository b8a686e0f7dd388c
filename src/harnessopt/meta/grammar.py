"""Grammars for constrained decoding of protocol replies on the embedded models.

A reply is one JSON header chosen among the actions allowed at this step; a `write` or `edit`
header is followed by one fenced block holding the code. The grammar forces exactly that shape,
so even a 0.5B model cannot produce an unreadable reply, while the code itself stays free text
(nothing in it is escaped, which small models get wrong inside JSON strings).
"""

from __future__ import annotations

import json

from harnessopt.meta import actions as A

# A whole file in the fence: anything but three backticks in a row. Edits: one or more
# SEARCH/REPLACE blocks whose lines do not start with the markers' characters.
_FENCE_RULES = r'''
fence ::= "\n```python\n" code "\n```"
code ::= ([^`] | "`" [^`] | "``" [^`])*
edit-fence ::= "\n```python\n" sr-block sr-block? sr-block? "```"
sr-block ::= "<<<<<<< SEARCH\n" sr-line sr-line* "=======\n" sr-line* ">>>>>>> REPLACE\n"
sr-line ::= [^<=>`\n] [^\n]* "\n" | "\n"
'''


def reply_grammar(types: tuple[type[A._Action], ...], *, candidates: list[str], task_ids: list[str],
                  menu: list[int], picks: int | None = None) -> str:
    """GBNF for one reply: any allowed header, with a fence after write/edit headers."""
    from llama_cpp.llama_grammar import SchemaConverter

    enums = A.id_enums(candidates, task_ids if len(task_ids) <= A.MAX_TASK_ID_ENUM else ())
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alternatives = []
    for t in types:
        name = t.model_fields["action"].default.replace("_", "-") + "-header"
        schema = A.header_schema(t, enums, menu, picks=picks)
        converter.visit(json.loads(json.dumps(schema)), name)
        alternatives.append(f"{name} fence" if t is A.Write else f"{name} edit-fence" if t is A.Edit else name)
    return f"root ::= {' | '.join(alternatives)}\n" + converter.format_grammar() + _FENCE_RULES
