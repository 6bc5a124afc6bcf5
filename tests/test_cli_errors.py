"""Every subcommand fed invalid arguments: one line on stderr, exit status 2, no traceback.

Run in-process through :func:`driving.commands.main` (the console script's own entry point) so that
the whole table costs seconds (the Lightning commands in their own process);
``tests/test_rollout_evaluate.py`` and friends check the same
contract through real subprocesses for the main commands.
"""

from __future__ import annotations

import pytest

from driving import commands as cli
from tests.support import run_driving

pytestmark = pytest.mark.faults

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")

CASES: list[tuple[list[str], str]] = [
    (["no-such-command"], "unknown command"),
    (["evaluate", "--agent", "idm", "--episodes", "-3", "--out", "{tmp}/o"], "positive integer"),
    (["evaluate", "--agent", "idm", "--episodes", "0", "--out", "{tmp}/o"], "positive integer"),
    (["evaluate", "--agent", "nobody", "--episodes", "1", "--out", "{tmp}/o"], "nobody"),
    (
        ["evaluate", "--agent", "idm", "--scenario", "moon", "--episodes", "1", "--out", "{tmp}/o"],
        "moon",
    ),
    (["evaluate", "--agent", "idm", "--seeds", "9:3", "--out", "{tmp}/o"], "9:3"),
    (
        ["evaluate", "--agent", "idm", "--episodes", "1", "--workers", "0", "--out", "{tmp}/o"],
        "positive integer",
    ),
    (
        [
            "evaluate",
            "--agent",
            "idm",
            "--episodes",
            "1",
            "--overrides",
            "{{not json",
            "--out",
            "{tmp}/o",
        ],
        "JSON",
    ),
    (
        [
            "evaluate",
            "--agent",
            "idm",
            "--episodes",
            "1",
            "--overrides",
            '{{"vehicles_count": -4}}',
            "--out",
            "{tmp}/o",
        ],
        "vehicles_count",
    ),
    (
        [
            "evaluate",
            "--agent",
            "idm",
            "--episodes",
            "1",
            "--overrides",
            '{{"no_such_key": 1}}',
            "--out",
            "{tmp}/o",
        ],
        "no_such_key",
    ),
    (
        [
            "evaluate",
            "--agent",
            "idm",
            "--episodes",
            "1",
            "--overrides-file",
            "{tmp}/missing.yaml",
            "--out",
            "{tmp}/o",
        ],
        "missing.yaml",
    ),
    (
        ["evaluate", "--agent", "cnn:{tmp}/missing.ckpt", "--episodes", "1", "--out", "{tmp}/o"],
        "missing.ckpt",
    ),
    (["compare", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
    (
        ["compare", "--config", "experiments/compare_highway.yaml", "--episodes", "-1"],
        "positive integer",
    ),
    (["watch", "--agent", "nobody"], "nobody"),
    (["watch", "--agent", "idm", "--scenario", "moon", "--record", "{tmp}/v.mp4"], "moon"),
    (["watch", "--agent", "idm", "--episodes", "0", "--record", "{tmp}/v.mp4"], "positive integer"),
    (["watch", "--agent", "idm", "--record", "{tmp}/v.avi"], ".mp4"),
    (["demo", "--episodes", "0"], "positive integer"),
    (["demo", "--overrides", "[1, 2]"], "JSON object"),
    (["collect", "--agent", "idm", "--episodes", "0", "--out", "{tmp}/d"], "positive integer"),
    (["collect", "--agent", "nobody", "--episodes", "1", "--out", "{tmp}/d"], "nobody"),
    (["collect", "--agent", "idm", "--seeds", "1000000:1000005", "--out", "{tmp}/d"], "held-out"),
    (
        ["collect", "--agent", "idm", "--episodes", "1", "--noise-steer", "-1", "--out", "{tmp}/d"],
        "noise",
    ),
    (["collect", "--out", "{tmp}/nothing-here", "--resume"], "nothing-here"),
    (["data", "verify", "{tmp}/nothing-here"], "nothing-here"),
    (["data", "info", "{tmp}/nothing-here"], "nothing-here"),
    (["data", "shred", "{tmp}"], "shred"),
    (["fit", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
    (["fit", "--config", "experiments/bc_cpu_small.yaml", "--model.lr", "fast"], "lr"),
    (
        ["fit", "--config", "experiments/bc_cpu_small.yaml", "--data.root", "{tmp}/nothing-here"],
        "nothing-here",
    ),
    (
        ["validate", "--config", "experiments/bc_cpu_small.yaml", "--no_such_flag", "1"],
        "no_such_flag",
    ),
    (["curve", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
    (["curve", "--config", "experiments/curve_highway.yaml", "--series", "PPO"], "PPO"),
    (
        ["curve", "--config", "experiments/curve_highway.yaml", "--episodes", "0"],
        "positive integer",
    ),
    (["perception", "--episodes", "0"], "positive integer"),
    (["perception", "--scenario", "moon", "--episodes", "1"], "moon"),
    (["bench", "sim", "--steps", "0"], "positive integer"),
    (["bench", "collect", "--frames", "-5"], "positive integer"),
    (["bench", "train", "--data", "{tmp}/nothing-here"], "nothing-here"),
    (["bench", "nothing"], "unknown command 'nothing'"),
    (["bench", "env", "--steps", "-5"], "positive integer"),
    (["bench", "env", "--scenario", "moon"], "moon"),
    # non-finite and out-of-range overrides: one rule (envs.scenarios.OVERRIDE_BOUNDS)
    *(
        (
            [
                "evaluate",
                "--agent",
                "idm",
                "--episodes",
                "1",
                "--overrides",
                text,
                "--out",
                "{tmp}/o",
            ],
            needle,
        )
        for text, needle in [
            ('{{"duration": Infinity}}', "duration must be a finite number"),
            ('{{"vehicles_density": NaN}}', "vehicles_density must be a finite number"),
            ('{{"reward_speed_range": [NaN, 30]}}', "reward_speed_range"),
            ('{{"vehicles_density": -1}}', "vehicles_density must be a number in (0, 10]"),
            ('{{"lanes_count": 1000}}', "lanes_count must be an integer in [1, 10]"),
            ('{{"initial_lane_id": 9}}', "initial_lane_id 9 does not exist"),
            ('{{"vehicles_count": 1000000}}', "vehicles_count must be an integer in [0, 200]"),
            ('{{"observation": {{"width": 100000}}}}', "observation.width"),
            ('{{"action": {{"cruise_speed": NaN}}}}', "action.cruise_speed"),
            ('{{"policy_frequency": 1000}}', "policy_frequency"),
        ]
    ),
    (
        [
            "collect",
            "--agent",
            "idm",
            "--episodes",
            "1",
            "--overrides",
            '{{"duration": NaN}}',
            "--out",
            "{tmp}/d",
        ],
        "duration",
    ),
    # output locations: one check (driving.files.check_output_location) before any work
    (["evaluate", "--agent", "idm", "--episodes", "1", "--out", "{tmp}/afile/o"], "is a file"),
    (["evaluate", "--agent", "idm", "--episodes", "1", "--out", "/proc/o"], "cannot be written"),
    (["collect", "--agent", "idm", "--episodes", "1", "--out", "{tmp}/afile/d"], "is a file"),
    (["collect", "--agent", "idm", "--episodes", "1", "--out", "/proc/d"], "cannot be written"),
    (["watch", "--agent", "idm", "--record", "{tmp}/afile/v.mp4"], "is a file"),
    (["watch", "--agent", "idm", "--record", "/proc/v.mp4"], "cannot be written"),
    *(
        (["watch", "--agent", "idm", "--record", "{tmp}/v.mp4", "--fps", fps], "--fps")
        for fps in ("0", "-3", "nan", "inf")
    ),
    (
        ["fit", "--config", "experiments/bc_cpu_small.yaml", "--ckpt_path", "{tmp}/typo.ckpt"],
        "typo.ckpt not found",
    ),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a[:2]) for a, _ in CASES])
def test_invalid_arguments_are_one_line_errors(args, needle, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in args]
    (tmp_path / "afile").write_text("a file, not a folder\n")
    if argv[0] in LIGHTNING_COMMANDS:  # Lightning's logging keeps global state: own process
        result = run_driving(argv)
        status, err = result.returncode, result.stderr
    else:
        try:
            status = cli.main(argv)
        except SystemExit as exc:  # argparse errors exit from inside the subcommand's parser
            status = exc.code
        err = capsys.readouterr().err
    assert status == 2, (argv, status, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, err
    assert needle in lines[0], (needle, lines[0])
