"""Following a trial's metric as its run writes it: any TensorBoard event files, unitb's or not.

The agent polls the trial's folders (its own, and any folder its entry points chose elsewhere
and named in ``.unitb-trial-runs.json``) and reads what each event file gained since the last
poll, from where it stopped — whole records only, as the backends' forwarder does — so a poll
of a file that did not grow costs one ``stat``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from unitb.files import json_files
from unitb.files.names import REMOVED, TRIAL_RUNS
from unitb.read import run_reader, records


@dataclass
class _File:
    offset: int = 0
    plugin_of: Dict[str, str] = field(default_factory=dict)


class MetricFollower:
    """The new ``(step, value)`` points of one scalar tag below a trial's folder, poll by poll."""

    def __init__(self, folder: str, tag: str) -> None:
        self.folder = folder
        self.tag = tag
        self._needle = tag.encode()
        self._files: Dict[str, _File] = {}
        self.run_folder: Optional[str] = None  # the folder of the event file the metric came from

    def tags_seen(self) -> List[str]:
        """Every tag the trial's runs wrote (read once, to name them when the metric never came)."""
        found: Set[str] = set()
        for root in self.folders():
            for run in run_reader.find_runs(root):
                found.update(str(entry["tag"]) for entry in run_reader.tag_summary(run))
        return sorted(found)

    def folders(self) -> List[str]:
        """The trial's folder and the run folders its entry points named (mmengine's
        ``work_dir/<timestamp>/vis_data`` for the hook)."""
        named = json_files.read_dict(os.path.join(self.folder, TRIAL_RUNS)).get("runs")
        return [self.folder, *(path for path in (named if isinstance(named, list) else []) if isinstance(path, str))]

    def poll(self) -> List[Tuple[int, float]]:
        """Points of the tag written since the last poll, in file order."""
        points: List[Tuple[int, float]] = []
        for path in self._event_files():
            followed = self._files.setdefault(path, _File())
            try:
                if os.path.getsize(path) <= followed.offset:
                    continue
            except OSError:
                continue  # set aside or removed between the listing and now
            # The offset is the loop's own target: where the next read starts, after each block.
            for events, followed.offset in records.events_holding(path, self._needle, followed.offset):  # noqa: B020
                found = run_reader.tag_scalars(events, self.tag, followed.plugin_of, set())
                if found:
                    self.run_folder = os.path.dirname(path)
                points += found
        return points

    def _event_files(self) -> List[str]:
        found = []
        for root in self.folders():
            for current, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d != REMOVED)
                found += [os.path.join(current, name) for name in sorted(files) if run_reader.is_event_file(name)]
        return found
