#!/usr/bin/env python3
"""The Python peer: qemu.qmp's QMPClient running one qmp-perf workload.

usage: peer_qemu_qmp.py doc|best WORKLOAD SOCKET COUNT WARMUP

doc:  asyncio as the qemu.qmp documentation shows (QMPClient, await execute()).
best: the same code on uvloop, with logging disabled.
Prints one JSON line: commands, wall_secs, cpu_micros (user+sys of this process
during the measured loop), peak_rss_kib (ru_maxrss), allocations (null).
"""
import asyncio
import json
import logging
import resource
import sys
import time

from qemu.qmp import QMPClient

PIPELINE_TASKS = 8


def cpu_micros():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1_000_000)


async def workload_loop(qmp, workload, n):
    if workload == "sequential":
        for _ in range(n):
            reply = await qmp.execute("query-version")
            assert reply["qemu"]["major"] >= 1
    elif workload == "schema":
        for _ in range(n):
            schema = await qmp.execute("query-qmp-schema")
            assert len(schema) > 100
    elif workload == "pipelined":
        async def worker(k):
            for _ in range(k):
                reply = await qmp.execute("query-version")
                assert reply["qemu"]["major"] >= 1
        await asyncio.gather(*(worker(n // PIPELINE_TASKS) for _ in range(PIPELINE_TASKS)))
    else:
        raise SystemExit(f"unknown workload {workload}")


async def main(workload, socket, count, warmup):
    qmp = QMPClient("qmp-perf")
    await qmp.connect(socket)
    await workload_loop(qmp, workload, warmup)
    cpu = cpu_micros()
    started = time.perf_counter()
    await workload_loop(qmp, workload, count)
    wall = time.perf_counter() - started
    cpu = cpu_micros() - cpu
    await qmp.disconnect()
    return {
        "commands": count,
        "wall_secs": wall,
        "cpu_micros": cpu,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "allocations": None,
    }


if __name__ == "__main__":
    mode, workload, socket, count, warmup = sys.argv[1:6]
    coroutine = main(workload, socket, int(count), int(warmup))
    if mode == "best":
        import uvloop

        logging.disable(logging.CRITICAL)
        uvloop.install()
    elif mode != "doc":
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(asyncio.run(coroutine)))
