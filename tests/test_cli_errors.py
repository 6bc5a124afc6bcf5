"""Every subcommand fed invalid arguments: one line on stderr, exit status 2, no traceback.

Run in-process through :func:`driving.cli.main` (the console script's own entry point) so that
the whole table costs seconds; ``tests/test_rollout_evaluate.py`` and friends check the same
contract through real subprocesses for the main commands.
"""

from __future__ import annotations

import pytest

from driving import cli

pytestmark = pytest.mark.faults

CASES: list[tuple[list[str], str]] = [
    (["no-such-command"], "unknown command"),
    (["evaluate", "--agent", "idm", "--episodes", "-3", "--out", "{tmp}/o"], "positive integer"),
    (["evaluate", "--agent", "idm", "--episodes", "0", "--out", "{tmp}/o"], "positive integer"),
    (["evaluate", "--agent", "nobody", "--episodes", "1", "--out", "{tmp}/o"], "nobody"),
    (["evaluate", "--agent", "idm", "--scenario", "moon", "--episodes", "1",
      "--out", "{tmp}/o"], "moon"),
    (["evaluate", "--agent", "idm", "--seeds", "9:3", "--out", "{tmp}/o"], "9:3"),
    (["evaluate", "--agent", "idm", "--episodes", "1", "--workers", "0", "--out", "{tmp}/o"],
     "positive integer"),
    (["evaluate", "--agent", "idm", "--episodes", "1", "--overrides", "{{not json",
      "--out", "{tmp}/o"], "JSON"),
    (["evaluate", "--agent", "idm", "--episodes", "1", "--overrides",
      '{{"vehicles_count": -4}}', "--out", "{tmp}/o"], "vehicles_count"),
    (["evaluate", "--agent", "idm", "--episodes", "1", "--overrides", '{{"no_such_key": 1}}',
      "--out", "{tmp}/o"], "no_such_key"),
    (["evaluate", "--agent", "idm", "--episodes", "1", "--overrides-file", "{tmp}/missing.yaml",
      "--out", "{tmp}/o"], "missing.yaml"),
    (["evaluate", "--agent", "cnn:{tmp}/missing.ckpt", "--episodes", "1", "--out", "{tmp}/o"],
     "missing.ckpt"),
    (["compare", "--config", "{tmp}/missing.yaml"], "missing.yaml"),
    (["compare", "--config", "experiments/compare_highway.yaml", "--episodes", "-1"],
     "positive integer"),
    (["watch", "--agent", "nobody"], "nobody"),
    (["watch", "--agent", "idm", "--scenario", "moon", "--record", "{tmp}/v.mp4"], "moon"),
    (["watch", "--agent", "idm", "--episodes", "0", "--record", "{tmp}/v.mp4"],
     "positive integer"),
    (["watch", "--agent", "idm", "--record", "{tmp}/v.avi"], ".mp4"),
    (["demo", "--episodes", "0"], "positive integer"),
    (["bench", "nothing"], "unknown benchmark"),
    (["bench", "env", "--steps", "-5"], "positive integer"),
    (["bench", "env", "--scenario", "moon"], "moon"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a[:2]) for a, _ in CASES])
def test_invalid_arguments_are_one_line_errors(args, needle, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in args]
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse errors exit from inside the subcommand's parser
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, (argv, status, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], (needle, lines[0])
