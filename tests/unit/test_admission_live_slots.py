"""Unit tests of admission by live slots: while a worker restarts or drains, the node's
slots are the other workers' threads, so the survivors are not oversubscribed."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from firebox.runtime.admission import Admission
from firebox.runtime.config import NodeConfig
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import Throttled
from firebox.runtime.specs import Deployed
from firebox.runtime.supervisor import Supervisor

from tests.unit.test_specs import SPEC, FakeRecorder, WideCatalog


def _supervisor(tmp_path: Path, workers: int, threads: int) -> Supervisor:
    # Never started: which workers are alive is set by hand, as their reader tasks would.
    config = NodeConfig(data_dir=tmp_path, workers=workers, worker_threads=threads)
    supervisor = Supervisor(config, EngineSettings())
    for worker in supervisor.workers:
        worker.alive = True
    return supervisor


def test_slots_follow_the_workers_that_take_calls(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path, workers=2, threads=4)
    assert supervisor.slots() == 8
    supervisor.workers[0].alive = False  # exited; its replacement is starting
    assert supervisor.slots() == 4
    supervisor.workers[0].alive = True
    supervisor.workers[1].draining = True  # recycled: it gets no new calls
    assert supervisor.slots() == 4
    supervisor.workers[0].alive = False
    # Nobody takes calls: one worker's worth, the calls wait for the first replacement.
    assert supervisor.slots() == 4


def test_a_restarting_worker_leaves_only_the_survivors_threads(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path, workers=2, threads=4)
    admission = Admission(WideCatalog(), FakeRecorder(), supervisor.slots)  # type: ignore[arg-type]
    names = ("a", "b", "c", "d", "e", "f")
    fns = {n: Deployed(n, n, SPEC, {}, "1") for n in names}
    with contextlib.ExitStack() as held:
        for name in ("a", "b", "c"):
            held.enter_context(admission.admit(fns[name], b"{}", name))
        supervisor.workers[1].alive = False  # one worker of two is lost
        assert (admission.slots, admission.reserve, admission.share) == (4, 1, 3)
        # 3 running, 1 free (= the reserve): only a function under its fair part gets it.
        held.enter_context(admission.admit(fns["d"], b"{}", "d"))
        assert admission.running == 4
        with pytest.raises(Throttled, match="the node's 4 execution slots are taken"):
            held.enter_context(admission.admit(fns["e"], b"{}", "e"))
        supervisor.workers[1].alive = True  # the replacement is up: 8 slots again
        held.enter_context(admission.admit(fns["e"], b"{}", "e2"))
        held.enter_context(admission.admit(fns["f"], b"{}", "f"))
        assert admission.running == 6
    assert admission.running == 0


def test_a_functions_cap_shrinks_with_the_live_slots(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path, workers=2, threads=8)
    admission = Admission(WideCatalog(), FakeRecorder(), supervisor.slots)  # type: ignore[arg-type]
    assert admission.cap("flood") == 12  # 16 slots, 4 kept back
    supervisor.workers[0].alive = False
    assert admission.cap("flood") == 6  # 8 slots, 2 kept back
    flood = Deployed("flood", "flood", SPEC, {}, "1")
    with contextlib.ExitStack() as held:
        for i in range(6):
            held.enter_context(admission.admit(flood, b"{}", f"f{i}"))
        with pytest.raises(Throttled, match="concurrency limit of 6"):
            held.enter_context(admission.admit(flood, b"{}", "f6"))
