"""Codex CLI (the real CLI, from npm) drives the gateway's OpenAI Responses API through a custom provider
(``wire_api = "responses"``): the model calls ``exec_command``, Codex runs the command in its workspace sandbox
and sends the ``function_call_output`` back, and the model reports. Once with scripted replies, once with the
simulator's agent model choosing the tool and its arguments from Codex's own tool declarations."""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import AgentGateway, CodexCli, Run


def tool_call(name: str, arguments: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def events(run: Run) -> list[dict]:
    out = []
    for line in run.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def input_items(body: dict, kind: str) -> list[dict]:
    items = body.get("input")
    return [item for item in items if isinstance(item, dict) and item.get("type") == kind] if isinstance(
        items, list) else []


def streamed_calls(sse: bytes) -> list[dict]:
    """The ``function_call`` items a streamed Responses answer completed."""
    calls = []
    for line in sse.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            item = event.get("item") or {}
            if event.get("type") == "response.output_item.done" and item.get("type") == "function_call":
                calls.append(item)
    return calls


def check_round_trip(gateway: AgentGateway, run: Run, marker: str) -> None:
    context = f"{run.story()}\n{gateway.story()}"
    calls = [r for r in gateway.seen() if r.method == "POST" and r.path == "/v1/responses"]
    assert len(calls) >= 2 and all(r.status == 200 for r in calls), context
    first, second = calls[0].json(), calls[-1].json()
    assert first["stream"] is True, context
    assert "exec_command" in {tool.get("name") for tool in first["tools"]}, context
    made = streamed_calls(calls[0].response)
    assert [c["name"] for c in made] == ["exec_command"], context
    echoed = input_items(second, "function_call")
    outputs = input_items(second, "function_call_output")
    assert [c["call_id"] for c in echoed] == [made[0]["call_id"]], context
    assert [o["call_id"] for o in outputs] == [made[0]["call_id"]], context
    output = outputs[0]["output"]
    output_text = output if isinstance(output, str) else json.dumps(output)
    assert marker in output_text, context

    upstream = gateway.upstream_messages()
    assert len(upstream) == len(calls), context
    assert "# Tools" in upstream[0] and "exec_command" in upstream[0], upstream[0][:3000]
    last = upstream[-1]
    call_at, result_at = last.rfind("<tool_call>"), last.rfind("<tool_result")
    assert 0 <= call_at < result_at, last[-3000:]
    assert marker in last[result_at:], last[-3000:]


@pytest.mark.parametrize("agent_gateway", ["rest", "mgw"], indirect=True)
def test_exec_command_round_trip_scripted(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    agent_gateway.require_route("POST", "/v1/responses")
    agent_gateway.script(
        tool_call("exec_command", {"cmd": "echo hello-from-codex | tee out.txt"}),
        "The command printed hello-from-codex and wrote out.txt.",
    )
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "run: echo hello-from-codex | tee out.txt", "-s", "workspace-write",
                        "--json", "-o", str(last_message))
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0, context
    out = codex_cli.workspace / "out.txt"
    assert out.exists() and out.read_text() == "hello-from-codex\n", context
    assert last_message.read_text().strip() == "The command printed hello-from-codex and wrote out.txt.", context
    kinds = [e.get("type") for e in events(run)]
    assert "turn.completed" in kinds, context
    check_round_trip(agent_gateway, run, "hello-from-codex")
    assert agent_gateway.scripted_left() == 0


def test_exec_command_round_trip_agent_model(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    """No script: the simulator reads the gateway's tool block (Codex's real tools) and runs the quoted command."""
    agent_gateway.require_route("POST", "/v1/responses")
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "Run `echo made-by-grok > made.txt` please", "-s", "workspace-write",
                        "-o", str(last_message))
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0, context
    made = codex_cli.workspace / "made.txt"
    assert made.exists() and made.read_text() == "made-by-grok\n", context
    assert last_message.read_text().startswith("The tool returned: "), context
    check_round_trip(agent_gateway, run, "Process exited with code 0")  # the command prints nothing


def test_plain_answer(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    agent_gateway.require_route("POST", "/v1/responses")
    agent_gateway.script("Two plus two is four.")
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "What is two plus two?", "-o", str(last_message))
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0, context
    assert last_message.read_text().strip() == "Two plus two is four.", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/responses"]
    assert len(calls) == 1 and calls[0].json()["model"] == "grok-4.5", context


def test_reasoning_travels_with_the_tool_call(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    """Grok's thinking before a call: streamed as a reasoning item (Codex asks for
    ``reasoning.encrypted_content``), echoed back by Codex in the next request beside the call and its output,
    which the gateway must accept."""
    agent_gateway.require_route("POST", "/v1/responses")
    agent_gateway.script(
        {"thinking": "The user wants a file; exec_command can write it.",
         "text": tool_call("exec_command", {"cmd": "echo thought-first > thought.txt"})},
        "Wrote thought.txt.",
    )
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "run: echo thought-first > thought.txt", "-s", "workspace-write",
                        "-o", str(last_message))
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0, context
    assert (codex_cli.workspace / "thought.txt").read_text() == "thought-first\n", context
    assert last_message.read_text().strip() == "Wrote thought.txt.", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/responses"]
    assert len(calls) == 2 and all(r.status == 200 for r in calls), context
    assert b'"type": "reasoning"' in calls[0].response or b'"type":"reasoning"' in calls[0].response, context
    echoed = input_items(calls[1].json(), "reasoning")
    assert len(echoed) == 1, context
    assert echoed[0].get("encrypted_content") or echoed[0].get("summary"), echoed
    check_round_trip(agent_gateway, run, "Process exited with code 0")


def test_two_calls_in_one_answer(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    """Two calls in one answer (Codex sends ``parallel_tool_calls: true``): two ``function_call`` items, both run,
    both outputs in the next request and upstream."""
    agent_gateway.require_route("POST", "/v1/responses")
    agent_gateway.script(tool_call("exec_command", {"cmd": "echo one > one.txt"})
                         + tool_call("exec_command", {"cmd": "echo two > two.txt"}), "Both done.")
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "run both", "-s", "workspace-write", "-o", str(last_message))
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0 and last_message.read_text().strip() == "Both done.", context
    assert (codex_cli.workspace / "one.txt").read_text() == "one\n", context
    assert (codex_cli.workspace / "two.txt").read_text() == "two\n", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/responses"]
    made = [c["call_id"] for c in streamed_calls(calls[0].response)]
    assert len(made) == 2, context
    assert [o["call_id"] for o in input_items(calls[1].json(), "function_call_output")] == made, context
    last = agent_gateway.upstream_messages()[-1]
    assert all(f'<tool_result id="{i}"' in last for i in made), last[-3000:]


def test_model_codex_knows(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    """A model name Codex knows (``gpt-5.5``, aliased to Grok by MODEL_ALIASES) makes it declare more tool types
    (a freeform ``custom`` apply_patch, ``tool_search``, ``web_search``): the gateway accepts the request and the
    function round trip still works."""
    agent_gateway.require_route("POST", "/v1/responses")
    agent_gateway.script(tool_call("exec_command", {"cmd": "echo known > known.txt"}), "Done with a known model.")
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "run: echo known > known.txt", "-s", "workspace-write",
                        "-o", str(last_message), model="gpt-5.5")
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0 and last_message.read_text().strip() == "Done with a known model.", context
    assert (codex_cli.workspace / "known.txt").read_text() == "known\n", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/responses"]
    kinds = {tool.get("type") for tool in calls[0].json()["tools"]}
    assert {"function", "custom", "tool_search"} <= kinds, kinds
    assert calls[0].json()["model"] == "gpt-5.5", context
    check_round_trip(agent_gateway, run, "Process exited with code 0")


def test_resumed_session_carries_the_tool_history(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    """``codex exec resume --last`` continues the last session: the earlier ``function_call`` and its output go
    to the gateway again (Codex sends the whole conversation every turn) and into the upstream message."""
    agent_gateway.require_route("POST", "/v1/responses")
    agent_gateway.script(tool_call("exec_command", {"cmd": "echo first > first.txt"}), "Wrote first.txt.",
                         "Before, you asked me to write first.txt.")
    last_message = codex_cli.home / "last.txt"
    first = codex_cli.run(agent_gateway, "run: echo first > first.txt", "-s", "workspace-write",
                          "-o", str(last_message))
    assert first.returncode == 0 and last_message.read_text().strip() == "Wrote first.txt.", (
        f"{first.story()}\n{agent_gateway.story()}")
    second = codex_cli.run(agent_gateway, "What did I ask you before?", "resume", "--last", "-o", str(last_message))
    context = f"{second.story()}\n{agent_gateway.story()}"
    assert second.returncode == 0, context
    assert last_message.read_text().strip() == "Before, you asked me to write first.txt.", context
    calls = [r for r in agent_gateway.seen() if r.path == "/v1/responses"]
    assert len(calls) == 3, context
    body = calls[-1].json()
    assert input_items(body, "function_call") and input_items(body, "function_call_output"), context
    last = agent_gateway.upstream_messages()[-1]
    assert 0 <= last.rfind("<tool_result") < last.rfind("What did I ask you before?"), last[-3000:]
