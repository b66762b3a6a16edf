"""Remakes the README's screenshots of the report pages from the demo world (after `make demo`).

Run: .venv/bin/python docs/screenshots.py   (needs chromium on PATH, as the browser tests do)

It grounds a demo test video with `bin/ground --html --truth`, evaluates the demo's test split
with `bin/eval --html`, and photographs the pages in headless Chromium: the report at desktop
(1280x900) and phone (390x844) width, a sentence clicked and a bar hovered, and the eval index.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
VIDEO = "demo_0040"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hscnet-shots-"))
    checkpoint = str(DEMO / "run" / "last.pt")
    subprocess.run(
        [REPO / "bin" / "ground", DEMO / "videos" / f"{VIDEO}.mp4", DEMO / "paragraphs" / f"{VIDEO}.txt",
         "--checkpoint", checkpoint, "--truth", DEMO / "annotations" / "test.jsonl", "--html", work / "report.html"],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [REPO / "bin" / "eval", "--checkpoint", checkpoint, "--html", work / "pages", "--no-progress"], check=True
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            page.goto((work / "report.html").as_uri())
            page.wait_for_function("document.getElementById('player').readyState >= 2")
            page.evaluate("document.querySelectorAll('.bar.predicted')[1].click()")  # a click that does not scroll
            page.wait_for_timeout(1500)
            page.evaluate("document.getElementById('player').pause()")
            box = page.locator(".bar.predicted").nth(0).bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.screenshot(path=REPO / "docs" / f"report-{name}.png")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((work / "pages" / "index.html").as_uri())
        page.screenshot(path=REPO / "docs" / "eval-index.png")
        browser.close()
    print(f"wrote docs/report-desktop.png, docs/report-phone.png, docs/eval-index.png (pages under {work})")


if __name__ == "__main__":
    main()
