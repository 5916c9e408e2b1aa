#!/usr/bin/env python3
"""Paired per-round ratios between any two rows of a benchmark run.

The driver (benches/envoy) reports each row against its twin and its peer; this answers the
same question for any pair, from the raw figures it keeps (`runs.tsv` in the run's directory):

    scripts/bench-pairs.py .tmp/bench/run-YYYYMMDD-HHMMSS/runs.tsv gate-gateways-1/gate-random-m17 ...

For each pair A/B: per round, A's requests/s and proxy CPU per request divided by B's in the
same round, then the median of those ratios (req/s above 1: A is faster; CPU below 1: A is
cheaper), with every round's ratio for the spread.
"""
import csv
import statistics
import sys


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows = {}
    with open(argv[1], newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows[(r["variant"], r["round"])] = (float(r["rps"]), float(r["proxy_cpu_us_per_req"]))
    print("| A / B | rounds | req/s (median) | CPU per request (median) | req/s per round | CPU per round |")
    print("|---|---:|---:|---:|---|---|")
    for pair in argv[2:]:
        a, b = pair.split("/", 1)
        rounds = sorted({r for (v, r) in rows if v == a} & {r for (v, r) in rows if v == b}, key=int)
        if not rounds:
            print(f"{pair}: no round has both rows", file=sys.stderr)
            return 1
        rps = [rows[(a, r)][0] / rows[(b, r)][0] for r in rounds]
        cpu = [rows[(a, r)][1] / rows[(b, r)][1] for r in rounds]
        fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs)
        print(f"| {a} / {b} | {len(rounds)} | {statistics.median(rps):.3f} | "
              f"{statistics.median(cpu):.3f} | {fmt(rps)} | {fmt(cpu)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
