"""framework/vocabulary.py: one set of verdict words and one interval format, the same through every output."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from framework import step_summary
from framework.compare import CompareOptions, compare_text, resolve_side, run_interleaved
from framework.config import load_catalog
from framework.matrix import expand_workload
from framework.query import Results
from framework.records import write_record
from framework.report.site import build_site
from framework.vocabulary import (
    VERDICTS,
    Verdict,
    change_with_interval,
    count_verdicts,
    counts_text,
    read_verdict,
)
from tests.unit.test_compare import FakeSides

_COUNT = re.compile(r"(\d+) (" + "|".join(word.value for word in VERDICTS) + r")\b")


# a comparison row as written before the vocabulary: en-dash interval, the metric's name in the sentence
OLD_ROW = {
    "comparison_id": "old",
    "mode": "interleaved",
    "baseline": "stable",
    "candidate": "latest",
    "hardware": "local",
    "workload": "array_mean_var",
    "case_id": "array_mean_var",
    "metric": "wall",
    "n_baseline": 7,
    "n_candidate": 7,
    "baseline_median": 2.0,
    "candidate_median": 1.02,
    "ratio": 0.51,
    "ci_low": 0.45,
    "ci_high": 0.55,
    "p_value": 0.0005,
    "min_effect": 0.05,
    "alpha": 0.01,
    "verdict": "improved",
    "conclusive": True,
    "sentence": "wall time -49 % (-55–-45 %), 2 s → 1.02 s, p < 0.001, n = 7 vs 7 — improved",
}


def _counts(text: str) -> dict[str, int]:
    """'8 regressed, 0 improved, 4 unchanged' → {word: n} for every word, zeros where a text leaves one out."""
    found = {word.value: 0 for word in VERDICTS}
    found.update({word: int(n) for n, word in _COUNT.findall(text)})
    return found


def test_one_comparison_gives_the_same_counts_in_terminal_markdown_record_and_report(tmp_path):
    catalog = load_catalog()
    cases, _ = expand_workload(catalog.workloads["array_mean_var"], "tiny")
    side = resolve_side("latest", catalog, "local")
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    # peak memory +10 % (regressed), wall time noisy with 5 rounds (inconclusive), spill 0 on both sides
    # (unchanged), mean memory never sampled (unusable): every judged word once
    report = run_interleaved(CompareOptions(side, side, cases, results_dir, repeat=5), measure=FakeSides(cases, 0.1))
    terminal = compare_text(report)
    markdown = step_summary.section("Comparison", terminal, headline=terminal.splitlines()[-1])
    with Results(results_dir) as results:
        _, rows = results.sql("SELECT verdict FROM comparisons")
    stored = dict(Counter(row[0] for row in rows))
    out = tmp_path / "site"
    build_site(results_dir, out)
    page = (out / "comparisons" / "index.html").read_text()
    in_report = re.findall(r'<span class="count (\w+)">(\d+) \1</span>', page)

    expected = {word.value: n for word, n in report.counts().items()}
    assert expected["regressed"] >= 1 and expected["inconclusive"] >= 1 and expected["unchanged"] >= 1
    assert expected["unusable"] >= 1
    assert _counts(terminal.splitlines()[-1]) == expected
    assert _counts(markdown.split("**")[1]) == expected  # the summary's bold headline
    assert {**dict.fromkeys(expected, 0), **stored} == expected
    assert {**dict.fromkeys(expected, 0), **{word: int(n) for word, n in in_report}} == expected


def test_an_old_record_saying_unchanged_where_it_could_not_tell_reads_as_inconclusive(results_dir, tmp_path):
    row = {**OLD_ROW, "ratio": 1.3, "ci_low": 0.8, "ci_high": 1.9, "verdict": "unchanged", "conclusive": False}
    write_record(results_dir, "comparisons", "old", [row, {**row, "metric": "peak_memory", "conclusive": True}])
    with Results(results_dir) as results:
        _, rows = results.sql("SELECT metric, verdict FROM comparisons ORDER BY metric")
    assert rows == [("peak_memory", "unchanged"), ("wall", "inconclusive")]
    assert read_verdict("unchanged", False) is Verdict.INCONCLUSIVE
    assert read_verdict("missing") is read_verdict(None) is Verdict.UNUSABLE
    assert read_verdict("regressed", False) is Verdict.REGRESSED  # a sequential run out of budget: still a change


def test_counts_name_every_judged_word_and_the_others_when_present():
    counts = count_verdicts(["regressed", "inconclusive", Verdict.INCONCLUSIVE, "unusable"])
    assert counts_text(counts) == "1 regressed, 0 improved, 0 unchanged, 2 inconclusive, 1 unusable"
    with pytest.raises(ValueError):
        count_verdicts(["no change"])


@pytest.mark.parametrize(
    ("ratio", "low", "high", "text"),
    [
        (1.052, 1.031, 1.074, "+5.2 % (95 % CI +3.1 % to +7.4 %)"),
        (0.978, 0.976, 0.981, "-2.2 % (95 % CI -2.4 % to -1.9 %)"),
        (1.2, 0.32, 1.019, "+20 % (95 % CI -68 % to +1.9 %)"),
        (0.51, 0.45, 0.55, "-49 % (95 % CI -55 % to -45 %)"),
    ],
)
def test_a_change_and_its_interval_have_one_form_signed_and_joined_by_to(ratio, low, high, text):
    assert change_with_interval(ratio, low, high) == text
    assert "–-" not in text


def test_the_report_rewrites_an_old_sentence_in_today_s_format_without_doubling_the_metric(results_dir, tmp_path):
    write_record(results_dir, "comparisons", "old", [OLD_ROW])
    build_site(results_dir, tmp_path / "site")
    page = (tmp_path / "site" / "comparisons" / "old.html").read_text()
    assert "array_mean_var · wall time</b>: -49 % (95 % CI -55 % to -45 %)" in page
    assert "wall time: wall time" not in re.sub(r"<[^>]+>", "", page)
    assert "–-" not in page
