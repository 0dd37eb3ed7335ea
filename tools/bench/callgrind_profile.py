#!/usr/bin/env python3
"""Instructions per MSI in itsd, by function, with valgrind's callgrind (instruction counts do not
depend on the machine's load, unlike times).

Usage: callgrind_profile.py BIN_DIR MODE [its-load arguments...]
  e.g. callgrind_profile.py .build/release batch -i 40000

Starts the release itsd (a copy without DWARF, which this valgrind cannot read) under callgrind on a
temporary socket, runs its-load against it, and a second time with -i 1 for the fixed cost (start,
HELLO, VM setup, floor), then prints (total - fixed) / MSIs and the inclusive instructions per MSI of
the functions that matter."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

FUNCTIONS = [
    "Connection.processFrames()", "FrameDecoder.decode(_:fdCount:)", "Server.handle(_:fds:session:)",
    "Server.injectWithoutReply(_:session:)", "LaneState.setPendingRun(_:from:vm:vcpu:)",
    "VMRegistry.vm(_:for:)", "ITS.translate(_:_:)", "LaneRedistributors.queue(_:for:)", "Server.flushLaneWork()",
    "LaneState.handle(_:)", "specialized LaneState.withRedistributor<A>(_:_:_:)", "Redistributor.setPending<A>(_:sink:)",
    "outlined init with copy of Redistributor", "swift_beginAccess", "swift_retain", "swift_release",
    "Hasher._finalize()", "Frame.encode(into:)", "Session.fill(_:with:)", "specialized Mailbox.drain()",
]


def profile(itsd, load, mode, args, directory, tag):
    socket = os.path.join(directory, f"{tag}.sock")
    out = os.path.join(directory, f"{tag}.callgrind")
    server = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", itsd, "--socket", socket,
                               "--lanes", "2", "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if os.path.exists(socket):
            break
        time.sleep(0.1)
    run = subprocess.run([load, "--socket", socket, "--mode", mode, "--json", "--floor-duration", "0.05"] + args,
                         capture_output=True, text=True, timeout=900)
    server.terminate()
    server.wait(timeout=120)
    if run.returncode != 0:
        sys.exit(f"its-load failed: {run.stderr}")
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True, text=True).stdout
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input=annotated, capture_output=True, text=True).stdout
    counts = {}
    total = 0
    for line in demangled.splitlines():
        match = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not match:
            continue
        value = int(match.group(1).replace(",", ""))
        name = match.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = value
            continue
        name = re.sub(r"^[^:]*:", "", name, count=1).rsplit(" [", 1)[0]
        counts[name] = max(counts.get(name, 0), value)
    return json.loads(run.stdout), total, counts


def main():
    bin_dir, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    directory = tempfile.mkdtemp(prefix="itsd-callgrind.")
    try:
        itsd = os.path.join(directory, "itsd")
        subprocess.run(["objcopy", "--strip-debug", os.path.join(bin_dir, "itsd"), itsd], check=True)
        load = os.path.join(bin_dir, "its-load")
        base_args = [a for a in args]
        if "-i" in base_args:
            base_args[base_args.index("-i") + 1] = "1"
        else:
            base_args += ["-i", "1"]
        _, fixed, fixed_counts = profile(itsd, load, mode, base_args, directory, "fixed")
        result, total, counts = profile(itsd, load, mode, args, directory, "load")
        msis = result["msis"] - 0
        print(f"mode {mode} {' '.join(args)}: {result['msis']} MSIs, {result['acks_sent']} ACKs, lost {result['lost']}")
        print(f"itsd instructions per MSI: {(total - fixed) / msis:,.0f} (total {total:,}, fixed cost {fixed:,})")
        print("inclusive instructions per MSI:")
        for name in FUNCTIONS:
            if name in counts:
                print(f"  {(counts[name] - fixed_counts.get(name, 0)) / msis:10,.0f}  {name}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
