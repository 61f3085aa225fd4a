"""``@pytest.mark.netns`` (tests/support/netns.py) really runs a test where only loopback exists."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.mark.netns
def test_a_marked_test_sees_only_loopback() -> None:
    assert os.environ.get("G2A_IN_NETNS") == "1"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
