"""Calls into a real worker process: results, errors as statuses, and a worker that dies mid-call."""

from __future__ import annotations

import pytest

from miso_runtime.errors import MisoError
from workers.protocol.base import WorkerSpec
from workers.rpc import RpcClient
from workers.supervisor import Supervisor


@pytest.fixture
def rpc():
    supervisor = Supervisor()
    worker = supervisor.add(WorkerSpec("rpc", "tests.rpc_worker:run"))
    client = RpcClient(worker, "rpc", error=MisoError)
    supervisor.on_event("rpc", client.handle_event)
    supervisor.on_exit("rpc", client.handle_exit)
    supervisor.start_all()
    yield client
    supervisor.stop_all()


def test_results_and_errors(rpc):
    assert rpc.call("add", 10, a=2, b=3) == 5
    with pytest.raises(MisoError) as refused:
        rpc.call("refuse", 10, message="nickname already in use")
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        409,
        "taken",
        "nickname already in use",
    )
    with pytest.raises(MisoError) as crashed:
        rpc.call("crash", 10)
    assert crashed.value.status == 500 and "something broke inside" in crashed.value.message
    with pytest.raises(MisoError) as unknown:
        rpc.call("nope", 10)
    assert unknown.value.status == 404
    with pytest.raises(MisoError) as bad_args:
        rpc.call("add", 10, a=1)
    assert bad_args.value.status == 400
    assert rpc.call("add", 10, a="x", b="y") == "xy"  # the worker survived every failure


def test_a_worker_that_dies_ends_the_call_at_once(rpc):
    with pytest.raises(MisoError) as died:
        rpc.call("die", 30)
    assert died.value.status == 503 and "exited (code 3)" in died.value.message
