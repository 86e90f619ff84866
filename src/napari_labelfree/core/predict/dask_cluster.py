"""Dask clusters for prediction: a scheduler's address checked, a local cluster started.

Used by the client side (:mod:`.distributed`) and the command line's ``--scheduler`` and
``--workers``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import LabelFreeError


def check_scheduler(address: str, seconds: float) -> None:
    """Refuse, within ``seconds``, an address where no Dask scheduler answers.

    A closed port is refused at once; a server of another kind (a web server) accepts the
    connection and then never answers Dask's handshake, where ``Client`` would wait forever.
    """
    import asyncio
    import socket

    from distributed.comm import connect, parse_address, parse_host_port

    def unreachable(why: str) -> LabelFreeError:
        return LabelFreeError(
            f"cannot reach the Dask scheduler at {address} ({why}); start it (dask scheduler) "
            "or check its address"
        )

    scheme, location = parse_address(address)
    if scheme != "tcp":
        return  # TLS and other transports need their own settings: Client checks them
    host, port = parse_host_port(location)
    try:
        socket.create_connection((host, port), timeout=seconds).close()
    except OSError as e:
        raise unreachable(e.strerror or type(e).__name__) from None

    async def identity() -> Any:
        comm = await asyncio.wait_for(connect(address, timeout=seconds), seconds)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await asyncio.wait_for(comm.read(), seconds)
        finally:
            comm.abort()

    try:
        answer = asyncio.run(identity())
    except (OSError, TimeoutError, ValueError, TypeError):
        answer = None
    if not (isinstance(answer, dict) and answer.get("type") == "Scheduler"):
        raise LabelFreeError(
            f"no Dask scheduler answers at {address} within {seconds:g} s (is it another kind "
            "of server?); give the address the scheduler prints (tcp://HOST:PORT)"
        )


def start_local_cluster(
    n_workers: int | str = "auto", torch_threads: int | None = None
) -> tuple[Any, int]:
    """A local cluster of worker processes; ``auto``: one per CUDA GPU, each pinned to its GPU.

    Returns the cluster and the torch threads per worker to use (the CPU cores shared out when
    the workers run on the CPU). Without GPUs, ``auto`` starts one worker.
    """
    import torch
    from distributed import Nanny, Scheduler, SpecCluster

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_workers == "auto":
        n_workers = max(gpus, 1)
    n = int(n_workers)
    if n < 1:
        raise LabelFreeError(f"the number of workers must be at least 1, got {n_workers}")
    if torch_threads is None and not gpus:
        torch_threads = max(1, (os.cpu_count() or 1) // n)
    workers = {}
    for i in range(n):
        env = {"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else {}
        workers[f"labelfree-{i}"] = {
            "cls": Nanny,
            "options": {"nthreads": 1, "env": env, "silence_logs": logging.ERROR},
        }
    cluster = SpecCluster(
        workers=workers,
        scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
        silence_logs=logging.ERROR,
    )
    return cluster, torch_threads or 0
