"""The walk-throughs of docs/annotations.md, run as written against a real ``waferdesk-server serve``
(embedded SQLite, tiny model): query, claim, create, submit, conflict, skip, approve, export, CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from live_server import free_port
from test_cli import ADMIN_PASSWORD, REPO, _cli, _env

ANNOTATOR_PASSWORD = "change-this-annotator-password"


def _block(name: str) -> str:
    text = (REPO / "docs" / "annotations.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- walkthrough:{name} -->\s*```\w+\n(.*?)```\s*<!-- /walkthrough:{name} -->", text, re.S)
    assert m, f"walk-through {name} not found in docs/annotations.md"
    return m.group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model) -> Iterator[tuple[str, dict[str, str]]]:
    data = tmp_path_factory.mktemp("al-docs")
    env = _env(data, WAFERDESK_MODEL_PATH=str(tiny_model))
    for name, role, password in (("admin", "admin", ADMIN_PASSWORD), ("ann1", "annotator", ANNOTATOR_PASSWORD)):
        res = _cli("create-user", name, "--role", role, "--password-stdin", env=env, stdin=password + "\n")
        assert res.returncode == 0, res.stderr
    port = free_port()
    log = (data / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("server did not start:\n" + (data / "serve.log").read_text())
            time.sleep(0.2)
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def after_curl(served, tmp_path_factory) -> tuple[str, dict[str, str]]:
    """The curl walk-through has run (the Python one continues from where it left the server)."""
    if not (shutil.which("curl") and shutil.which("jq")):
        pytest.skip("curl and jq are needed for the shell walk-through")
    url, env = served
    work = tmp_path_factory.mktemp("curl-walk")
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _block("curl")],
        env={**env, "WD": url},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    served_doc = json.loads((work / "coco.json").read_text())
    cli_doc = json.loads((work / "coco-cli.json").read_text())
    assert {**served_doc, "info": {}} == {**cli_doc, "info": {}}
    return res.stdout


def test_curl_walkthrough_runs_as_written(after_curl) -> None:
    out = after_curl
    assert '{"created":12}' in out
    assert '"ranks":[1,2,3,4]' in out and '"number":1' in out
    assert '{"state":"claimed","lease_seconds":1800}' in out
    assert '{"status":"draft","version":1}' in out and '{"status":"submitted","version":2}' in out
    assert '{"code":"version_conflict","current":2}' in out
    assert '{"state":"skipped","skip_reason":"map is cut off"}' in out
    assert '{"status":"approved","ground_truth":true}' in out
    assert '{"images":1,"categories":8}' in out
    assert '"labelled":1,"queued":2,"in_progress":0,"skipped":1,"approved":1' in out


def test_python_walkthrough_runs_as_written(served, after_curl, tmp_path) -> None:
    url, env = served
    script = tmp_path / "walk.py"
    script.write_text(_block("python"))
    res = subprocess.run(
        [sys.executable, str(script)], env={**env, "WD": url}, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == [
        "round 2",
        "conflict: current version 2",
        "ground truth True",
        "exported 2 images",
    ]
