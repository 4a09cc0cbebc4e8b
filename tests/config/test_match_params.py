"""Parameter matching (issue 24, LRA's 10 % rule): `match_params=VARIANT` picks the backbone width
that brings each variant's parameter count within 10 % of VARIANT's, or the nearest width."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnbench.config.build import MATCH_TOLERANCE, _nearest_width, build_model, match_width
from attnbench.config.run_config import ComponentConfig
from attnbench.tasks import TASKS
from tests.conftest import all_runs


def count(model) -> int:  # noqa: ANN001 - a Backbone
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def recall():  # noqa: ANN201 - TaskData
    return TASKS.get("assoc_recall")(n_train=8, n_val=8, n_test=8).load(0)


@pytest.mark.parametrize("backbone", ["transformer", "rnn"])
@pytest.mark.parametrize("variant", ["none", "additive", "multihead"])
def test_variants_land_within_ten_percent_of_scaled(recall, backbone: str, variant: str) -> None:
    attention, configured = ComponentConfig(variant), ComponentConfig(backbone)
    reference = count(build_model(ComponentConfig("scaled"), configured, recall, 0))
    before = count(build_model(attention, configured, recall, 0))
    matched, match = match_width(attention, configured, recall.spec, "scaled")
    model = build_model(attention, configured, recall, 0, match_params="scaled")
    assert count(model) == match.params  # the counted width is the built one
    assert match.reference_params == reference and match.reference == "scaled"
    assert abs(count(model) / reference - 1) <= MATCH_TOLERANCE and match.within
    key = match.key.removeprefix("backbone.")
    assert matched.params[key] == match.width and match.configured == 64
    if abs(before / reference - 1) <= MATCH_TOLERANCE:  # already within: the width is kept
        assert match.width == 64
    else:
        assert match.width != 64
        assert "-> " in match.note() and "within 10%" in match.note()


def test_already_close_variants_keep_their_width(recall) -> None:
    """Multihead on the Transformer has scaled's count exactly; rnn+additive (+41 %) does not."""
    _, same = match_width(ComponentConfig("multihead"), ComponentConfig("transformer"),
                          recall.spec, "scaled")
    assert (same.width, same.gap) == (64, 0.0) and "backbone.d_model 64 kept" in same.note()
    _, moved = match_width(ComponentConfig("additive"), ComponentConfig("rnn"), recall.spec,
                           "scaled")
    assert moved.key == "backbone.hidden" and moved.width < 64


def test_nearest_width_by_hand() -> None:
    """Counts 100·w² for even widths (odd ones refused): the nearest count wins either side."""

    def counts(width: int) -> int | None:
        return 100 * width * width if width % 2 == 0 else None

    assert _nearest_width(counts, 100 * 31 * 31, 16) == (30, 90000)  # 96100: 90000 vs 102400
    assert _nearest_width(counts, 110000, 16) == (34, 115600)  # 110000: 102400 vs 115600
    assert _nearest_width(counts, 10**12, 4) == (64, 409600)  # beyond 16x: the widest, reported
    assert _nearest_width(counts, 1, 4) == (2, 400)


def test_impossible_match_reports_the_nearest(recall) -> None:
    """lowrank's learned position columns (32 x 512 per layer) outweigh anything `none` reaches
    at 16x a width of 2: the widest is used and the note says it is not within 10 %."""
    backbone = ComponentConfig("transformer", (("d_model", 2), ("layers", 1), ("max_len", 32)))
    _, match = match_width(ComponentConfig("none"), backbone, recall.spec, "lowrank")
    assert not match.within and match.width == 32 and match.params < match.reference_params
    assert "the nearest width: not within 10%" in match.note()


def test_run_reports_and_tags_the_match(cli, runs_dir: Path) -> None:
    result = cli("run", "attention=none", "match_params=scaled")
    assert result.exit_code == 0, result.output
    assert "note: match_params=scaled: backbone.d_model 64 -> " in result.output
    (run,) = all_runs(runs_dir)
    tag = json.loads(run.tags["attnbench.match_params"])
    assert tag["reference"] == "scaled" and tag["within"] is True
    assert run.metrics["cost/params"] == tag["params"]
    assert run.params["match_params"] == "scaled" and run.params["backbone.d_model"] == "64"
    again = cli("evaluate", run.run_id, "--runs-dir", str(runs_dir))  # rebuilt at that width
    assert again.exit_code == 0, again.output


def test_unknown_reference_is_one_line(cli, runs_dir: Path) -> None:
    result = cli("run", "match_params=bogus")
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: 'match_params' = 'bogus' is not an attention variant")
    assert all_runs(runs_dir) == []
