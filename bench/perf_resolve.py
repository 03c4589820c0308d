#!/usr/bin/env python3
"""Names the samples perf could not: ngx-gateway loads each app from an anonymous copy
(memfd), which perf cannot open, so its samples show as bare offsets. This maps them back to
the symbols of the app library on disk and prints one flat profile, top symbols first.

    perf_resolve.py PERF_DATA APP_LIBRARY [LIMIT [REQUESTS]]

With REQUESTS, the number of requests served while perf recorded, it also gives each line's
CPU time per request (perf's cpu-clock periods are nanoseconds of CPU).
"""

import bisect
import re
import subprocess
import sys


def segments(library):
    """(file offset, vaddr, size) of the loadable segments."""
    out = subprocess.run(["readelf", "-lW", library], capture_output=True, text=True, check=True)
    found = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            found.append((int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)))
    return found


def symbols(library):
    out = subprocess.run(
        ["nm", "-C", "-n", "--defined-only", library], capture_output=True, text=True, check=True
    )
    table = []
    for line in out.stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            table.append((int(parts[0], 16), parts[2]))
    return table


def shorten(name):
    # Drop hashes and generic noise so the same function aggregates.
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return name if len(name) <= 110 else name[:107] + "..."


def main():
    data, library = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    requests = float(sys.argv[4]) if len(sys.argv) > 4 else 0
    segs = segments(library)
    table = symbols(library)
    addresses = [address for address, _ in table]

    def name_of(offset):
        for file_offset, vaddr, size in segs:
            if file_offset <= offset < file_offset + size:
                address = offset - file_offset + vaddr
                i = bisect.bisect_right(addresses, address) - 1
                if i >= 0:
                    return shorten(table[i][1])
        return f"app+{offset:#x}"

    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio",
         "-g", "none", "--percent-limit", "0", "--show-total-period"],
        capture_output=True, text=True, check=True,
    ).stdout
    totals = {}
    line_re = re.compile(r"^\s*([\d.]+)%\s+(\d+)\s+(\S.*?)\s+\[(.)\]\s+(.*?)\s*$")
    for line in report.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = line_re.match(line)
        if not match:
            continue
        percent, period, dso, symbol = float(match[1]), int(match[2]), match[3].strip(), match[5]
        symbol = re.sub(r"\s+-\s+-\s*$", "", symbol).strip()
        if dso.startswith("memfd:"):
            dso = "app (" + library.rsplit("/", 1)[-1] + ")"
            if symbol.startswith("0x"):
                symbol = name_of(int(symbol, 16))
        key = (dso, shorten(symbol))
        old = totals.get(key, (0.0, 0))
        totals[key] = (old[0] + percent, old[1] + period)
    by_dso = {}
    for (dso, _), (percent, period) in totals.items():
        old = by_dso.get(dso, (0.0, 0))
        by_dso[dso] = (old[0] + percent, old[1] + period)

    def per_request(period):
        return f"{period / 1000 / requests:8.3f} us/req  " if requests else ""

    total_ns = sum(period for _, period in by_dso.values())
    print("# share of samples per library" + (" (and CPU per request)" if requests else ""))
    for dso, (percent, period) in sorted(by_dso.items(), key=lambda item: -item[1][0]):
        if percent >= 0.1:
            print(f"{percent:7.2f}%  {per_request(period)}{dso}")
    if requests:
        print(f"         {per_request(total_ns)}all, over {requests:,.0f} requests")
    print(f"\n# top {limit} symbols (self time)")
    for (dso, symbol), (percent, period) in sorted(totals.items(), key=lambda item: -item[1][0])[:limit]:
        print(f"{percent:7.2f}%  {per_request(period)}{dso:<32} {symbol}")


if __name__ == "__main__":
    main()
