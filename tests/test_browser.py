"""Report pages in a real browser: Debian's Chromium, headless, driven through Playwright.

Chromium is found on PATH (or at $HSCNET_CHROMIUM); without it these tests are skipped, except
where HSCNET_REQUIRE_BROWSER=1 (set by .ci/run, which installs Debian's chromium): there they fail.
"""

from __future__ import annotations

import io
import os
import re
import shutil

import numpy as np
import pytest
from conftest import command

CHROMIUM = os.environ.get("HSCNET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("HSCNET_REQUIRE_BROWSER") == "1":
            pytest.fail("HSCNET_REQUIRE_BROWSER=1 but no chromium on PATH: apt-get install chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium, or set HSCNET_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def open_page(browser, path, viewport):
    """The page at `path`, loaded, with the console errors and uncaught exceptions it raised."""
    page = browser.new_page(viewport=viewport)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def screenshot_colours(page) -> tuple[int, float]:
    """How many distinct colours a 1280x900 screenshot has, and its pixels' standard deviation."""
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    assert image.shape == (DESKTOP["height"], DESKTOP["width"], 3)
    return len(np.unique(image.reshape(-1, 3), axis=0)), float(image.std())


@pytest.fixture(scope="module")
def report_page(small_world, tmp_path_factory):
    folder, splits = small_world
    item = splits["test"][0]
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = command(
        "ground",
        str(folder / "videos" / f"{item['video']}.mp4"),
        str(folder / "paragraphs" / f"{item['video']}.txt"),
        "--checkpoint",
        str(folder / "run" / "last.pt"),
        "--html",
        str(out),
        "--json",
        str(out.with_suffix(".json")),
        "--truth",
        str(folder / "annotations" / "test.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    return out, item


def test_the_report_page_plays_each_sentences_span_on_click(browser, report_page):
    import json

    path, item = report_page
    grounded = json.loads(path.with_suffix(".json").read_text())
    page, errors = open_page(browser, path, DESKTOP)
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=10_000)
    assert page.evaluate("document.getElementById('player').duration") == pytest.approx(grounded["duration"], abs=0.2)
    sentences = grounded["sentences"]
    assert page.locator(".bar.predicted").count() == len(sentences) == len(item["sentences"])
    assert page.locator(".bar.truth").count() == len(sentences)
    assert page.locator(".bar.word").count() == sum(len(s["words"]) for s in sentences)
    assert page.locator(".bar.paragraph").count() == 1

    last = len(sentences) - 1
    page.locator(".bar.predicted").nth(last).click()
    started = page.evaluate("document.getElementById('player').currentTime")
    assert started == pytest.approx(sentences[last]["start"], abs=0.25)  # seeked there, and playing on from there
    cursor = page.locator(".cursor").bounding_box()
    track = page.locator(".row.paragraph .track").bounding_box()
    expected_x = track["x"] + track["width"] * started / grounded["duration"]
    assert abs(cursor["x"] - expected_x) < 0.03 * track["width"]  # the cursor moved with the video

    page.locator(".bar.predicted").nth(0).hover()
    tip = page.locator("#tip")
    assert tip.is_visible() and sentences[0]["text"] in tip.inner_text()
    assert re.search(r"\d+\.\d s – \d+\.\d s", tip.inner_text())
    colours, spread = screenshot_colours(page)
    assert colours > 50 and spread > 10  # not blank: the player, the bars and the text
    assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
    assert errors == []


def test_a_clicked_span_plays_to_its_end_and_stops(browser, report_page):
    path, _ = report_page
    page, errors = open_page(browser, path, DESKTOP)
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=10_000)
    word = page.locator(".bar.word").nth(0)
    end = float(word.get_attribute("data-end"))
    word.click()
    page.wait_for_function("document.getElementById('player').paused", timeout=30_000)
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(end, abs=0.3)
    assert errors == []


def test_the_report_page_fits_a_phone(browser, report_page):
    path, _ = report_page
    page, errors = open_page(browser, path, PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    video = page.locator("video").bounding_box()
    assert video["width"] <= PHONE["width"]
    first = page.locator(".bar.predicted").nth(0)
    first.click()
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(
        float(first.get_attribute("data-start")), abs=0.25
    )
    assert errors == []


def test_the_eval_index_lists_each_video_worst_first_and_links_its_page(browser, small_world, tmp_path):
    folder, _ = small_world
    result = command(
        "eval",
        "--checkpoint",
        str(folder / "run" / "last.pt"),
        "--split",
        "train",
        "--html",
        str(tmp_path / "pages"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    page, errors = open_page(browser, tmp_path / "pages" / "index.html", DESKTOP)
    rows = page.locator("tbody tr")
    videos = {p.stem for p in (tmp_path / "pages").glob("*.html")} - {"index"}
    assert rows.count() == len(videos) >= 2
    mious = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(rows.count())]
    assert mious == sorted(mious)
    rows.nth(0).locator("a").click()
    page.wait_for_load_state("load")
    assert page.locator(".bar.truth").count() == page.locator(".bar.predicted").count() >= 1
    assert page.locator("video").count() == 1  # found through the feature store's manifest
    colours, _ = screenshot_colours(page)
    assert colours > 50
    assert errors == []


def page_of_a_video(video, tmp_path):
    """A report page of one hand-made span on `video`, with the video's own duration and start."""
    from hscnet.extract.video import probe
    from hscnet.report import write_report

    info = probe(video)
    sentence = {
        "text": "a shape moves",
        "start": 1.0,
        "end": 2.0,
        "words": [{"word": "moves", "start": 1.2, "end": 1.8}],
    }
    result = {"video": video.name, "duration": info.duration, "video_start": info.start,
              "paragraph": {"start": 1.0, "end": 2.0}, "sentences": [sentence], "unknown_words": []}  # fmt: skip
    return write_report(result, tmp_path / f"{video.stem}.html", video=video)


def test_a_stream_that_starts_late_is_played_where_its_timeline_says(browser, tmp_path):
    from conftest import solid_frames

    from hscnet.pipeline.synthetic import write_video

    frames = solid_frames(40, (200, 40, 40))
    video = write_video(tmp_path / "late.mp4", frames, fps=10, timestamps=[10 + i / 10 for i in range(40)])
    page, errors = open_page(browser, page_of_a_video(video, tmp_path), DESKTOP)
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=10_000)
    page.locator(".bar.predicted").click()
    assert page.evaluate("document.getElementById('player').currentTime") == pytest.approx(11.0, abs=0.25)
    shown = float(page.locator(".clock").inner_text().split(" s")[0])
    assert 1.0 <= shown <= 2.1  # the timeline's own time within the span playing, not the player's 11 s
    assert errors == []


def test_a_video_the_browser_cannot_play_says_so_and_keeps_the_timeline(browser, tmp_path):
    from conftest import solid_frames

    from hscnet.pipeline.synthetic import write_video

    video = write_video(tmp_path / "old.mkv", solid_frames(30, (40, 200, 40)), fps=10, codec="mpeg4")
    page, errors = open_page(browser, page_of_a_video(video, tmp_path), DESKTOP)
    page.wait_for_selector(".cannot-play", state="visible", timeout=10_000)
    assert "cannot play this video" in page.locator(".cannot-play").inner_text()
    assert page.locator(".bar.predicted").count() == 1
    page.locator(".bar.predicted").click()  # the timeline still answers
    assert page.locator(".clock").inner_text().startswith("1.0 s")
    assert not [error for error in errors if "Uncaught" in error or "TypeError" in error]
