#!/usr/bin/env python3
"""Turns the raw results of scripts/bench into results.md, results.csv and chart.svg, puts the
whole report into bench/README.md and a summary into README.md's Performance section, each
between its markers. Standard library only; the chart is drawn by gnuplot (gnuplot-nox, svg
terminal).

    report.py --csv target/bench/results.csv --run target/bench/run.env --out bench/results \
        [--readme bench/README.md] [--summary README.md]
"""

import argparse
import csv
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

ROWS = [
    "return200", "inline", "pool", "tower", "lua", "lua-cosmo", "proxy", "uwsgi", "wsgi",
    "flask", "flask-uwsgi", "flask-gunicorn",
]
LABELS = {
    "return200": "nginx `return 200`",
    "inline": "ngx-gateway inline",
    "pool": "ngx-gateway thread pool",
    "tower": "ngx-gateway tower (the axum Router in-process)",
    "lua": "lua-nginx-module (page built by hand)",
    "lua-cosmo": "lua-nginx-module + lua-cosmo template",
    "proxy": "proxy_pass → axum (the same Router)",
    "uwsgi": "uwsgi_pass → uWSGI, wsgi_app.py",
    "wsgi": "ngx-gateway WSGI, wsgi_app.py in-process",
    "flask": "ngx-gateway WSGI, Flask in-process",
    "flask-uwsgi": "uwsgi_pass → uWSGI, Flask",
    "flask-gunicorn": "proxy_pass → Gunicorn (sync), Flask",
}
PLAIN_LABELS = {
    "return200": "nginx return 200",
    "inline": "ngx-gateway inline",
    "pool": "ngx-gateway thread pool",
    "tower": "ngx-gateway tower",
    "lua": "lua-nginx-module",
    "lua-cosmo": "lua + lua-cosmo",
    "proxy": "proxy_pass to axum",
    "uwsgi": "uwsgi_pass to uWSGI",
    "wsgi": "ngx-gateway WSGI",
    "flask": "ngx-gateway Flask",
    "flask-uwsgi": "uWSGI Flask",
    "flask-gunicorn": "Gunicorn Flask",
}
# What each row serves (as scripts/bench): a row not built shows in these tables.
ROW_WORKLOADS = {
    "return200": ["hello"],
    "inline": ["hello", "json", "template", "echo"],
    "pool": ["hello", "json", "template", "echo"],
    "tower": ["hello", "json", "template"],
    "lua": ["hello", "json", "template", "echo"],
    "lua-cosmo": ["template"],
    "proxy": ["hello", "json", "template", "echo"],
    "uwsgi": ["hello", "json", "template", "echo"],
    "wsgi": ["hello", "json"],
    "flask": ["json", "template"],
    "flask-uwsgi": ["json", "template"],
    "flask-gunicorn": ["json", "template"],
}
BACKEND_ROWS = {"proxy", "uwsgi", "flask-uwsgi", "flask-gunicorn"}
WORKLOADS = ["hello", "json", "template", "echo"]
PEERS = ["inline", "lua", "proxy", "uwsgi"]
MIXED = [
    ("quick-alone", "quick requests, alone"),
    ("quick-mixed", "quick requests, with the slow ones"),
    ("slow-mixed", "slow requests"),
]
README_BEGIN = "<!-- bench-results:begin -->"
README_END = "<!-- bench-results:end -->"
SUMMARY_BEGIN = "<!-- bench-summary:begin -->"
SUMMARY_END = "<!-- bench-summary:end -->"


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def missing_rows(run):
    """row -> why it was not built."""
    missing = {}
    for item in run.get("missing", "").split(";"):
        if ":" in item:
            row, why = item.split(":", 1)
            missing[row] = why
    return missing


def summarize(path):
    """method -> (row, workload) -> dict of medians, rounds and error counts."""
    runs = {}
    with open(path) as f:
        for record in csv.DictReader(f):
            key = (record["row"], record["workload"])
            runs.setdefault(record["method"], {}).setdefault(key, []).append(record)
    summary = {}
    for method, pairs in runs.items():
        summary[method] = {}
        for key, records in pairs.items():
            errors = {
                name: sum(int(r[name]) for r in records)
                for name in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx")
            }

            def median(name, records=records):
                return statistics.median(float(r[name]) for r in records)

            summary[method][key] = {
                "rps": median("rps"),
                "p50": median("p50_ms"),
                "p99": median("p99_ms"),
                "p999": median("p999_ms"),
                "max": median("max_ms"),
                "worker_cpu": median("worker_cpu_us_per_request"),
                "backend_cpu": median("backend_cpu_us_per_request"),
                "cpu": statistics.median(
                    float(r["worker_cpu_us_per_request"]) + float(r["backend_cpu_us_per_request"])
                    for r in records
                ),
                "stall": statistics.mean(float(r["cpu_stall_pct"]) for r in records),
                "rounds": [float(r["rps"]) for r in records],
                "rounds_p999": [float(r["p999_ms"]) for r in records],
                "requests": sum(int(r["requests"]) for r in records),
                "errors": errors,
                "error_total": sum(errors.values()),
            }
    return summary


def ratio(pairs, row, workload, peer):
    mine = pairs.get((row, workload))
    theirs = pairs.get((peer, workload))
    if not mine or not theirs or theirs["rps"] <= 0:
        return None
    return mine["rps"] / theirs["rps"]


def cpu_ratio(pairs, row, workload, peer):
    """Requests per CPU second of `row` over `peer`'s, from the measured CPU time."""
    mine = pairs.get((row, workload))
    theirs = pairs.get((peer, workload))
    if not mine or not theirs or mine["cpu"] <= 0:
        return None
    return theirs["cpu"] / mine["cpu"]


def rounds_text(count):
    return "one round" if int(count) == 1 else f"medians of {count} rounds"


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


def rss_rows(run):
    rows = []
    for row in run.get("rss_rows", "").split():
        start = int(run[f"rss_{row}_start_kib"])
        end = int(run[f"rss_{row}_end_kib"])
        growth = (end - start) / start * 100 if start else float("inf")
        rows.append((row, start, end, growth, int(run[f"rss_{row}_requests"])))
    return rows


def mixed_ratio(pinned):
    alone = pinned.get(("pool", "quick-alone"))
    mixed = pinned.get(("pool", "quick-mixed"))
    if not alone or not mixed or alone["p999"] <= 0:
        return None
    return mixed["p999"] / alone["p999"]


def targets(summary, run):
    """(description, pinned ratio text, PASS/FAIL/—, unpinned ratio text, CPU-time ratio text)
    for each target of the benchmark issue, judged on the pinned medians."""
    pinned = summary.get("pinned", {})
    unpinned = summary.get("unpinned", {})
    missing = missing_rows(run)
    out = []

    def check(text, row, workload, peer, at_least):
        absent = [r for r in (row, peer) if r in missing]
        if absent:
            out.append((text, f"{', '.join(absent)} not built", "—", "", ""))
            return
        value = ratio(pinned, row, workload, peer)
        verdict = "—" if value is None else ("PASS" if value >= at_least else "**FAIL**")
        out.append((
            text,
            fmt_ratio(value, 3),
            verdict,
            fmt_ratio(ratio(unpinned, row, workload, peer), 3),
            fmt_ratio(cpu_ratio(pinned, row, workload, peer), 3),
        ))

    check("hello: inline ≥ 0.97x nginx `return 200`", "inline", "hello", "return200", 0.97)
    check("json: inline ≥ 2.5x lua-nginx-module", "inline", "json", "lua", 2.5)
    check("json: inline ≥ 2.5x proxy_pass", "inline", "json", "proxy", 2.5)
    check("template: inline ≥ 1.0x lua-nginx-module (built by hand)", "inline", "template", "lua", 1.0)
    check("template: inline ≥ 2x lua-cosmo", "inline", "template", "lua-cosmo", 2.0)
    check("template: inline ≥ 2.5x proxy_pass", "inline", "template", "proxy", 2.5)
    check("echo: inline ≥ 1.2x lua-nginx-module", "inline", "echo", "lua", 1.2)
    check("hello: thread pool ≥ 0.8x inline", "pool", "hello", "inline", 0.8)
    for workload in ("hello", "json"):
        check(f"{workload}: WSGI in-process ≥ 3x uWSGI (wsgi_app.py)", "wsgi", workload, "uwsgi", 3.0)
    for workload in ("json", "template"):
        check(f"{workload}: Flask in-process ≥ 1.8x uWSGI", "flask", workload, "flask-uwsgi", 1.8)
        check(f"{workload}: Flask in-process ≥ 1.8x Gunicorn", "flask", workload, "flask-gunicorn", 1.8)
    for workload in ("json", "template"):
        check(f"{workload}: tower ≥ 2x proxy_pass (the same Router)", "tower", workload, "proxy", 2.0)
    check("hello: tower ≥ 0.7x inline", "tower", "hello", "inline", 0.7)
    for row in ("inline", "tower", "wsgi"):
        if row in missing:
            out.append((f"worker RSS flat within 5% over {row} hello requests",
                        f"{row} not built", "—", "", ""))
    for row, start, end, growth, requests in rss_rows(run):
        out.append((
            f"worker RSS flat within 5% over {requests:,} {row} hello requests",
            f"{start / 1024:.1f} → {end / 1024:.1f} MiB ({growth:+.2f}%)",
            "PASS" if growth <= 5.0 else "**FAIL**",
            "",
            "",
        ))
    value = mixed_ratio(pinned)
    if value is not None:
        alone, mixed = pinned[("pool", "quick-alone")], pinned[("pool", "quick-mixed")]
        out.append((
            "mixed: the quick requests' p99.9 with 0.3% slow ones ≤ 2x alone",
            f"{fmt_ms(alone['p999'])} → {fmt_ms(mixed['p999'])} ({fmt_ratio(value)})",
            "PASS" if value <= 2.0 else "**FAIL**",
            "",
            "",
        ))
    return out


def workload_table(add, pairs, run, workload):
    missing = missing_rows(run)
    header = "| row | req/s | p99 | server CPU/req | rounds (req/s) |"
    rule = "|---|---:|---:|---:|---|"
    peers = (["return200"] if workload == "hello" else []) + PEERS
    for peer in peers:
        header += f" vs {'return 200' if peer == 'return200' else peer} |"
        rule += "---:|"
    header += " errors |"
    rule += "---:|"
    add(header)
    add(rule)
    for row in ROWS:
        if workload not in ROW_WORKLOADS[row]:
            continue
        s = pairs.get((row, workload))
        if not s:
            if row in missing:
                add(f"| {LABELS[row]} | not built | | | {missing[row]} |" + " |" * (len(peers) + 1))
            continue
        cells = [
            LABELS[row],
            fmt_rps(s["rps"]),
            fmt_ms(s["p99"]),
            (f"{s['worker_cpu']:.1f} + {s['backend_cpu']:.1f} µs" if row in BACKEND_ROWS
             else f"{s['cpu']:.1f} µs"),
            " / ".join(fmt_rps(v) for v in s["rounds"]),
        ]
        for peer in peers:
            cells.append("" if peer == row else fmt_ratio(ratio(pairs, row, workload, peer)))
        cells.append("0" if s["error_total"] == 0 else f"**{s['error_total']}** ⚠")
        add("| " + " | ".join(cells) + " |")
    add("")


def markdown(summary, run):
    pinned = summary.get("pinned", {})
    unpinned = summary.get("unpinned", {})
    lines = []
    add = lines.append
    quick = run.get("quick") == "true"
    duration = int(run.get("duration_s", 0))
    stall = statistics.mean(s["stall"] for s in pinned.values()) if pinned else 0.0
    add(f"Run of {run['date']} (commit {run['commit']}): {run['rounds']} pinned round(s) of "
        f"{run['seconds']} s per row and workload, interleaved, and {run['unpinned_rounds']} "
        f"unpinned of {run['unpinned_seconds']} s, after a {run['warmup']} s warm-up of each; "
        f"the whole run took "
        f"{duration // 60} min {duration % 60} s." + (" **Quick run: not a result.**" if quick else ""))
    add("")
    add(f"**Method: pinned.** Every serving stack gets one CPU and the load generator another "
        f"(`taskset`): nginx (`worker_processes 1`; its worker with every thread it makes: the "
        f"thread pool, the tower runtime, the WSGI bridge's) and, for the proxy_pass and "
        f"uwsgi_pass rows, the backend too, all on CPU {run['server_cpu']}; wrk -t1 "
        f"-c{run['connections']} (and bench/loadgen) on CPU {run['client_cpu']}. A row's req/s "
        f"is then what one CPU serves: the fair figure for a module whose claim is doing the "
        f"work without a second process. Server CPU/req is the CPU time of the nginx worker "
        f"(all its threads) per request, plus the backend's for the rows that have one.")
    add("")
    add(f"**Machine**: {run['nproc']} CPUs, {run['cpu']}, {run['memory']}, {run['kernel']}; "
        f"{run['nginx']} (Debian); lua-nginx-module {run['lua_module']} (LuaJIT {run['luajit']}, "
        f"lua-cjson {run['lua_cjson']}, lua-cosmo {run.get('lua_cosmo') or '—'}); uWSGI "
        f"{run['uwsgi']}, Gunicorn {run.get('gunicorn') or '—'}, Python {run['python']}, Flask "
        f"{run.get('flask') or '—'}, Jinja2 {run['jinja2']}; rustc {run['rustc']}; wrk "
        f"{run['wrk']}. Load average {run['load_before']} before the run, {run['load_after']} "
        f"after; some task waited for a CPU {stall:.0f}% of the time during the pinned rounds "
        f"(PSI).")
    add("")
    add(f"## Per CPU (pinned), {rounds_text(run['rounds'])}")
    add("")
    add("Ratios are this row's median req/s over the named row's.")
    add("")
    for workload in WORKLOADS:
        add(f"### {workload}")
        add("")
        workload_table(add, pinned, run, workload)

    add("### Targets")
    add("")
    add("Judged on the pinned medians. The other columns give the same ratio with nothing "
        "pinned, and on requests per CPU second of the server side as measured (nginx worker "
        "plus backend), which load elsewhere on the machine does not move.")
    add("")
    add("| target | pinned | | unpinned | per CPU time |")
    add("|---|---:|---|---:|---:|")
    for text, measured, verdict, loose, by_cpu in targets(summary, run):
        add(f"| {text} | {measured} | {verdict} | {loose} | {by_cpu} |")
    add("")

    if any(key[1] in dict(MIXED) for key in pinned):
        add("### mixed: a shared thread pool's tail latency")
        add("")
        add(f"The pool row's location (`gateway_thread_pool`, {run['pool_threads']} threads) at a "
            f"fixed {int(float(run['mixed_rate'])):,} requests/s from bench/loadgen: `/hello`, "
            f"and in the mixed runs 0.3% of them ({run['mixed_slow_rate']}/s) `/sleep?ms="
            f"{run['mixed_slow_ms']}`, a slow query that holds a pool thread "
            f"{run['mixed_slow_ms']} ms (on average "
            f"{float(run['mixed_slow_rate']) * int(run['mixed_slow_ms']) / 1000:.2f} of the "
            f"{run['pool_threads']} threads busy with one). {run['mixed_seconds']} s per run, "
            f"alone and mixed in each round. Latency per class, from when a request was due "
            f"(no coordinated omission). Medians of the rounds.")
        add("")
        add("| requests | count | p50 | p99 | p99.9 | max | rounds (p99.9) | errors |")
        add("|---|---:|---:|---:|---:|---:|---|---:|")
        for workload, text in MIXED:
            s = pinned.get(("pool", workload))
            if not s:
                continue
            add(f"| {text} | {s['requests']:,} | {fmt_ms(s['p50'])} | {fmt_ms(s['p99'])} | "
                f"{fmt_ms(s['p999'])} | {fmt_ms(s['max'])} | "
                f"{' / '.join(fmt_ms(v) for v in s['rounds_p999'])} | {s['error_total']} |")
        add("")

    rss = rss_rows(run)
    if rss:
        add("### Worker RSS")
        add("")
        add("| row | before | after | growth | hello requests |")
        add("|---|---:|---:|---:|---:|")
        for row, start, end, growth, requests in rss:
            add(f"| {LABELS[row]} | {start / 1024:.1f} MiB | {end / 1024:.1f} MiB | "
                f"{growth:+.2f}% | {requests:,} |")
        add("")
        add(f"One after the other, in the one worker that serves every nginx row; "
            f"{int(run['rss_final_kib']) / 1024:.1f} MiB at the end of the run (Lua's heap, "
            f"the Python interpreter and the tower runtime included).")
        add("")

    if unpinned:
        add(f"## What one {run['nproc']}-CPU box serves (nothing pinned), "
            f"{rounds_text(run['unpinned_rounds'])}")
        add("")
        add("The same servers and wrk with no CPU affinity: nginx's one worker, each backend "
            "and wrk share the machine's CPUs, so a row with a backend process uses more "
            "than one CPU for its req/s.")
        add("")
        add("| row | " + " | ".join(WORKLOADS) + " |")
        add("|---|" + "---:|" * len(WORKLOADS))
        for row in ROWS:
            if not any((row, w) in unpinned for w in WORKLOADS):
                continue
            cells = [fmt_rps(unpinned[(row, w)]["rps"]) if (row, w) in unpinned else ""
                     for w in WORKLOADS]
            add(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
        add("")

    flagged = [(m, r, w, s) for m, pairs in summary.items() for (r, w), s in pairs.items()
               if s["error_total"]]
    if flagged:
        add("**Errors** (socket errors and non-2xx responses, all rounds):")
        add("")
        for method, row, workload, s in sorted(flagged):
            detail = ", ".join(f"{k} {v}" for k, v in s["errors"].items() if v)
            add(f"- {method}, {LABELS[row]}, {workload}: {detail}")
        add("")
    else:
        add("No socket errors and no non-2xx responses in any round.")
        add("")
    add("Notes: every row's response bytes (status, Content-Type, Content-Length body) were "
        "checked equal to `bench/expected/` before timing. The thread-pool row uses "
        f"`thread_pool bench_gateway threads={run['pool_threads']}`, the tower row "
        f"`tokio_threads {run['tokio_threads']}`, the WSGI rows `threads "
        f"{run['wsgi_threads']}` (one CPU each). The proxy server and bench/tower are built "
        "with the same profile (Cargo's default release: opt-level 3, 16 codegen units, no LTO) "
        "from the same Router. Every Python row runs the same venv (bench/requirements.txt) on "
        "Debian's Python; uWSGI runs one process with one thread and Gunicorn one sync worker, "
        "to match nginx's one worker; nginx's uwsgi protocol has no keep-alive and Gunicorn's "
        "sync worker closes each connection, so those rows open a connection per request. The "
        "Lua row builds the template page by hand, the lua-cosmo row fills "
        "`bench/templates/page.cosmo` (values escaped per render, as autoescaping does); both "
        "write each JSON object's keys in the fixed order with cjson encoding the values.")
    return "\n".join(lines) + "\n"


def summary_section(summary, run):
    """The short form for README.md's Performance section."""
    pinned = summary.get("pinned", {})
    lines = []
    add = lines.append
    quick = run.get("quick") == "true"
    add(f"Pinned run of {run['date']} (commit {run['commit']}; {run['nproc']} CPUs, {run['cpu']}"
        f"; {run['nginx']}), {rounds_text(run['rounds'])}"
        + (". **Quick run: not a result.**" if quick else ":"))
    add("")
    add("| req/s per CPU | " + " | ".join(WORKLOADS) + " |")
    add("|---|" + "---:|" * len(WORKLOADS))
    missing = missing_rows(run)
    for row in ROWS:
        if row in missing:
            add(f"| {LABELS[row]} | not built |" + " |" * (len(WORKLOADS) - 1))
            continue
        if not any((row, w) in pinned for w in WORKLOADS):
            continue
        cells = [fmt_rps(pinned[(row, w)]["rps"]) if (row, w) in pinned else ""
                 for w in WORKLOADS]
        add(f"| {LABELS[row]} | " + " | ".join(cells) + " |")
    add("")
    results = targets(summary, run)
    met = [f"{text} ({measured})" for text, measured, verdict, _, _ in results if verdict == "PASS"]
    unmet = [f"{text} ({measured})" for text, measured, verdict, _, _ in results
             if verdict == "**FAIL**"]
    for title, items in (("Targets met (pinned)", met), ("Not met", unmet)):
        if items:
            add(f"{title}:")
            add("")
            for item in items:
                add(f"- {item}")
            add("")
    return "\n".join(lines)


def chart(summary, out_dir, run):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report: gnuplot not found, no chart", file=sys.stderr)
        return False
    pinned = summary.get("pinned", {})
    rows = [r for r in ROWS if any((r, w) in pinned for w in WORKLOADS)]
    data = os.path.join(out_dir, ".chart.dat")
    with open(data, "w") as f:
        f.write("workload " + " ".join(f'"{PLAIN_LABELS[r]}"' for r in rows) + "\n")
        for workload in WORKLOADS:
            values = []
            for row in rows:
                s = pinned.get((row, workload))
                values.append(f"{s['rps']:.0f}" if s else "-")
            f.write(f"{workload} " + " ".join(values) + "\n")
    colors = {
        "return200": "#7f7f7f", "inline": "#1f77b4", "pool": "#6baed6", "tower": "#08306b",
        "lua": "#2ca02c", "lua-cosmo": "#98df8a", "proxy": "#ff7f0e", "uwsgi": "#d62728",
        "wsgi": "#9467bd", "flask": "#c5b0d5", "flask-uwsgi": "#e377c2", "flask-gunicorn": "#8c564b",
    }
    plots = ", ".join(
        f"'{data}' using {i + 2}:xtic(1) title columnheader({i + 2}) lc rgb '{colors[row]}'"
        for i, row in enumerate(rows)
    )
    script = f"""
set terminal svg size 1100,520 dynamic enhanced font 'sans,12' background rgb 'white'
set output '{os.path.join(out_dir, "chart.svg")}'
set title "Median requests/s per CPU (servers on CPU {run['server_cpu']}, wrk -t1 -c{run['connections']} on CPU {run['client_cpu']})\\n{run['date']}, commit {run['commit']}" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set datafile missing '-'
set key outside right top vertical noenhanced
set ylabel 'req/s'
set yrange [0:*]
set grid ytics
set format y '%.0f'
plot {plots}
"""
    png = os.environ.get("BENCH_CHART_PNG")
    if png:
        # The same chart as a PNG, to look at it where no SVG viewer is at hand.
        script += script.replace("set terminal svg size 1100,520 dynamic", "set terminal pngcairo size 1100,520").replace(
            os.path.join(out_dir, "chart.svg"), png)
    result = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    os.remove(data)
    if result.returncode != 0:
        print(f"report: gnuplot failed: {result.stderr}", file=sys.stderr)
        return False
    return True


def replace_between(path, begin, end, text):
    with open(path) as f:
        content = f.read()
    if begin not in content or end not in content:
        print(f"report: no {begin} ... {end} markers in {path}, left as is", file=sys.stderr)
        return
    before = content.split(begin)[0]
    after = content.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(f"{before}{begin}\n{text}{end}{after}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--csv", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--readme", help="bench/README.md: the whole report between its markers")
    parser.add_argument("--summary", help="README.md: the summary between its markers")
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
        # One level down: the results sit under bench/README.md's "## Latest results".
        section = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", body, flags=re.M)
        if drawn:
            section = "![Median req/s per CPU, per row and workload](results/chart.svg)\n\n" + section
        replace_between(args.readme, README_BEGIN, README_END, section)
    if args.summary:
        replace_between(args.summary, SUMMARY_BEGIN, SUMMARY_END, summary_section(summary, run) + "\n")
    print(body)


if __name__ == "__main__":
    main()
