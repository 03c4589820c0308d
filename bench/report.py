#!/usr/bin/env python3
"""Turns the raw results of scripts/bench into results.md, results.csv and chart.svg, and puts
the table into bench/README.md between its results markers. Standard library only; the chart
is drawn by gnuplot (gnuplot-nox, svg terminal).

    report.py --csv target/bench/results.csv --run target/bench/run.env --out bench/results \
        [--readme bench/README.md]
"""

import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys

ROWS = ["return200", "inline", "pool", "lua", "proxy", "uwsgi"]
LABELS = {
    "return200": "nginx `return 200`",
    "inline": "ngx-gateway inline",
    "pool": "ngx-gateway thread pool",
    "lua": "lua-nginx-module",
    "proxy": "proxy_pass → axum",
    "uwsgi": "uwsgi_pass → uWSGI (Python)",
}
PLAIN_LABELS = {
    "return200": "nginx return 200",
    "inline": "ngx-gateway inline",
    "pool": "ngx-gateway thread pool",
    "lua": "lua-nginx-module",
    "proxy": "proxy_pass to axum",
    "uwsgi": "uwsgi_pass to uWSGI",
}
WORKLOADS = ["hello", "json", "template", "echo"]
PEERS = ["lua", "proxy", "uwsgi"]
MARK_BEGIN = "<!-- bench-results:begin -->"
MARK_END = "<!-- bench-results:end -->"


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def summarize(path):
    """(row, workload) -> dict of medians, rounds and error counts."""
    runs = {}
    with open(path) as f:
        for record in csv.DictReader(f):
            runs.setdefault((record["row"], record["workload"]), []).append(record)
    summary = {}
    for key, records in runs.items():
        errors = {
            name: sum(int(r[name]) for r in records)
            for name in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
        }
        summary[key] = {
            "rps": statistics.median(float(r["rps"]) for r in records),
            "p99": statistics.median(float(r["p99_ms"]) for r in records),
            "p50": statistics.median(float(r["p50_ms"]) for r in records),
            "worker_cpu": statistics.median(float(r["worker_cpu_us_per_request"]) for r in records),
            "backend_cpu": statistics.median(
                float(r["backend_cpu_us_per_request"]) for r in records
            ),
            "cpu": statistics.median(
                float(r["worker_cpu_us_per_request"]) + float(r["backend_cpu_us_per_request"])
                for r in records
            ),
            "stall": statistics.mean(float(r["cpu_stall_pct"]) for r in records),
            "rounds": [float(r["rps"]) for r in records],
            "requests": sum(int(r["requests"]) for r in records),
            "errors": errors,
            "error_total": sum(errors.values()),
        }
    return summary


def ratio(summary, row, workload, peer):
    mine = summary.get((row, workload))
    theirs = summary.get((peer, workload))
    if not mine or not theirs or theirs["rps"] <= 0:
        return None
    return mine["rps"] / theirs["rps"]


def cpu_ratio(summary, row, workload, peer):
    """Requests per CPU second of `row` over `peer`'s: the ratio with contention taken out."""
    mine = summary.get((row, workload))
    theirs = summary.get((peer, workload))
    if not mine or not theirs or mine["cpu"] <= 0:
        return None
    return theirs["cpu"] / mine["cpu"]


def fmt_ratio(value, digits=2):
    """Rounded down, so that a ratio just under a target never shows as reaching it."""
    if value is None:
        return "—"
    scale = 10**digits
    return f"{math.floor(value * scale) / scale:.{digits}f}x"


def fmt_rps(value):
    return f"{value:,.0f}"


def fmt_ms(value):
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def targets(summary, run):
    """(description, measured text, pass) for each target of the issue."""
    out = []

    def check(text, row, workload, peer, at_least):
        value = ratio(summary, row, workload, peer)
        passed = value is not None and value >= at_least
        out.append(
            (text, fmt_ratio(value, 3), passed, fmt_ratio(cpu_ratio(summary, row, workload, peer), 3))
        )

    check("hello: inline ≥ 0.90x nginx `return 200`", "inline", "hello", "return200", 0.90)
    for workload in ("json", "template"):
        check(f"{workload}: inline ≥ 1.2x lua-nginx-module", "inline", workload, "lua", 1.2)
        check(f"{workload}: inline ≥ 2x proxy_pass", "inline", workload, "proxy", 2.0)
    check("echo: inline ≥ 1.0x lua-nginx-module", "inline", "echo", "lua", 1.0)
    check("hello: thread pool ≥ 0.6x inline", "pool", "hello", "inline", 0.6)
    start, end = int(run["rss_start_kib"]), int(run["rss_end_kib"])
    growth = (end - start) / start * 100 if start else float("inf")
    out.append(
        (
            f"worker RSS flat within 5% over {int(run['rss_requests']):,} inline hello requests",
            f"{start / 1024:.1f} → {end / 1024:.1f} MiB ({growth:+.2f}%)",
            growth <= 5.0,
            "",
        )
    )
    return out


def markdown(summary, run):
    stall = statistics.mean(s["stall"] for s in summary.values()) if summary else 0.0
    lines = []
    add = lines.append
    quick = run.get("quick") == "true"
    add(f"Run of {run['date']} (commit {run['commit']}), {run['rounds']} round(s) of "
        f"{run['seconds']} s per row and workload, interleaved, after a {run['warmup']} s warm-up "
        f"of each; wrk -t1 -c{run['connections']} on 127.0.0.1; the whole run took "
        f"{int(run.get('duration_s', 0)) // 60} min {int(run.get('duration_s', 0)) % 60} s."
        + (" **Quick run: not a result.**" if quick else ""))
    add("")
    add(f"**Machine**: {run['nproc']} CPUs, {run['cpu']}, {run['memory']}, {run['kernel']}; "
        f"{run['nginx']} (Debian) with worker_processes 1; lua-nginx-module {run['lua_module']} "
        f"(LuaJIT {run['luajit']}, lua-cjson {run['lua_cjson']}); uWSGI {run['uwsgi']} with "
        f"Python {run['python']} and Jinja2 {run['jinja2']}; rustc {run['rustc']}; wrk {run['wrk']}. "
        f"Load average {run['load_before']} before the run, {run['load_after']} after; some task "
        f"waited for a CPU {stall:.0f}% of the time during the rounds (PSI; wrk, nginx and a "
        f"backend already make three busy processes on {run['nproc']} CPUs for the proxy rows, "
        f"anything above that is other work on the machine).")
    add("")
    add("Medians of the rounds. Ratios are this row's median req/s over the named row's. "
        "Server CPU/req is the CPU time of the nginx worker (all its threads) per request, and "
        "for the proxy_pass and uwsgi_pass rows the worker's + the backend's: unlike req/s it "
        "hardly depends on what else the machine runs.")
    add("")
    for workload in WORKLOADS:
        add(f"### {workload}")
        add("")
        header = "| row | req/s | p99 | server CPU/req | rounds (req/s) |"
        rule = "|---|---:|---:|---:|---|"
        if workload == "hello":
            header += " vs return 200 |"
            rule += "---:|"
        for peer in PEERS:
            header += f" vs {peer} |"
            rule += "---:|"
        header += " errors |"
        rule += "---:|"
        add(header)
        add(rule)
        for row in ROWS:
            s = summary.get((row, workload))
            if not s:
                continue
            cells = [
                LABELS[row],
                fmt_rps(s["rps"]),
                fmt_ms(s["p99"]),
                (f"{s['worker_cpu']:.1f} + {s['backend_cpu']:.1f} µs" if row in ("proxy", "uwsgi")
                 else f"{s['cpu']:.1f} µs"),
                " / ".join(fmt_rps(v) for v in s["rounds"]),
            ]
            if workload == "hello":
                cells.append(fmt_ratio(ratio(summary, row, workload, "return200")))
            for peer in PEERS:
                cells.append("" if peer == row else fmt_ratio(ratio(summary, row, workload, peer)))
            cells.append("0" if s["error_total"] == 0 else f"**{s['error_total']}** ⚠")
            add("| " + " | ".join(cells) + " |")
        add("")
    add("### Targets")
    add("")
    add("The targets are on req/s; the last column gives the same ratio on requests per CPU "
        "second of the server side (nginx worker plus backend), which other load on the "
        "machine does not move.")
    add("")
    add("| target | measured | | per CPU time |")
    add("|---|---:|---|---:|")
    for text, measured, passed, by_cpu in targets(summary, run):
        add(f"| {text} | {measured} | {'PASS' if passed else '**FAIL**'} | {by_cpu} |")
    add("")
    rss_final = int(run["rss_final_kib"])
    add(f"Worker RSS: {int(run['rss_start_kib']) / 1024:.1f} MiB after the warm-up, "
        f"{int(run['rss_end_kib']) / 1024:.1f} MiB after {int(run['rss_requests']):,} inline hello "
        f"requests, {rss_final / 1024:.1f} MiB at the end of the run (the same worker serves every "
        f"nginx row, Lua's heap included).")
    add("")
    flagged = [(r, w, s) for (r, w), s in summary.items() if s["error_total"]]
    if flagged:
        add("**Errors** (socket errors and non-2xx responses, all rounds):")
        add("")
        for row, workload, s in sorted(flagged):
            detail = ", ".join(f"{k} {v}" for k, v in s["errors"].items() if v)
            add(f"- {LABELS[row]}, {workload}: {detail}")
        add("")
    else:
        add("No socket errors and no non-2xx responses in any round.")
        add("")
    add("Notes: every row's response bytes (status, Content-Type, Content-Length body) were "
        "checked equal to `bench/expected/` before timing. The thread-pool row uses "
        f"`thread_pool bench_gateway threads={run['pool_threads']}`. uWSGI runs one process with "
        "one thread, to match nginx's one worker; nginx's uwsgi protocol has no keep-alive, so "
        "that row opens a connection per request. The Lua row builds the template page by hand "
        "(Debian packages no Lua template engine) and writes each JSON object's keys in the "
        "fixed order with cjson encoding the values (cjson's own key order is the hash order). "
        "The proxy_pass upstream (axum 0.8, minijinja, one tokio current-thread runtime) and "
        "uWSGI share the machine's CPUs with nginx and wrk, as they would on one host.")
    return "\n".join(lines) + "\n"


def chart(summary, out_dir, run):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report: gnuplot not found, no chart", file=sys.stderr)
        return False
    data = os.path.join(out_dir, ".chart.dat")
    with open(data, "w") as f:
        f.write("workload " + " ".join(f'"{PLAIN_LABELS[r]}"' for r in ROWS) + "\n")
        for workload in WORKLOADS:
            values = []
            for row in ROWS:
                s = summary.get((row, workload))
                values.append(f"{s['rps']:.0f}" if s else "-")
            f.write(f"{workload} " + " ".join(values) + "\n")
    colors = ["#7f7f7f", "#1f77b4", "#6baed6", "#2ca02c", "#ff7f0e", "#d62728"]
    plots = ", ".join(
        f"'{data}' using {i + 2}:xtic(1) title columnheader({i + 2}) lc rgb '{colors[i]}'"
        for i in range(len(ROWS))
    )
    script = f"""
set terminal svg size 960,480 dynamic enhanced font 'sans,12' background rgb 'white'
set output '{os.path.join(out_dir, "chart.svg")}'
set title "Median requests/s, one nginx worker, wrk -t1 -c{run['connections']} ({run['nproc']} CPUs, {run['date']})" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set datafile missing '-'
set key top right noenhanced
set ylabel 'req/s'
set yrange [0:*]
set grid ytics
set format y '%.0f'
plot {plots}
"""
    png = os.environ.get("BENCH_CHART_PNG")
    if png:
        # The same chart as a PNG, to look at it where no SVG viewer is at hand.
        script += script.replace("set terminal svg size 960,480 dynamic", "set terminal pngcairo size 960,480").replace(
            os.path.join(out_dir, "chart.svg"), png)
    result = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    os.remove(data)
    if result.returncode != 0:
        print(f"report: gnuplot failed: {result.stderr}", file=sys.stderr)
        return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--readme")
    args = parser.parse_args()

    run = read_env(args.run)
    summary = summarize(args.csv)
    os.makedirs(args.out, exist_ok=True)
    if os.path.abspath(args.csv) != os.path.abspath(os.path.join(args.out, "results.csv")):
        shutil.copyfile(args.csv, os.path.join(args.out, "results.csv"))
    body = markdown(summary, run)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("# ngx-gateway benchmark results\n\n")
        f.write("Written by `scripts/bench`; raw numbers in `results.csv`, chart in `chart.svg`.\n\n")
        f.write(body)
    drawn = chart(summary, args.out, run)

    if args.readme:
        with open(args.readme) as f:
            readme = f.read()
        if MARK_BEGIN in readme and MARK_END in readme:
            before = readme.split(MARK_BEGIN)[0]
            after = readme.split(MARK_END, 1)[1]
            section = body.replace("### ", "#### ")
            if drawn:
                section = "![Median req/s per row and workload](results/chart.svg)\n\n" + section
            readme = f"{before}{MARK_BEGIN}\n{section}{MARK_END}{after}"
            with open(args.readme, "w") as f:
                f.write(readme)
        else:
            print(f"report: no results markers in {args.readme}, left as is", file=sys.stderr)
    print(body)


if __name__ == "__main__":
    main()
