"""What a step is: search.step_split's three rules, on whole solutions and on steps as generated."""

from __future__ import annotations

import dataclasses

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.steps import StepRule
from ttscale.types import Problem

MARKERS = ("Wait", "Alternatively", "But", "Let me")


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(("rule", "text", "steps"), [
    (StepRule("delimiter", "\n\n"), "a b.\n\nc d.\n\ne", ("a b.\n\n", "c d.\n\n", "e")),
    # paragraph: a paragraph under 3 words merges with the next; the last one merges back
    (StepRule("paragraph", "\n\n", min_tokens=3, max_tokens=50), "Ok.\n\nso x is 2 now.\n\nDone.",
     ("Ok.\n\nso x is 2 now.\n\nDone.",)),
    (StepRule("paragraph", "\n\n", min_tokens=2, max_tokens=50), "Ok so.\n\nx is 2.\n\nthen y is 3.",
     ("Ok so.\n\n", "x is 2.\n\n", "then y is 3.")),
    # paragraph: one over 6 words is cut at its sentence ends
    (StepRule("paragraph", "\n\n", max_tokens=6), "a b c. d e f. g h i.\n\nj.",
     ("a b c. d e f. ", "g h i.\n\n", "j.")),
    # markers: a new step opens at a reflection word, not inside a word ("Butter")
    (StepRule("markers", markers=MARKERS, max_tokens=50), "x is 2. Wait, x is 3. Butter is 4. But no.",
     ("x is 2. ", "Wait, x is 3. Butter is 4. ", "But no.")),
    # markers: "Wait. " alone is under 3 words, so it opens the step that follows
    (StepRule("markers", markers=MARKERS, min_tokens=3, max_tokens=50), "x is 2. Wait. Let me see: 3.",
     ("x is 2. ", "Wait. Let me see: 3.")),
])
def test_whole_solutions_split_as_configured(rule, text, steps):
    rule = dataclasses.replace(rule, count_tokens=words)
    assert rule.steps(text) == steps
    assert "".join(steps) == text


def test_a_step_stopped_on_a_marker_leaves_the_marker_to_the_next_step():
    rule = StepRule("markers", markers=MARKERS, count_tokens=words)
    assert rule.stops[:2] == (" Wait", "\nWait")
    assert rule.close("x is 2.\nWait", stopped=True, capped=False) == ("x is 2.\n", "Wait")


def test_a_step_cut_by_its_cap_ends_at_a_sentence_and_carries_the_rest():
    rule = StepRule("paragraph", "\n\n", max_tokens=5, count_tokens=words)
    assert rule.close("a b. c d e", stopped=False, capped=True) == ("a b. ", "c d e")
    assert rule.close("no sentence end here", stopped=False, capped=True) == ("no sentence end here", "")
    assert StepRule("delimiter").close("a b. c", stopped=False, capped=True) == ("a b. c", "")


def test_beam_search_grows_marker_steps_and_the_verifier_sees_them():
    from ttscale.verifiers.fake import FakeVerifier

    def reflective(prompt: str, rng) -> str:
        done = prompt.count("Wait")
        if done >= 3:
            return " so the answer is \\boxed{4}."
        return f" x is {rng.randint(1, 9)}. Wait, check it again. Let me add {done} more."

    seen: list[list[str]] = []

    class Recording(FakeVerifier):
        def score(self, problems, steps):
            seen.extend(steps)
            return super().score(problems, steps)

    s = SearchSettings(n=4, beam_width=2, max_new_tokens=200, max_step_tokens=40, max_iterations=12,
                       step_split="markers", step_markers=["Wait", "Let me"], selection="weighted")
    (r,) = build_strategy("beam_search").search([Problem("p", "2+2?", "4")], ["Q: 2+2?\nA:"],
                                               FakeGenerator(script=reflective), Recording(), s)
    assert any(step.startswith(("Wait", "Let me")) for steps in seen for step in steps)
    for c in r.completions:
        assert "".join(c.steps) == c.text
        assert all(not step.rstrip().endswith(("Wait", "Let me")) for step in c.steps)
    assert r.completions[r.selected].answer == "4"
