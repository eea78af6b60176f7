"""Property-based fuzz of the whole REST API against its own OpenAPI document (schemathesis).

Thousands of generated requests, including hostile ones: no 500, and every response
(status, content type, body, headers) must match what the document promises.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scenarios.hub import HubProcess

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


async def test_the_api_keeps_its_openapi_promises(hub: HubProcess, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed: pip install -e '.[test]'")
    init = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "init", env=hub.env, stdout=subprocess.PIPE
    )
    out, _ = await init.communicate()
    token = next(
        line.split()[-1] for line in out.decode().splitlines() if line.startswith("API token")
    )
    fuzz = await asyncio.create_subprocess_exec(
        cli,
        "run",
        f"{hub.url}/api/v1/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        "--max-examples",
        "50",
        # bounded: a minute of generated requests, whatever the machine
        "--max-time",
        "60",
        "--seed",
        "7",
        "--checks",
        CHECKS,
        # revoking a token at random would revoke the fuzzer's own and end the run in 401s
        "--exclude-name",
        "DELETE /api/v1/tokens/{token_id}",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    report, _ = await asyncio.wait_for(fuzz.communicate(), 240)
    text = report.decode()
    assert fuzz.returncode == 0, text[-4000:]
    assert "passed" in text
    print(text[-1500:])  # the summary: operations and generated cases (pytest -s shows it)
