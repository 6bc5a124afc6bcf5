"""The ledger: a curve's finished evaluations kept beside its report, built across sessions.

A curve costs hours (issue 21), more than one session of a machine whose ``runs/`` store does
not survive it. So ``driving curve`` writes each evaluation it finishes, a trained point's or a
reference agent's, into ``OUT/points/<digest>/`` (the digest of its key, as the store names its
folders), and finds it there on a later run, on this machine or on a fresh one where ``OUT`` is
a committed folder:

- ``policy.ckpt``: a point's network, weights and policy record only
  (:func:`driving.train.checkpoint_io.save_policy`'s form, a few MB, ``cnn:`` reads it): the
  next DAgger round drives it, and anyone can evaluate it again;
- ``episodes.csv``, ``summary.json``: the evaluation (:func:`driving.evaluation.write_evaluation`);
- ``entry.json``, written last (so an entry cut short is never read): its key (a point's store
  key or the reference agent's spec, the scenario and the seeds), its labels and training
  seed, and when, by what command, with which code (:func:`driving.eval_cache.
  code_digest`) and versions it was measured.

An entry is reused whatever the code is now (that is what lets the set be built over several
sessions); the report counts the entries measured with other code than the current one, and
``--fresh`` measures everything again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from driving.eval_cache import code_digest
from driving.evaluation import Evaluation, EvaluationSummary, read_rows, write_evaluation
from driving.files import atomic_write_text
from driving.train.checkpoint_io import save_network_of
from driving.train.store import json_ready, key_digest
from driving.versions import package_versions
from envs.errors import UserError

ENTRY = "entry.json"
POLICY = "policy.ckpt"


@dataclass(frozen=True)
class LedgerEntry:
    """What ``entry.json`` holds (see the module docstring).

    Attributes:
        key: what decides the evaluation.
        labels: the point's expert labels (None for a reference agent).
        seed: the point's training seed (None for a reference agent).
        date: when its evaluation was stored (ISO 8601, UTC).
        command: the command that stored it.
        code: :func:`driving.eval_cache.code_digest` of the code that drove it.
        versions: :func:`driving.versions.package_versions` then.
    """

    key: dict[str, Any]
    labels: int | None
    seed: int | None
    date: str
    command: str
    code: str
    versions: dict[str, str]


class Ledger:
    """The folder of kept evaluations (see the module docstring).

    Args:
        root: the folder (``OUT/points``).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, key: dict[str, Any]) -> Path:
        """Where the entry of ``key`` lives (not created)."""
        return self.root / key_digest(key)

    def entry(self, key: dict[str, Any]) -> LedgerEntry | None:
        """The finished entry of ``key`` (None when there is none; a :class:`UserError` when
        its folder holds an unreadable entry or another key)."""
        path = self.folder(key) / ENTRY
        if not path.is_file():
            return None
        try:
            entry = LedgerEntry(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise UserError(f"{path}: not a ledger entry ({error}); remove its folder") from None
        if entry.key != json_ready(key):
            raise UserError(f"{path} holds another key; remove its folder")
        return entry

    def evaluation(self, key: dict[str, Any]) -> Evaluation:
        """The stored evaluation of the finished entry of ``key``."""
        folder = self.folder(key)
        try:
            return Evaluation(read_rows(folder), EvaluationSummary.read(folder / "summary.json"))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"{folder}: unreadable evaluation ({error}); remove it") from None

    def policy(self, key: dict[str, Any]) -> Path:
        """The kept network of the entry of ``key``."""
        return self.folder(key) / POLICY

    def keep_policy(self, key: dict[str, Any], checkpoint: Path) -> Path:
        """Copy the network of ``checkpoint`` (a Lightning or bare one) into the entry of
        ``key``, weights and policy record only; return the copy."""
        return save_network_of(checkpoint, self.policy(key))

    def record(
        self,
        key: dict[str, Any],
        evaluation: Evaluation,
        command: str,
        labels: int | None = None,
        seed: int | None = None,
    ) -> LedgerEntry:
        """Store ``evaluation`` as the entry of ``key`` (``entry.json`` last); return it."""
        folder = self.folder(key)
        write_evaluation(evaluation, folder)
        entry = LedgerEntry(
            key=json_ready(key),
            labels=labels,
            seed=seed,
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command=command,
            code=code_digest(),
            versions=package_versions(),
        )
        atomic_write_text(folder / ENTRY, json.dumps(asdict(entry), indent=1))
        return entry
