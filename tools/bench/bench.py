#!/usr/bin/env python3
"""`make bench`: runs the standard suite (its-bench's micro benchmarks and its-load's modes, each
three times), takes the median of every figure, and writes BENCHMARKS.md, docs/bench/results.json
and the PNG plots in docs/bench/ (drawn with gnuplot).

Usage: bench.py BIN_DIR REPO_DIR
       bench.py --from-results REPO_DIR   (rewrites BENCHMARKS.md and the plots from results.json)
"""
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

REPEATS = 3
LOAD_COMMON = ["--duration", "1.5", "--floor-duration", "0.5", "--lanes", "2", "--json"]

# name -> (its-load arguments, what it shows)
LOAD_SUITE = [
    ("pipelined", ["--mode", "pipelined"], "single-MSI INJECT frames with NO_REPLY, 1 connection, -v1 -d1 -e16"),
    ("batch64", ["--mode", "batch", "--batch", "64"], "INJECT_BATCH of 64 with NO_REPLY, 1 connection, -v1 -d1 -e16"),
    ("pipelined-16x16x16", ["--mode", "pipelined", "-v", "16", "-d", "16", "-e", "16", "--connections", "16"],
     "pipelined, -v16 -d16 -e16, 16 connections"),
    ("translater", ["--mode", "translater"], "MMIO_WRITE to GITS_TRANSLATER with NO_REPLY, 1 connection"),
    ("rtt", ["--mode", "rtt", "--acknowledge", "slot"],
     "INJECT with a reply, one MSI outstanding until it is acknowledged; the vCPU's consumer waits on its notify "
     "eventfd and takes the LPI from its armed acknowledge slot (SET_ACK_SLOT), with ACK only when the slot says more"),
    ("irqfd", ["--mode", "irqfd", "--acknowledge", "slot"],
     "bound eventfds, one MSI outstanding until it is acknowledged; consumers as in rtt"),
    ("rtt-wait", ["--mode", "rtt", "--acknowledge", "wait"], "as rtt, but the vCPU's consumer waits in WAIT_ACK"),
    ("irqfd-wait", ["--mode", "irqfd", "--acknowledge", "wait"], "as irqfd, but the vCPU's consumer waits in WAIT_ACK"),
    ("rtt-ack", ["--mode", "rtt", "--acknowledge", "notify"],
     "as rtt, but consumers wait on the notify eventfd and then ACK until 1023 (no acknowledge slot)"),
    ("irqfd-ack", ["--mode", "irqfd", "--acknowledge", "notify"], "as irqfd, with the consumers of rtt-ack"),
    ("rtt-busy", ["--mode", "rtt", "--acknowledge", "slot"],
     "rtt while a `nice -n 19` busy loop runs, so that no CPU of the machine idles (floor included)"),
    ("irqfd-busy", ["--mode", "irqfd", "--acknowledge", "slot"], "irqfd while the same busy loop runs"),
]
# Runs made while a niced busy loop keeps the machine's CPUs from idling.
BUSY = {"rtt-busy", "irqfd-busy"}
# Runs with a latency target: name -> (the largest p50 / floor p50 ratio, what the floor is).
LATENCY_TARGETS = [("rtt", 1.25, "ping-pong"), ("irqfd", 1.5, "eventfd relay")]
# The same ratios for the other consumers and on a busy machine, held against the same bounds.
LATENCY_OTHERS = [
    ("rtt-wait", 1.25, "ping-pong"), ("irqfd-wait", 1.5, "eventfd relay"),
    ("rtt-ack", 1.25, "ping-pong"), ("irqfd-ack", 1.5, "eventfd relay"),
    ("rtt-busy", 1.25, "ping-pong"), ("irqfd-busy", 1.5, "eventfd relay"),
]
# Throughput against mapped LPIs: batch mode, 4 vCPUs, (devices, events).
SCALING = [(1, 16), (16, 16), (64, 64), (256, 256), (1024, 1024)]
BENCHES = ["lpi-map", "wire", "translate", "cmdq"]


def run_json(command):
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
    print(f"  {' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(command))}  "
          f"({time.monotonic() - started:.1f} s)", flush=True)
    return json.loads(result.stdout)


def median_of(runs):
    """The median of each numeric field (element by element for lists, key by key for objects)."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: median_of([run.get(key) for run in runs]) for key in first}
    if isinstance(first, list):
        return [median_of([run[index] for run in runs]) for index in range(len(first))]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    values = [value for value in runs if isinstance(value, (int, float))]
    return statistics.median(values) if values else None


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.splitlines()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "swift": swift[0] if swift else "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_start": os.getloadavg()[0],
        "commit": commit,
    }


def fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.{digits}f} M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def plain(value):
    """Microseconds and the like: no M suffix."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def verdict(ok):
    return "met" if ok else "**missed**"


def plots(results, out_dir):
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        sys.exit("gnuplot is missing (make bench installs gnuplot-nox)")
    data = os.path.join(out_dir, "throughput-vs-lpis.dat")
    with open(data, "w") as f:
        f.write("# lpis median_msis_per_s min max floor_msgs_per_s\n")
        for entry in results["scaling"]:
            rates = [run["msis_per_s"] for run in entry["runs"]]
            f.write(f"{entry['lpis']} {statistics.median(rates) / 1e6} {min(rates) / 1e6} {max(rates) / 1e6} "
                    f"{entry['median']['floor_msgs_per_s'] / 1e6}\n")
    latency = os.path.join(out_dir, "latency.dat")
    labels = ["50", "75", "90", "95", "99", "99.9", "99.99", "max"]
    modes = [name for name, _, _ in LOAD_SUITE]
    with open(latency, "w") as f:
        f.write("# index percentile " + " ".join(modes) + "\n")
        for index, label in enumerate(labels):
            row = [str(index), label]
            for name in modes:
                value = results["load"][name]["median"]["latency_us"].get(label)
                row.append("NaN" if value is None else str(max(value, 0.01)))
            f.write(" ".join(row) + "\n")
    script = f"""
set terminal pngcairo noenhanced size 900,520 font ",10"
set output "{os.path.join(out_dir, 'throughput-vs-lpis.png')}"
set title "itsd: INJECT_BATCH (64) throughput against mapped LPIs (4 vCPUs, median of {REPEATS}, min-max bars)"
set logscale x 2
set xtics ("16" 16, "256" 256, "4 Ki" 4096, "64 Ki" 65536, "1 Mi" 1048576)
set xlabel "mapped LPIs"
set ylabel "million MSIs per second"
set yrange [0:*]
set y2range [0:*]
set y2tics
set ytics nomirror
set y2label "floor, million MSIs per second"
set grid
set key top right
plot "{data}" using 1:2:3:4 with yerrorlines lw 2 title "itsd, batch 64, 1 connection", \\
     "{data}" using 1:5 with linespoints dt 2 axes x1y2 title "floor: the same bytes through a Unix socket (right axis)"
set output "{os.path.join(out_dir, 'latency.png')}"
set title "itsd: inject -> acknowledge latency by percentile (median of {REPEATS} runs)"
unset logscale x
set logscale y 10
set format y "%g"
set xlabel "percentile"
set ylabel "microseconds"
set yrange [*:*]
unset y2tics
unset y2label
set ytics mirror
set xtics ({", ".join(f'"{label}" {index}' for index, label in enumerate(labels))})
set key outside right
plot """ + ", \\\n     ".join(f'"{latency}" using 1:{column + 3} with linespoints lw 2 title "{name}"'
                             for column, name in enumerate(modes)) + "\n"
    subprocess.run([gnuplot], input=script, text=True, check=True)
    os.remove(data)
    os.remove(latency)


def write_markdown(results, path):
    m = results["machine"]
    load = {name: results["load"][name]["median"] for name, _, _ in LOAD_SUITE}
    lost = sum(run["lost"] for entry in results["load"].values() for run in entry["runs"]) + \
        sum(run["lost"] for entry in results["scaling"] for run in entry["runs"])
    big = results["scaling"][-1]["median"]
    out = []
    w = out.append
    w("# Benchmarks\n")
    w("Generated by `make bench` (tools/bench/bench.py); do not edit by hand. Every figure is the median of "
      f"{REPEATS} runs of a release build on the machine below, which is shared with other work: the load "
      "average when the suite started is given so that a noisy run can be told from a slow one. Floors are "
      "measured by its-load itself in the same run, on the same machine, a moment after the itsd run.\n")
    w("## Machine\n")
    w("| | |\n| --- | --- |")
    for key in ["cpu", "cores", "kernel", "swift", "date", "commit", "load_average_at_start"]:
        w(f"| {key.replace('_', ' ')} | {m[key]} |")
    w("")
    w("## Targets\n")
    w("| target | figure | value | target | verdict |\n| --- | --- | --- | --- | --- |")
    p, b, s = load["pipelined"], load["batch64"], load["pipelined-16x16x16"]
    w(f"| pipelined, 1 connection | MSIs/s | {fmt(p['msis_per_s'])} | ≥ 8 M | {verdict(p['msis_per_s'] >= 8e6)} |")
    w(f"| batch 64, 1 connection | MSIs/s | {fmt(b['msis_per_s'])} | ≥ 15 M | {verdict(b['msis_per_s'] >= 15e6)} |")
    w(f"| batch 64, 1 connection | server CPU ns/MSI | {fmt(b['server_cpu_ns_per_msi'])} | ≤ 60 | "
      f"{verdict(b['server_cpu_ns_per_msi'] <= 60)} |")
    w(f"| -v16 -d16 -e16, 16 connections | MSIs/s | {fmt(s['msis_per_s'])} | ≥ 8 M | {verdict(s['msis_per_s'] >= 8e6)} |")
    for name, limit, floor in LATENCY_TARGETS:
        r = load[name]
        ratio = r["p50_us"] / r["floor_p50_us"]
        w(f"| {name}: inject -> ack p50 / {floor} floor p50 | µs | {plain(r['p50_us'])} / {plain(r['floor_p50_us'])} = "
          f"{ratio:.2f}× | ≤ {limit}× | {verdict(ratio <= limit)} |")
    w(f"| 1,048,576 mapped LPIs | server anonymous RSS growth per LPI | {fmt(big['rss_growth_per_lpi_bytes'])} B | "
      f"≤ 64 B | {verdict(big['rss_growth_per_lpi_bytes'] <= 64)} |")
    w(f"| every run | lost LPIs | {lost} | 0 | {verdict(lost == 0)} |")
    w("")
    w("The latency targets are for its-load's default consumers (rtt and irqfd above). The same ratios for the "
      "other consumers, and on a machine whose CPUs never idle, against the same bounds:\n")
    w("| run | inject -> ack p50 / floor p50 | bound | within |\n| --- | --- | --- | --- |")
    for name, limit, floor in LATENCY_OTHERS:
        r = load[name]
        ratio = r["p50_us"] / r["floor_p50_us"]
        w(f"| {name} | {plain(r['p50_us'])} / {plain(r['floor_p50_us'])} µs ({floor}) = {ratio:.2f}× | ≤ {limit}× | "
          f"{'yes' if ratio <= limit else '**no**'} |")
    w("")
    w("Inject -> acknowledge runs from the injector's clock before it sends the MSI (INJECT frame or eventfd "
      "write) to the consumer's clock when the acknowledge names the LPI. The rtt floor is a ping-pong of the "
      "same frame through an epoll loop; the irqfd floor, an eventfd relayed by an epoll thread to a second "
      "eventfd. A consumer with an acknowledge slot (rtt, irqfd) wakes on the notify eventfd and finds the LPI "
      "already acknowledged in the slot; one waiting in WAIT_ACK (rtt-wait, irqfd-wait) is answered by the "
      "reply. Either way the path is one hop in and one hop out, as in the floors. A consumer woken by the "
      "notify eventfd without a slot (rtt-ack, irqfd-ack) must then ask with ACK, a round trip more than the "
      "floors. On this virtual machine a wakeup of an idle CPU costs some 20 µs more than one of a busy CPU, "
      "so both floors and itsd's latencies depend on whether the machine's CPUs idle: the -busy runs keep "
      "them busy with a niced loop.\n")
    rn, irn = load["rtt-ack"], load["irqfd-ack"]
    w("A consumer that ACKs after its wakeup has the floor of its wakeup path plus a ping-pong floor for the "
      "ACK round trip; against their sum (the ping-pong floor measured in the rtt-ack run):\n")
    w("| run | inject -> ack p50 | floors it contains | ratio |\n| --- | --- | --- | --- |")
    for name, r, first in [("rtt-ack", rn, rn["floor_p50_us"]), ("irqfd-ack", irn, irn["floor_p50_us"])]:
        bound = first + rn["floor_p50_us"]
        w(f"| {name} | {plain(r['p50_us'])} µs | {plain(first)} + {plain(rn['floor_p50_us'])} = {plain(bound)} µs | "
          f"{r['p50_us'] / bound:.2f}× |")
    w("")
    w("## its-load\n")
    w("Command: `its-load " + " ".join(LOAD_COMMON) + " ARGS` with the itsd it starts from the same build "
      "directory. MSIs/s counts MSIs applied at their redistributors (each injector ends with an HPPI per vCPU, "
      "which each lane answers after the MSIs queued before it), over the time from the start to that answer. "
      "`p50`… are inject -> acknowledge; `path p50` is the figure compared with a latency floor. The floor of "
      "pipelined, batch and translater streams the same bytes through a Unix socket to an epoll reader that "
      "drops them, and is counted in MSIs.\n")
    w("| run | ARGS | MSIs/s | floor msgs/s | ratio | p50 µs | p99 µs | p99.9 µs | path p50 µs | floor p50 µs "
      "| server CPU ns/MSI | its-load CPU ns/MSI | server RSS | lost |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, args, _ in LOAD_SUITE:
        r = load[name]
        w(f"| {name} | `{' '.join(args)}` | {fmt(r['msis_per_s'])} | {fmt(r['floor_msgs_per_s'])} | "
          f"{r['msis_per_s'] / r['floor_msgs_per_s']:.3f} | {plain(r['p50_us'])} | {plain(r['p99_us'])} | "
          f"{plain(r['p999_us'])} | {plain(r['path_p50_us'])} | {plain(r['floor_p50_us'])} | "
          f"{fmt(r['server_cpu_ns_per_msi'])} | {fmt(r.get('client_cpu_ns_per_msi'))} | "
          f"{fmt(r['server_rss_bytes'] / 2**20)} MiB | {r['lost']} |")
    w("")
    for name, _, description in LOAD_SUITE:
        w(f"- **{name}**: {description}.")
    w("")
    w("### Throughput against mapped LPIs\n")
    w("Command: `its-load --mode batch -v 4 -d D -e E " + " ".join(LOAD_COMMON) + "`.\n")
    w("| LPIs | -d | -e | MSIs/s | server CPU ns/MSI | setup s | anonymous RSS growth | per LPI | lost |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for entry in results["scaling"]:
        r = entry["median"]
        w(f"| {entry['lpis']:,} | {r['devices']} | {r['events']} | {fmt(r['msis_per_s'])} | "
          f"{fmt(r['server_cpu_ns_per_msi'])} | {fmt(r['setup_s'])} | {fmt(r['rss_anon_growth_bytes'] / 2**20)} MiB | "
          f"{fmt(r['rss_growth_per_lpi_bytes'])} B | {r['lost']} |")
    w("")
    w("![throughput against mapped LPIs](docs/bench/throughput-vs-lpis.png)\n")
    w("![latency by percentile](docs/bench/latency.png)\n")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profile.md")
    if os.path.exists(notes):
        with open(notes) as f:
            w(f.read())
    w("## its-bench\n")
    w("Command: `its-bench NAME --json`; the model and the codec without sockets or threads.\n")
    for name in BENCHES:
        w(f"### {name}\n")
        w("| figure | median |\n| --- | --- |")
        for key, value in results["bench"][name]["median"].items():
            if isinstance(value, list):
                value = ", ".join(fmt(v) for v in value)
            elif isinstance(value, dict):
                value = ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
            else:
                value = fmt(value) if isinstance(value, (int, float)) else value
            w(f"| {key} | {value} |")
        w("")
    w("## Reproduce\n")
    w("```\nmake bench\n```\n")
    w("It builds itsd, its-load and its-bench in release, installs gnuplot-nox if it is missing, runs "
      "everything above and rewrites this file, docs/bench/results.json (every run) and the plots.\n")
    with open(path, "w") as f:
        f.write("\n".join(out))


def main():
    bin_dir, repo = sys.argv[1], sys.argv[2]
    out_dir = os.path.join(repo, "docs", "bench")
    os.makedirs(out_dir, exist_ok=True)
    if bin_dir == "--from-results":
        with open(os.path.join(out_dir, "results.json")) as f:
            results = json.load(f)
        plots(results, out_dir)
        write_markdown(results, os.path.join(repo, "BENCHMARKS.md"))
        return
    started = time.monotonic()
    results = {"machine": machine(), "load": {}, "scaling": [], "bench": {}}
    load = os.path.join(bin_dir, "its-load")
    print("its-load modes")
    for name, args, _ in LOAD_SUITE:
        busy = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"]) if name in BUSY else None
        try:
            runs = [run_json([load] + args + LOAD_COMMON) for _ in range(REPEATS)]
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        results["load"][name] = {"args": args, "runs": runs, "median": median_of(runs)}
    print("its-load: throughput against mapped LPIs")
    for devices, events in SCALING:
        args = ["--mode", "batch", "-v", "4", "-d", str(devices), "-e", str(events)]
        runs = [run_json([load] + args + LOAD_COMMON) for _ in range(REPEATS)]
        results["scaling"].append({"lpis": devices * events, "args": args, "runs": runs, "median": median_of(runs)})
    print("its-bench")
    for name in BENCHES:
        runs = [run_json([os.path.join(bin_dir, "its-bench"), name, "--json"]) for _ in range(REPEATS)]
        results["bench"][name] = {"runs": runs, "median": median_of(runs)}
    results["suite_seconds"] = round(time.monotonic() - started, 1)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plots(results, out_dir)
    write_markdown(results, os.path.join(repo, "BENCHMARKS.md"))
    print(f"suite: {results['suite_seconds']} s; wrote BENCHMARKS.md and docs/bench/")


if __name__ == "__main__":
    main()
