"""Composing the one upstream message of a request: its history, plus the tool and output-format instructions.

grok.com takes a single ``message`` per turn (no ``messages``, no ``tools``, no ``response_format``). A request
without tools, formats or tool turns is flattened as before (``core.prompt.flatten``: a lone user message goes
as it is). Otherwise the history is rendered with tool calls and results in the one call format the instructions
teach (``core.tools.render_history``), and the instructions lead the message as a ``[system]`` block.
"""

from __future__ import annotations

from core import structured, tools
from core.prompt import ATTACHMENT_ONLY_MESSAGE, Prompt, Turn, flatten
from core.reply import ReplySpec


def compose(turns: list[Turn], spec: ReplySpec) -> Prompt:
    """The upstream message and the images to upload, for ``turns`` answered as ``spec`` asks."""
    tool_turns = any(turn.role == "tool" or turn.tool_calls for turn in turns)
    if not spec.tools and not spec.wants_json and not tool_turns:
        return flatten(turns)
    history = tools.render_history(turns)  # cleans every text, like flatten
    rules = []
    if spec.tools:
        rules.append(tools.instructions(spec.tools, spec.choice))
    if spec.wants_json and spec.output is not None:
        rules.append(structured.instructions(spec.output))
    images = tuple(image for turn in turns for image in turn.images)
    body = history or (ATTACHMENT_ONLY_MESSAGE if images else "")
    message = "\n\n".join(filter(None, ["[system]\n" + "\n\n".join(rules) if rules else "", body]))
    return Prompt(message=message, images=images)
