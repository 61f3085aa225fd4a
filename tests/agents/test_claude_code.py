"""Claude Code (the real CLI, from npm) drives the gateway's Anthropic Messages API: a tool round trip in which
the model asks for ``Write``, Claude Code writes the file and sends the ``tool_result`` back, and the model
reports. Once with scripted replies (exact control of the model's side), once with the simulator's agent model
choosing the tool and its arguments from Claude Code's own 24 tool declarations."""

from __future__ import annotations

import json
import re

import pytest

from tests.agents.conftest import AgentGateway, ClaudeCode, Run


def tool_call(name: str, arguments: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def result_of(run: Run, gateway: AgentGateway) -> dict:
    try:
        result = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"no JSON result from claude -p\n{run.story()}\n{gateway.story()}") from None
    assert result.get("type") == "result", result
    return result


def tool_use_ids(sse: bytes) -> list[str]:
    """The ids of the ``tool_use`` blocks a streamed Messages answer started."""
    ids = []
    for line in sse.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            block = event.get("content_block") or {}
            if event.get("type") == "content_block_start" and block.get("type") == "tool_use":
                ids.append(block["id"])
    return ids


def tool_results(body: dict) -> list[dict]:
    return [block for message in body.get("messages", []) if isinstance(message.get("content"), list)
            for block in message["content"] if block.get("type") == "tool_result"]


def check_round_trip(gateway: AgentGateway, run: Run, target, content: str) -> None:
    context = f"{run.story()}\n{gateway.story()}"
    assert target.exists(), f"Claude Code wrote no {target}\n{context}"
    assert target.read_text() == content, context

    calls = [r for r in gateway.seen() if r.method == "POST" and r.path == "/v1/messages"]
    assert len(calls) >= 2, context
    first, second = calls[0], calls[-1]
    assert all(r.status == 200 for r in calls), context
    assert first.json()["stream"] is True and "tools" in first.json(), context
    assert "Write" in {tool["name"] for tool in first.json()["tools"]}, context
    ids = tool_use_ids(first.response)
    assert len(ids) == 1, f"expected one streamed tool_use block in the first answer\n{context}"
    results = tool_results(second.json())
    assert [r["tool_use_id"] for r in results] == ids, context

    upstream = gateway.upstream_messages()
    assert len(upstream) == len(calls), context
    assert "# Tools" in upstream[0] and re.search(r"^#+ `?Write`?\s*$", upstream[0], re.M), upstream[0][:3000]
    # The tool result arrived upstream in the second message, after the model's call.
    last = upstream[-1]
    call_at, result_at = last.rfind("<tool_call>"), last.rfind("<tool_result")
    assert 0 <= call_at < result_at, last[-3000:]
    assert str(target) in last[result_at:], last[-3000:]


@pytest.mark.parametrize("agent_gateway", ["rest", "mgw"], indirect=True)
def test_write_tool_round_trip_scripted(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    agent_gateway.require_route("POST", "/v1/messages")
    target = claude_code.workspace / "hello.txt"
    agent_gateway.script(
        tool_call("Write", {"file_path": str(target), "content": "hi from grok"}),
        "I created hello.txt with the content you asked for.",
    )
    run = claude_code.run(agent_gateway, f'Create the file {target} with content "hi from grok"',
                          "--allowedTools", "Write")
    result = result_of(run, agent_gateway)
    assert run.returncode == 0 and result["is_error"] is False, f"{run.story()}\n{agent_gateway.story()}"
    assert result["result"] == "I created hello.txt with the content you asked for."
    assert result["num_turns"] == 2, result
    check_round_trip(agent_gateway, run, target, "hi from grok")
    assert agent_gateway.scripted_left() == 0


def test_write_tool_round_trip_agent_model(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    """No script: the simulator reads the gateway's tool block (Claude Code's real tools) and picks Write."""
    agent_gateway.require_route("POST", "/v1/messages")
    target = claude_code.workspace / "notes" / "greeting.txt"
    target.parent.mkdir()
    # Words that name other tools of Claude Code's (agent, task, cron, ...) would steer the agent model to them.
    run = claude_code.run(agent_gateway, f'Create the file {target} with content "made by grok"',
                          "--allowedTools", "Write")
    result = result_of(run, agent_gateway)
    assert run.returncode == 0 and result["is_error"] is False, f"{run.story()}\n{agent_gateway.story()}"
    check_round_trip(agent_gateway, run, target, "made by grok")
    assert re.match(r"The tool returned: ", result["result"]), result


def test_plain_answer_without_tools_used(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    """A question that needs no tool: one request, the streamed text is Claude Code's result."""
    agent_gateway.require_route("POST", "/v1/messages")
    agent_gateway.script("Paris is the capital of France.")
    run = claude_code.run(agent_gateway, "What is the capital of France? Answer in one sentence.",
                          "--model", "claude-sonnet-4-5")
    result = result_of(run, agent_gateway)
    assert run.returncode == 0 and result["is_error"] is False, f"{run.story()}\n{agent_gateway.story()}"
    assert result["result"] == "Paris is the capital of France.", result
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/messages"]
    assert len(calls) == 1 and calls[0].json()["model"] == "claude-sonnet-4-5", agent_gateway.story()


def test_thinking_block_travels_with_the_tool_use(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    """Grok's thinking before a call: a streamed ``thinking`` block (with its signature) before the ``tool_use``;
    Claude Code sends both back in the next request, which the gateway must accept."""
    agent_gateway.require_route("POST", "/v1/messages")
    target = claude_code.workspace / "thought.txt"
    agent_gateway.script(
        {"thinking": "The user wants a file; the Write tool makes it.",
         "text": tool_call("Write", {"file_path": str(target), "content": "thought first"})},
        "Wrote thought.txt.",
    )
    run = claude_code.run(agent_gateway, f'Create the file {target} with content "thought first"',
                          "--allowedTools", "Write")
    result = result_of(run, agent_gateway)
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0 and result["is_error"] is False, context
    assert result["result"] == "Wrote thought.txt.", context
    check_round_trip(agent_gateway, run, target, "thought first")
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/messages"]
    assert b'"type":"thinking"' in calls[0].response.replace(b": ", b":"), context
    assistant = [m for m in calls[1].json()["messages"] if m["role"] == "assistant"]
    blocks = [b for m in assistant if isinstance(m["content"], list) for b in m["content"]]
    kinds = [b["type"] for b in blocks]
    assert kinds[:1] == ["thinking"] and "tool_use" in kinds, blocks
    # The simulator streams a step header ("Thinking about your request") before the thinking text.
    assert blocks[0]["thinking"].endswith("The user wants a file; the Write tool makes it."), blocks
    assert blocks[0].get("signature"), blocks


def test_two_tool_uses_in_one_answer(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    """Two calls in one answer: two ``tool_use`` blocks; Claude Code runs both and answers both ids at once."""
    agent_gateway.require_route("POST", "/v1/messages")
    a, b = claude_code.workspace / "a.txt", claude_code.workspace / "b.txt"
    agent_gateway.script(tool_call("Write", {"file_path": str(a), "content": "A"})
                         + tool_call("Write", {"file_path": str(b), "content": "B"}), "Both written.")
    run = claude_code.run(agent_gateway, f"Create {a} and {b}", "--allowedTools", "Write")
    result = result_of(run, agent_gateway)
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert result["is_error"] is False and result["result"] == "Both written.", context
    assert a.read_text() == "A" and b.read_text() == "B", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/messages"]
    ids = tool_use_ids(calls[0].response)
    assert len(ids) == 2 and [r["tool_use_id"] for r in tool_results(calls[1].json())] == ids, context
    last = agent_gateway.upstream_messages()[-1]
    assert all(f'<tool_result id="{i}"' in last for i in ids), last[-3000:]


def test_bash_tool(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    agent_gateway.require_route("POST", "/v1/messages")
    agent_gateway.script(tool_call("Bash", {"command": "echo from-bash > bash.txt", "description": "write a file"}),
                         "Ran it.")
    run = claude_code.run(agent_gateway, "Run echo from-bash > bash.txt", "--allowedTools", "Bash")
    result = result_of(run, agent_gateway)
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert result["is_error"] is False and result["result"] == "Ran it.", context
    assert (claude_code.workspace / "bash.txt").read_text() == "from-bash\n", context
    assert '<tool_result id="' in agent_gateway.upstream_messages()[-1], context


def test_continued_session_carries_the_tool_history(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    """``claude -p -c`` continues the last session: the whole history, the earlier ``tool_use`` and its
    ``tool_result`` included, goes to the gateway again and into the upstream message."""
    agent_gateway.require_route("POST", "/v1/messages")
    target = claude_code.workspace / "first.txt"
    agent_gateway.script(tool_call("Write", {"file_path": str(target), "content": "one"}), "Wrote first.txt.",
                         "You asked me to create first.txt, and I did.")
    first = claude_code.run(agent_gateway, f'Create the file {target} with content "one"', "--allowedTools", "Write")
    assert result_of(first, agent_gateway)["result"] == "Wrote first.txt.", f"{first.story()}\n{agent_gateway.story()}"
    second = claude_code.run(agent_gateway, "What did I ask you before?", "-c")
    result = result_of(second, agent_gateway)
    context = f"{second.story()}\n{agent_gateway.story()}"
    assert result["is_error"] is False and result["result"] == "You asked me to create first.txt, and I did.", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/messages"]
    assert len(calls) == 3, context
    history = calls[-1].json()["messages"]
    blocks = [b for m in history if isinstance(m["content"], list) for b in m["content"]]
    assert {"tool_use", "tool_result"} <= {b.get("type") for b in blocks}, history
    last = agent_gateway.upstream_messages()[-1]
    assert last.rfind("<tool_result") < last.rfind("What did I ask you before?"), last[-3000:]
    assert "Wrote first.txt." in last, last[-3000:]
