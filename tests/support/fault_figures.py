"""Prints the rows of figures the fault tests (tests/faults.rs) wrote, one JSON file each, as a
Markdown table: scenario, lines written, lost, duplicates, and peak RSS against the limit (the log budget,
`--log-buffer-mib`, plus a fixed base)."""

import json
import pathlib
import sys


def main() -> int:
    directory = pathlib.Path(sys.argv[1])
    rows = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    if not rows:
        print("no fault figures were recorded")
        return 1
    print("| Scenario | Lines written | Lost | Duplicates | Peak RSS (MiB) | Log budget (MiB) | Limit (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in sorted(rows, key=lambda r: r["scenario"]):
        peak = row.get("peak_rss_mib")
        budget = row.get("budget_mib")
        limit = row.get("limit_mib")
        print(
            f"| {row['scenario']} | {row['written']:,} | {row['lost']:,} | {row['duplicates']:,} "
            f"| {'' if peak is None else f'{peak:.1f}'} | {'' if budget is None else budget} "
            f"| {'' if limit is None else limit} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
