#!/usr/bin/env python3
"""Smoke test of its-load (run by `make test`): every mode with a few thousand MSIs against the
itsd it starts from the same build directory. Each run must exit 0, print one JSON object with every
documented key, send exactly -d x -e x -i MSIs, inject every mapped LPI, acknowledge at least one
LPI per mapped LPI, lose none, and report a floor and the server's CPU and memory."""
import json
import subprocess
import sys
import time

REQUIRED = ["mode", "acknowledge", "msis", "msis_per_s", "p50_us", "p99_us", "p999_us", "lost", "server_cpu_ns_per_msi",
            "floor_p50_us", "floor_msgs_per_s", "server_rss_bytes", "vcpus", "devices", "events", "connections"]
# name -> (mode, -v, -d, -e, -i, extra flags)
RUNS = {
    "pipelined": ("pipelined", 2, 2, 16, 100, ["--connections", "2"]),
    "batch": ("batch", 2, 2, 16, 100, ["--batch", "48"]),
    "translater": ("translater", 2, 2, 16, 100, []),
    "rtt": ("rtt", 2, 2, 16, 100, []),
    "irqfd": ("irqfd", 2, 1, 8, 200, []),
    "rtt, WAIT_ACK": ("rtt", 2, 2, 16, 100, ["--acknowledge", "wait"]),
    "irqfd, WAIT_ACK": ("irqfd", 3, 1, 8, 200, ["--acknowledge", "wait"]),
    "rtt, ACK after the eventfd": ("rtt", 2, 2, 16, 100, ["--acknowledge", "notify"]),
    "irqfd, ACK after the eventfd": ("irqfd", 3, 1, 8, 200, ["--acknowledge", "notify"]),
    "pipelined, ACK after the eventfd": ("pipelined", 3, 2, 16, 100, ["--acknowledge", "notify", "--consumers", "2"]),
}
# Modes that keep one MSI outstanding until it is acknowledged: every MSI is acknowledged.
ONE_OUTSTANDING = {"rtt", "irqfd"}
# Modes whose floor is a latency (the others stream).
LATENCY_FLOOR = {"rtt", "irqfd"}


def check(binary, mode, vcpus, devices, events, iterations, extra):
    command = [binary, "--mode", mode, "-v", str(vcpus), "-d", str(devices), "-e", str(events),
               "-i", str(iterations), "--lanes", "2", "--floor-duration", "0.05", "--json"] + extra
    started = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    problems = []
    if run.returncode != 0:
        return [f"exit {run.returncode}: {run.stderr.strip()}"], elapsed
    try:
        result = json.loads(run.stdout)
    except json.JSONDecodeError as error:
        return [f"not one JSON object ({error}): {run.stdout!r}"], elapsed
    missing = [key for key in REQUIRED if key not in result]
    if missing:
        problems.append(f"missing keys {missing}")
    lpis = devices * events
    expected = lpis * iterations
    if result.get("mode") != mode:
        problems.append(f"mode {result.get('mode')!r}")
    if result.get("msis") != expected:
        problems.append(f"msis {result.get('msis')} != {expected}")
    if result.get("lost") != 0:
        problems.append(f"lost {result.get('lost')}")
    if result.get("lpis_injected") != lpis:
        problems.append(f"lpis_injected {result.get('lpis_injected')} != {lpis}")
    if not result.get("acknowledged", 0) >= lpis:
        problems.append(f"acknowledged {result.get('acknowledged')} < {lpis} LPIs")
    if mode in ONE_OUTSTANDING and result.get("acknowledged") != expected:
        problems.append(f"{mode}: one outstanding, so every MSI is acknowledged: {result.get('acknowledged')} != {expected}")
    wanted = extra[extra.index("--acknowledge") + 1] if "--acknowledge" in extra else "slot"
    if result.get("acknowledge") != wanted:
        problems.append(f"acknowledge {result.get('acknowledge')!r}, not {wanted!r}")
    if not (result.get("msis_per_s") or 0) > 0 or not (result.get("floor_msgs_per_s") or 0) > 0:
        problems.append("no rate or no floor rate")
    if (result.get("floor_p50_us") is None) == (mode in LATENCY_FLOOR):
        problems.append(f"floor_p50_us {result.get('floor_p50_us')} for a {'latency' if mode in LATENCY_FLOOR else 'streaming'} floor")
    if mode in LATENCY_FLOOR and result.get("path_p50_us") is None:
        problems.append("no path latency")
    if result.get("p50_us") is None or not result["p50_us"] <= result["p99_us"] <= result["p999_us"]:
        problems.append(f"latency percentiles out of order: {result.get('p50_us')} {result.get('p99_us')} {result.get('p999_us')}")
    if not (result.get("server_rss_bytes") or 0) > 0 or result.get("server_cpu_ns_per_msi") is None:
        problems.append("no server RSS or CPU")
    return problems, elapsed


def check_loss_accounting(binary):
    """With no consumer nothing is acknowledged: every injected LPI must count as lost (exit 3)."""
    command = [binary, "--mode", "pipelined", "-v", "2", "-d", "2", "-e", "8", "-i", "10", "--consumers", "0",
               "--lanes", "1", "--floor-duration", "0.05", "--json"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if run.returncode != 3:
        return [f"exit {run.returncode}, not 3: {run.stderr.strip()}"]
    result = json.loads(run.stdout)
    if result.get("lost") != 16 or result.get("acknowledged") != 0:
        return [f"lost {result.get('lost')} (want 16), acknowledged {result.get('acknowledged')} (want 0)"]
    return []


def main():
    binary = sys.argv[1]
    failed = 0
    problems = check_loss_accounting(binary)
    print("its-load loss accounting: " + ("ok" if not problems else "FAILED: " + "; ".join(problems)))
    failed += bool(problems)
    for name, (mode, vcpus, devices, events, iterations, extra) in RUNS.items():
        problems, elapsed = check(binary, mode, vcpus, devices, events, iterations, extra)
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"its-load {name}: {status} ({elapsed:.1f} s)")
        failed += bool(problems)
    print(f"its-load smoke: {len(RUNS) + 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
