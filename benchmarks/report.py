"""Turn a pytest-benchmark JSON file into the scratchnet-vs-torch table.

    python benchmarks/report.py benchmarks/results.json [--json benchmarks/report.json]

For each group (one layer, step or inference case): both medians, the ratio
scratchnet / torch (below 1: scratchnet is faster), each side's GFLOP/s from the analytic
FLOPs in extra_info, and that as a fraction of the matmul ceiling measured in the same run
(the `ceiling` group: a float32 2048^3 NumPy matmul on every core). Then the targets of the
performance issue, each met or not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# (group, largest acceptable ratio scratchnet / torch)
TARGETS = [
    ("train step cnn batch 64", 0.67),
    ("train step cnn batch 128", 0.67),
    ("inference cnn 1000 images", 0.5),
    ("inference cnn 1 image", 0.33),
    ("train step linear batch 64", 1.0),
    ("train step linear batch 128", 1.0),
    ("inference linear 1000 images", 1.0),
    ("inference linear 1 image", 1.0),
]


def build_rows(results: dict[str, Any]) -> tuple[list[dict[str, Any]], float | None]:
    groups: dict[str, dict[str, Any]] = {}
    for bench in results["benchmarks"]:
        info = bench.get("extra_info", {})
        groups.setdefault(bench["group"], {})[info.get("framework", bench["name"])] = bench
    ceiling = None
    if "ceiling" in groups:
        (only,) = groups["ceiling"].values()
        ceiling = only["extra_info"]["flops"] / only["stats"]["median"] / 1e9

    rows = []
    for group, pair in groups.items():
        if group == "ceiling" or not {"scratchnet", "torch"} <= pair.keys():
            continue
        ours, theirs = pair["scratchnet"], pair["torch"]
        t_ours, t_theirs = ours["stats"]["median"], theirs["stats"]["median"]
        flops = ours["extra_info"]["flops"]
        row = {
            "group": group,
            "scratchnet_ms": 1e3 * t_ours,
            "torch_ms": 1e3 * t_theirs,
            "ratio": t_ours / t_theirs,
            "scratchnet_gflops": flops / t_ours / 1e9,
            "torch_gflops": flops / t_theirs / 1e9,
            "threads": ours["extra_info"].get("threads"),
        }
        if ceiling:
            row["scratchnet_of_ceiling"] = row["scratchnet_gflops"] / ceiling
            row["torch_of_ceiling"] = row["torch_gflops"] / ceiling
        rows.append(row)
    order = ("layer", "train", "inference")
    rows.sort(
        key=lambda r: (
            next((i for i, p in enumerate(order) if r["group"].startswith(p)), 9),
            r["group"],
        )
    )
    return rows, ceiling


def format_table(rows: list[dict[str, Any]], ceiling: float | None, machine: str) -> str:
    lines = [
        f"scratchnet vs torch (eager), medians, {machine}",
        f"matmul ceiling (float32 2048^3, NumPy BLAS, all cores): {ceiling:.1f} GFLOP/s"
        if ceiling
        else "matmul ceiling: not measured",
        "",
        f"| {'benchmark':<34} | {'scratchnet ms':>13} | {'torch ms':>9} | {'ratio':>6} | "
        f"{'sn GFLOP/s':>10} | {'torch GFLOP/s':>13} | {'sn % ceil':>9} | {'torch % ceil':>12} |",
        "|" + "|".join("-" * w for w in (36, 15, 11, 8, 12, 15, 11, 14)) + "|",
    ]
    for r in rows:
        lines.append(
            f"| {r['group']:<34} | {r['scratchnet_ms']:>13.3f} | {r['torch_ms']:>9.3f} | "
            f"{r['ratio']:>6.2f} | {r['scratchnet_gflops']:>10.2f} | {r['torch_gflops']:>13.2f} | "
            f"{100 * r.get('scratchnet_of_ceiling', 0):>8.1f}% | "
            f"{100 * r.get('torch_of_ceiling', 0):>11.1f}% |"
        )
    lines += [
        "",
        "GFLOP/s count the direct convolution's FLOPs. scratchnet's conv2 and conv3 (Winograd",
        "F(4x4, 3x3)) do fewer multiplications, so theirs are effective rates and can pass 100%.",
    ]
    by_group = {r["group"]: r for r in rows}
    lines += ["", "Targets (ratio scratchnet / torch, medians, same run):"]
    for group, limit in TARGETS:
        if group in by_group:
            ratio = by_group[group]["ratio"]
            verdict = "met" if ratio <= limit else f"NOT met (gap {ratio / limit:.2f}x)"
            lines.append(f"  {group:<34} {ratio:5.2f} <= {limit:<4}  {verdict}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "report.json")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    rows, ceiling = build_rows(results)
    info = results.get("machine_info", {})
    threads = {r["threads"] for r in rows}
    machine = (
        f"{info.get('cpu', {}).get('brand_raw', 'CPU')}, {info.get('cpu', {}).get('count', '?')} "
        f"cores, threads {'/'.join(str(t) for t in sorted(threads))}"
    )
    print(format_table(rows, ceiling, machine))
    report = {
        "machine": machine,
        "ceiling_gflops": ceiling,
        "rows": rows,
        "datetime": results.get("datetime"),
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
