"""The web page in a real browser (Debian's headless Chromium driven by Playwright) on a real
stack: the token asked once, a job's live row, pause -> PAUSED, resume -> COMPLETED, then the
failures table, the statistics charts and the storylines timeline of the finished batch."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventpipe.api.tokens import token_path
from eventpipe.jobs import submit
from eventpipe.stack import Stack
from helpers import corpus_lines, wait_checkpoint, write_jsonl

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Set to a folder to refresh the screenshots in docs/ (see docs/console.md).
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS_DIR")


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
        pytest.skip("no Chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-extensions", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page
        finally:
            browser.close()


def test_pause_and_resume_from_the_page(stack: Stack, tmp_path: Path,
                                        browser_page: object) -> None:
    from playwright.sync_api import Page, expect

    page = browser_page
    assert isinstance(page, Page)
    settings = stack.settings
    n = 300
    lines = corpus_lines(n, seed=41)
    lines[7] = '{"id": "broken", "text": 42}'  # one failure for the failures table
    path = write_jsonl(tmp_path / "b.jsonl", lines)
    job = submit(settings, path, "browser_batch").job_id
    wait_checkpoint(settings, job, lambda c: 5 <= c["processed_documents"] < n // 2)

    page.goto(f"http://127.0.0.1:{stack.console_port}/")
    expect(page.locator("#token-dialog")).to_be_visible()
    page.fill("#token-input", token_path(settings).read_text().strip())
    page.click("#token-save")
    row = page.locator(f"#job-{job}")
    expect(row.locator(".status")).to_have_text("RUNNING", timeout=30_000)
    expect(row).to_contain_text("browser_batch")
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/console-running.png")

    row.locator("button[data-action=pause]").click()
    expect(row.locator(".status")).to_have_text("PAUSED", timeout=60_000)
    assert wait_checkpoint(settings, job, lambda c: True)["status"] == "PAUSED"
    expect(row.locator("button[data-action=resume]")).to_be_enabled()
    # The bar shows the paused share (widths go through CSSOM: the page's CSP forbids inline
    # style attributes, which would leave every bar full).
    bar = row.locator(".progress").bounding_box()
    done = row.locator(".progress > div:not(.failed)").bounding_box()
    assert bar is not None and done is not None
    assert 0 < done["width"] < 0.9 * bar["width"]

    row.locator("button[data-action=resume]").click()
    expect(row.locator(".status")).to_have_text("COMPLETED", timeout=240_000)
    cp = wait_checkpoint(settings, job, lambda c: True)
    assert cp["status"] == "COMPLETED"
    assert cp["processed_documents"] == n - 1 and cp["failed_documents"] == 1

    row.click()
    expect(page.locator("#failures tbody tr")).to_have_count(1)
    expect(page.locator("#failures tbody")).to_contain_text("broken")
    expect(page.locator("#charts svg")).to_have_count(3, timeout=30_000)
    expect(page.locator("#timeline svg circle").first).to_be_visible()
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/console-completed.png", full_page=True)

    # Fixed in the input file, the failed document is sent again from the page.
    lines[7] = '{"id": "broken", "text": "The council approved the budget on Monday."}'
    write_jsonl(path, lines)
    page.click("#retry-failed")
    cp = wait_checkpoint(settings, job, lambda c: c["failed_documents"] == 0)
    assert cp["processed_documents"] == n and cp["status"] == "COMPLETED"
    expect(page.locator("#no-failures")).to_be_visible()
