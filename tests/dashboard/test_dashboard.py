"""``bps dashboard`` in a real browser over real campaigns (issue 11, "Dashboard").

Two quickstart campaigns are submitted through ``bps`` on the Parsl plugin, once per module:

* a *running* one, whose isr quanta wait on a gate file (``dashboard_tasks.GatedIsr``), so the
  page can be seen while jobs run and then seen changing, without a reload, when the gate opens;
* a *failed* one (``submit_configs/quickstart_failing.yaml``: calibrate raises on detector 1).

``bps dashboard --port 0`` serves them from its own process, as an operator would run it.  The
browser is Debian's Chromium driven by Playwright (see ``chromium.py``); where it cannot be had,
the browser tests skip and say why, and the API tests still run.  Screenshots go under pytest's
temporary directory; ``SKYBATCH_DOCS_SCREENSHOT=docs/images/dashboard.png pytest tests/dashboard``
also writes the failed campaign's into the operator guide.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import screenshot

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
GUARD_SECONDS = 240  # hang guard for waits on real processes, not a speed assertion
BROWSER_WAIT_MS = 60_000  # the same, for what the page must come to show
TOKEN = "s3cret-dashboard-token"


def _bps() -> str:
    exe = shutil.which("bps", path=os.path.dirname(sys.executable))
    assert exe is not None, f"console script bps is not installed next to {sys.executable}"
    return exe


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]


@dataclass
class Campaigns:
    work: Path
    env: dict[str, str]
    running_id: str
    failed_id: str
    gate: Path
    running: subprocess.Popen[str]
    dashboard: Server


def _read_until(process: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """Read the process's stdout lines until one matches (fails with what it printed if it ends)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    process.wait(timeout=GUARD_SECONDS)
    pytest.fail(
        f"{process.args} ended (exit {process.returncode}) before printing {pattern!r}:\n{''.join(seen)}"
    )


def start_dashboard(env: dict[str, str], *args: str) -> Server:
    process = subprocess.Popen(
        [_bps(), "dashboard", "--port", "0", "--refresh", "0.5", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found = _read_until(process, r"at (http://\S+/)")
    return Server(found.group(1), process)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=GUARD_SECONDS)
    finally:
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaigns]:
    from quantumgraph.demo.repo import make_demo_repo

    work = tmp_path_factory.mktemp("campaigns")
    make_demo_repo(work / "demo_repo", exposures=2, detectors=2).close()
    configs = work / "submit_configs"
    shutil.copytree(REPO_ROOT / "submit_configs", configs)
    gate = work / "gate"
    gate.touch()
    pipeline = yaml.safe_load((configs / "quickstart_pipeline.yaml").read_text(encoding="utf-8"))
    pipeline["tasks"]["isr"] = {"class": "dashboard_tasks.GatedIsr", "config": {"gate": str(gate)}}
    (configs / "gated_pipeline.yaml").write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    (configs / "gated.yaml").write_text(
        "includeConfigs: [quickstart.yaml]\npipelineYaml: gated_pipeline.yaml\n"
        "payload:\n  payloadName: quickstart-gated\n  output: u/{operator}/quickstart-gated\n",
        encoding="utf-8",
    )
    python_path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, USER="alice", SKYBATCH_RUNS_DIR=str(work / "runs"), PYTHONPATH=python_path)
    env.pop("SKYBATCH_DASHBOARD_TOKEN", None)

    running = subprocess.Popen(
        [_bps(), "submit", str(configs / "gated.yaml")],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dashboard: Server | None = None
    try:
        running_id = _read_until(running, r"Run id: (\w+)").group(1)
        failed = subprocess.run(
            [_bps(), "submit", str(configs / "quickstart_failing.yaml")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
        )
        assert failed.returncode == 3, f"the failing quickstart should end FAILED (exit 3):\n{failed.stdout}"
        failed_id = re.search(r"Run id: (\w+)", failed.stdout).group(1)  # type: ignore[union-attr]
        entered = gate.with_name("gate.entered")
        deadline = time.monotonic() + GUARD_SECONDS
        while not entered.exists():
            assert running.poll() is None, "the gated campaign ended before its isr quanta started"
            assert time.monotonic() < deadline, "no isr quantum of the gated campaign ever started"
            time.sleep(0.1)
        dashboard = start_dashboard(env)
        yield Campaigns(work, env, running_id, failed_id, gate, running, dashboard)
    finally:
        gate.unlink(missing_ok=True)  # let the gated campaign finish
        try:
            running.wait(timeout=GUARD_SECONDS)
        finally:
            if running.stdout is not None:
                running.stdout.close()
        if dashboard is not None:
            stop(dashboard.process)


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Any]:
    """(status, parsed JSON body) of one real HTTP request."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else body.decode()


# -- what an operator sees --------------------------------------------------------------------------
def _count(page: Any, label: str, state: str) -> int:
    return int(page.locator(f'#labels tr[data-label="{label}"] td[data-state="{state}"]').inner_text())


def test_a_running_campaign_and_its_live_update(campaigns: Campaigns, page: Any, tmp_path: Path) -> None:
    """The gated run shows RUNNING with jobs running; opening the gate turns it SUCCEEDED, no reload."""
    from playwright.sync_api import expect

    page.goto(f"{campaigns.dashboard.url}#run={campaigns.running_id}")
    row = page.locator(f'#run-table tr[data-run-id="{campaigns.running_id}"]')
    expect(row.locator(".state")).to_have_text("RUNNING", timeout=BROWSER_WAIT_MS)
    expect(page.locator("#run-title .state")).to_have_text("RUNNING", timeout=BROWSER_WAIT_MS)
    expect(page.locator('#labels tr[data-label="isr"] td[data-state="RUNNING"]')).not_to_have_text(
        "0", timeout=BROWSER_WAIT_MS
    )
    assert _count(page, "pipetaskInit", "SUCCEEDED") == 1
    expect(page.locator("#finished-plot")).to_be_visible()  # the init job has ended: one point
    assert int(page.locator("#finished-plot").get_attribute("data-points")) >= 1
    expect(page.locator("#config")).to_contain_text("payloadName: quickstart-gated")
    screenshot(page, tmp_path / "running.png")

    page.evaluate("window.__notReloaded = true")
    campaigns.gate.unlink()
    expect(page.locator("#run-title .state")).to_have_text("SUCCEEDED", timeout=BROWSER_WAIT_MS)
    expect(row.locator(".state")).to_have_text("SUCCEEDED", timeout=BROWSER_WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True, "the page reloaded instead of updating"
    assert _count(page, "isr", "SUCCEEDED") == 4
    assert _count(page, "gather", "SUCCEEDED") == 2
    assert page.locator("#failures").inner_text() == "No failed or held jobs."
    expect(page.locator("#finished-plot")).to_have_attribute("data-points", "12")  # every job ended
    screenshot(page, tmp_path / "succeeded.png")
    campaigns.running.wait(timeout=GUARD_SECONDS)
    assert campaigns.running.returncode == 0


def test_a_failed_campaign(campaigns: Campaigns, page: Any, tmp_path: Path) -> None:
    """States, counts, the one grouped failure with its log tail, the plot, memory and config."""
    from playwright.sync_api import expect

    page.goto(f"{campaigns.dashboard.url}#run={campaigns.failed_id}")
    expect(page.locator("#run-title .state")).to_have_text("FAILED", timeout=BROWSER_WAIT_MS)
    row = page.locator(f'#run-table tr[data-run-id="{campaigns.failed_id}"]')
    expect(row.locator(".state")).to_have_text("FAILED")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    expect(row).to_contain_text("12/12 jobs finished")
    assert (_count(page, "isr", "SUCCEEDED"), _count(page, "isr", "TOTAL")) == (4, 4)
    assert (_count(page, "calibrate", "SUCCEEDED"), _count(page, "calibrate", "FAILED")) == (2, 2)
    assert (_count(page, "gather", "PRUNED"), _count(page, "gather", "TOTAL")) == (2, 2)
    assert _count(page, "finalJob", "SUCCEEDED") == 1

    groups = page.locator("#failures .failure-group")
    expect(groups).to_have_count(1)  # two failed quanta, one bug: one group
    group = groups.first
    expect(group.locator(".count")).to_have_text("2 × calibrate")
    expect(group.locator(".exception")).to_have_text(
        re.compile(r"RuntimeError: calibration failed on detector 1 \(fail_detectors\)")
    )
    jobs = group.locator("details.failed-job")
    expect(jobs).to_have_count(2)
    jobs.first.locator("summary").click()
    tail = jobs.first.locator("pre.tail")
    expect(tail).to_be_visible()
    expect(tail).to_contain_text("calibration failed on detector 1")
    expect(jobs.first.locator("summary")).to_contain_text("exit code 1")

    plot = page.locator("#finished-plot")
    expect(plot).to_be_visible()
    assert plot.get_attribute("data-points") == "10"  # 12 jobs, 2 pruned never ran
    assert plot.locator("path.series").count() == 1
    memory = page.locator('#memory tr[data-label="gather"]')
    expect(memory.locator("td").nth(1)).to_have_text("2048")  # quickstart.yaml: gather asks 2048 MB
    expect(page.locator("#config")).to_contain_text("payloadName: quickstart-failing")

    screenshot(page, tmp_path / "failed.png")
    docs_copy = os.environ.get("SKYBATCH_DOCS_SCREENSHOT")
    if docs_copy:
        page.set_viewport_size({"width": 1400, "height": 900})
        screenshot(page, Path(docs_copy).resolve())


def test_a_token_guards_page_and_api(campaigns: Campaigns, page: Any, tmp_path: Path) -> None:
    """With --token: 401 without it; the header or ?token=... opens the API, and the page works."""
    from playwright.sync_api import expect

    server = start_dashboard(campaigns.env, "--token", TOKEN)
    try:
        api = server.url + "api/runs"
        status, body = get(api)
        assert status == 401 and "needs its token" in body["error"]
        assert get(api, {"Authorization": "Bearer wrong"})[0] == 401
        assert get(server.url)[0] == 401
        status, body = get(api, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and {r["run_id"] for r in body["runs"]} >= {campaigns.failed_id}
        assert get(f"{api}?token={TOKEN}")[0] == 200

        # The browser logs the 401 itself, asynchronously: wait for that line, then forget it.
        with page.expect_console_message(lambda msg: "status of 401" in msg.text):
            page.goto(server.url)
        expect(page.locator("body")).to_contain_text("no token given")
        page.problems.clear()
        page.goto(f"{server.url}?token={TOKEN}#run={campaigns.failed_id}")
        expect(page.locator("#run-title .state")).to_have_text("FAILED", timeout=BROWSER_WAIT_MS)
        screenshot(page, tmp_path / "with-token.png")
    finally:
        stop(server.process)


# -- the JSON API and the command line (no browser needed) ------------------------------------------
def test_the_api_serves_what_the_page_shows(campaigns: Campaigns) -> None:
    status, listing = get(campaigns.dashboard.url + "api/runs")
    assert status == 200
    assert {r["run_id"] for r in listing["runs"]} == {campaigns.running_id, campaigns.failed_id}
    status, run = get(f"{campaigns.dashboard.url}api/runs/{campaigns.failed_id}")
    assert status == 200 and run["state"] == "FAILED"
    assert {label["label"]: label["counts"]["FAILED"] for label in run["labels"]}["calibrate"] == 2
    [group] = run["failures"]
    assert (group["label"], group["count"]) == ("calibrate", 2)
    assert group["exception"].startswith("RuntimeError: calibration failed on detector 1")
    assert all(Path(job["log"]).is_file() for job in group["jobs"])
    assert len(run["finished_times"]) == 10
    assert "quickstart-failing" in run["config"]
    prefix = campaigns.failed_id[:6]
    assert get(f"{campaigns.dashboard.url}api/runs/{prefix}")[1]["run_id"] == campaigns.failed_id
    status, body = get(campaigns.dashboard.url + "api/runs/ffffffff")
    assert status == 404 and "no run 'ffffffff'" in body["error"]
    assert get(campaigns.dashboard.url + "api/runs", method="POST")[0] == 405  # read-only
    assert get(campaigns.dashboard.url + "api/runs/x", method="DELETE")[0] == 405


def test_binding_beyond_loopback_needs_a_token(campaigns: Campaigns) -> None:
    done = subprocess.run(
        [_bps(), "dashboard", "--host", "0.0.0.0", "--port", "0"],
        env=campaigns.env,
        capture_output=True,
        text=True,
        timeout=GUARD_SECONDS,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --host 0.0.0.0 would show every run") and "--token" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
