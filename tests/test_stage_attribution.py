"""Which perception stage costs modular-vision what: hybrid agents and the attribution table."""

from __future__ import annotations

import numpy as np

import envs
from agents.modular.hybrid import HybridPerception
from agents.modular.perception import OraclePerception
from agents.modular.vision import VisionPerception
from agents.registry import make_agent
from driving.comparison import ComparisonResult
from driving.evaluation import EvaluationSummary
from driving.report import stage_attribution
from driving.stats import summarize
from envs.scenarios import get_scenario
from tests.support import TINY


def test_hybrids_take_one_output_from_the_ground_truth_and_the_rest_from_the_pixels():
    scenario = get_scenario("highway").with_overrides(TINY)
    env = envs.make(scenario)
    try:
        obs, info = env.reset(seed=100_000)
        for _ in range(3):  # a few frames into the stack, so vision tracks the cars
            obs, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    finally:
        env.close()
    true = OraclePerception().perceive(obs, info)
    percepts = {}
    for name, perception in (
        ("vision", VisionPerception(scenario)),
        ("oracle-lanes", HybridPerception(scenario, "oracle-lanes")),
        ("oracle-vehicles", HybridPerception(scenario, "oracle-vehicles")),
    ):
        perception.reset()
        percepts[name] = perception.perceive(obs, info)
    seen = percepts["vision"]
    assert percepts["oracle-vehicles"].detections == true.detections
    for a, b in zip(percepts["oracle-vehicles"].lanes, seen.lanes, strict=True):
        assert np.array_equal(a.centerline, b.centerline)
    assert percepts["oracle-lanes"].detections == seen.detections
    assert percepts["oracle-lanes"].ego_lane == true.ego_lane
    for a, b in zip(percepts["oracle-lanes"].lanes, true.lanes, strict=True):
        assert np.array_equal(a.centerline, b.centerline)
    agent = make_agent("modular-vision:oracle-lanes", scenario)
    assert agent.privileged and agent.name == "modular-vision:oracle-lanes"


def _result(agent: str, completed: list[int], score: list[float]) -> ComparisonResult:
    rows = [
        {"seed": float(seed), "completed": float(c), "score": s}
        for seed, (c, s) in enumerate(zip(completed, score, strict=True))
    ]
    summary = EvaluationSummary(
        agent=agent,
        agent_description={},
        parameters=0,
        scenario={"name": "highway"},
        overrides={},
        seeds=list(range(len(rows))),
        episodes=len(rows),
        workers=1,
        wall_time_s=0.0,
        metrics={
            "completed": summarize(completed, rate=True),
            "score": summarize(score, rate=False),
        },
        versions={},
        date="",
    )
    return ComparisonResult("main: highway", None, None, summary, rows)


def test_each_failure_is_attributed_to_the_stage_whose_ground_truth_fixes_it():
    # seeds 0-3 fail for vision; 4-5 are completed by every agent
    results = [
        _result("modular-vision", [0, 0, 0, 0, 1, 1], [0.2, 0.2, 0.2, 0.2, 0.9, 0.9]),
        _result("modular-vision:oracle-lanes", [1, 0, 1, 0, 1, 1], [0.9, 0.2, 0.9, 0.2, 0.9, 0.9]),
        _result(
            "modular-vision:oracle-vehicles", [0, 1, 1, 0, 1, 1], [0.2, 0.9, 0.9, 0.2, 0.9, 0.9]
        ),
        _result("modular-oracle", [1, 1, 1, 0, 1, 1], [0.9, 0.9, 0.9, 0.3, 0.9, 0.9]),
    ]
    text = "\n".join(stage_attribution(results, "main: highway"))
    assert "failed 4 of 6 episodes" in text
    for part in ("lanes 1 (25%)", "vehicles 1 (25%)", "either 1 (25%)", "planning/control 1"):
        assert part in text, text
    (lanes,) = [line for line in text.splitlines() if line.startswith("| lanes |")]
    assert "+0.233" in lanes  # (0.7 + 0.7) / 6: the mean paired score gain
    # without the hybrids, nothing to attribute; without modular-vision, no table
    assert stage_attribution(results[:1], "main: highway") == []
    assert stage_attribution(results[1:], "main: highway") == []
    only_oracle = stage_attribution([results[0], results[3]], "main: highway")
    assert "both 3 (75%)" in "\n".join(only_oracle)  # the full oracle alone fixes 3 of 4
