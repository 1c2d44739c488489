"""A real browser for the dashboard tests: Debian's Chromium driven by Playwright.

One browser per session (a fresh profile directory); each test gets its own page, and fails if the
page logged an error or a script threw (a Content-Security-Policy violation -- something loaded
from outside this server -- is such an error).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import FLAGS, ChromiumUnavailable, ensure_chromium


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Playwright browser context on Debian's Chromium, or a skip that says why there is none."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]' brings it)")
    base = tmp_path_factory.mktemp("chromium")
    try:
        executable = ensure_chromium(base / "apt.log")
    except ChromiumUnavailable as err:
        pytest.skip(f"no Chromium for the browser tests: {err}")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(base / "profile"),  # a fresh --user-data-dir
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    """A fresh page; the test fails if the page logged an error or threw."""
    page = browser_context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: problems.append(f"uncaught: {err}"))
    page.problems = problems
    yield page
    page.close()
    assert not problems, f"the page reported errors: {problems}"


def screenshot(page: Any, path: Path) -> Path:
    """A full-page PNG of what the operator sees now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, f"{path} is suspiciously small for a screenshot of the page"
    return path
