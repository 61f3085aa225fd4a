"""Both CLIs against a gateway whose only account grok.com rate-limits once: the gateway answers 429 with
``Retry-After`` (the account cools for that long), the CLI retries on its own, and the retry is served."""

from __future__ import annotations

from tests.agents.conftest import AgentGateway, ClaudeCode, CodexCli
from tests.agents.test_claude_code import result_of


def rate_limited_once(gateway: AgentGateway) -> None:
    gateway.sim.state.set_fault(gateway.token, 429, times=1, retry_after=1)
    gateway.script("Recovered after a rate limit.")


def check_retried(gateway: AgentGateway, path: str, context: str) -> None:
    calls = [r for r in gateway.seen() if r.path == path]
    assert [r.status for r in calls] == [429, 200], context
    assert gateway.sim.state.ledger(gateway.token)["rejected"] == {"fault_429": 1}, context


def test_claude_code_retries_a_rate_limit(agent_gateway: AgentGateway, claude_code: ClaudeCode) -> None:
    agent_gateway.require_route("POST", "/v1/messages")
    rate_limited_once(agent_gateway)
    run = claude_code.run(agent_gateway, "hello")
    result = result_of(run, agent_gateway)
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert result["is_error"] is False and result["result"] == "Recovered after a rate limit.", context
    check_retried(agent_gateway, "/v1/messages", context)


def test_codex_retries_a_rate_limit(agent_gateway: AgentGateway, codex_cli: CodexCli) -> None:
    agent_gateway.require_route("POST", "/v1/responses")
    rate_limited_once(agent_gateway)
    last_message = codex_cli.home / "last.txt"
    run = codex_cli.run(agent_gateway, "hello", "-o", str(last_message))
    context = f"{run.story()}\n{agent_gateway.story()}"
    assert run.returncode == 0 and last_message.read_text().strip() == "Recovered after a rate limit.", context
    check_retried(agent_gateway, "/v1/responses", context)
