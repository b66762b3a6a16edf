"""hscnet/report.py: report pages of real grounding results, their layout and their video source;
`test_browser.py` renders them in Chromium."""

from __future__ import annotations

import base64
import html
import re

import pytest

from hscnet.evaluate import report_results
from hscnet.grounder import Grounder
from hscnet.report import render_index, render_report, video_source, write_report


@pytest.fixture(scope="module")
def grounded(small_world):
    """A real result: the small world's first test video grounded by its trained model."""
    folder, splits = small_world
    item = splits["test"][0]
    video = folder / "videos" / f"{item['video']}.mp4"
    result = Grounder.from_checkpoint(folder / "run" / "last.pt").ground(video, item["sentences"])
    return video, result, item["timestamps"]


def bar_spans(page: str, kind: str) -> list[tuple[float, float, float, float]]:
    """(left %, width %, start s, end s) of every bar of a kind, as the page lays them out."""
    pattern = rf'class="bar {kind}" style="left:([\d.]+)%;width:([\d.]+)%" data-start="([\d.]+)" data-end="([\d.]+)"'
    return [tuple(map(float, match)) for match in re.findall(pattern, page)]


def test_a_page_has_a_bar_per_sentence_and_word_where_their_times_are(grounded):
    _, result, truth = grounded
    page = render_report(result, video_src="video.mp4", truth=truth)
    duration = result["duration"]
    predicted = bar_spans(page, "predicted")
    assert [(start, end) for _, _, start, end in predicted] == [(s["start"], s["end"]) for s in result["sentences"]]
    for left, width, start, end in predicted + bar_spans(page, "word") + bar_spans(page, "truth"):
        assert left == pytest.approx(100 * start / duration, abs=1e-3)
        assert width == pytest.approx(100 * (end - start) / duration, abs=2e-3)
    assert len(bar_spans(page, "word")) == sum(len(s["words"]) for s in result["sentences"])
    assert [(s, e) for _, _, s, e in bar_spans(page, "truth")] == [pytest.approx(tuple(span)) for span in truth]
    assert len(bar_spans(page, "paragraph")) == 1
    for sentence in result["sentences"]:
        assert html.escape(sentence["text"]) in page
    assert 'src="video.mp4"' in page and "mIoU" in page and "http" not in page  # nothing to fetch


def test_without_truth_or_video_the_page_shows_the_prediction_alone(grounded):
    _, result, truth = grounded
    page = render_report(result, video_src=None)
    assert "<video" not in page and "not at hand" in page and 'class="bar truth"' not in page
    with pytest.raises(ValueError, match="true spans for"):
        render_report(result, video_src=None, truth=truth[:-1])


def test_text_from_users_is_escaped():
    result = {
        "video": "<b>x</b>.mp4",
        "duration": 10.0,
        "paragraph": {"start": 0.0, "end": 9.0},
        "sentences": [{"text": 'a "quoted" <script>alert(1)</script>', "start": 1.0, "end": 2.0, "words": []}],
        "unknown_words": [],
    }
    page = render_report(result, video_src='v".mp4')
    assert "<script>alert" not in page and "<b>x</b>" not in page and 'src="v&quot;.mp4"' in page


def test_small_videos_are_embedded_and_large_ones_referenced_relative_to_the_page(grounded, tmp_path):
    video, result, _ = grounded
    embedded = video_source(video, tmp_path / "page.html")
    assert embedded.startswith("data:video/mp4;base64,")
    assert base64.b64decode(embedded.split(",", 1)[1]) == video.read_bytes()
    (tmp_path / "pages").mkdir()
    referenced = video_source(video, tmp_path / "pages" / "page.html", embed_max_bytes=0)
    assert (tmp_path / "pages" / referenced).resolve() == video.resolve()
    page = write_report(result, tmp_path / "pages" / "r.html", video=video, embed_max_bytes=0)
    assert f'src="{referenced}"' in page.read_text()
    assert [p.name for p in (tmp_path / "pages").iterdir()] == ["r.html"]  # no temporary file left


def test_eval_results_join_a_videos_chunks_and_the_index_puts_the_worst_first():
    predictions = [
        {
            "video": "v1",
            "duration": 20.0,
            "sentences": ["a b", "c"],
            "timestamps": [[0.0, 5.0], [5.0, 10.0]],
            "predicted": [[0.0, 5.0], [5.0, 10.0]],
            "words": [["a", "b"], ["c"]],
            "predicted_words": [[[0.0, 2.0], [1.0, 3.0]], [[6.0, 7.0]]],
            "predicted_paragraph": [0.0, 10.0],
        },
        {
            "video": "v1",
            "duration": 20.0,
            "sentences": ["d"],
            "timestamps": [[10.0, 20.0]],
            "predicted": [[12.0, 18.0]],
            "words": [["d"]],
            "predicted_words": [[[12.0, 13.0]]],
            "predicted_paragraph": [11.0, 19.0],
        },
    ]
    [(result, truth)] = report_results(predictions)
    assert [s["text"] for s in result["sentences"]] == ["a b", "c", "d"]
    assert truth == [[0.0, 5.0], [5.0, 10.0], [10.0, 20.0]]
    assert result["paragraph"] == {"start": 0.0, "end": 19.0}
    assert [w["start"] for s in result["sentences"] for w in s["words"]] == [0.0, 1.0, 6.0, 12.0]
    entries = [
        {"video": "good", "page": "good.html", "sentences": 3, "miou": 0.8, "r05": 1.0},
        {"video": "bad", "page": "bad.html", "sentences": 2, "miou": 0.1, "r05": 0.0},
        {"video": "middle", "page": "middle.html", "sentences": 4, "miou": 0.5, "r05": 0.5},
    ]
    index = render_index(entries, "run on test")
    assert re.findall(r'href="(\w+)\.html"', index) == ["bad", "middle", "good"]
