"""What the test suite costs, as a file a program can read: per-test and per-fixture setup times as JSON.

    python bench/test_profile.py --json bench/results/test_profile.json            # run, write, print
    python bench/test_profile.py --json new.json --compare old.json -- tests/test_cache.py -n 0
    python bench/test_profile.py --read new.json --compare old.json                  # no run

Runs pytest with the suite's plugin (tests/helpers/profiling.py, ``--profile-json``) and the arguments
``make test`` uses unless others follow ``--``, then prints the wall time, the costliest tests and
fixtures and, with ``--compare``, what changed against an earlier file. Exits with pytest's status.
Timings on a shared machine are noisy: compare files from the same machine, and look at the load
averages each file records.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what `make test` passes (the Makefile passes the same through --)
DEFAULT_ARGS = ["-q", "-p", "no:cacheprovider", "--durations=15", "-n", "2", "--dist", "loadgroup"]


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--json", type=Path, help="run the suite and write its profile here")
    out.add_argument("--read", type=Path, help="print an existing profile (no run)")
    ap.add_argument("--compare", type=Path, help="an earlier profile to compare with")
    ap.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    args = ap.parse_args(argv[:split])
    for path in filter(None, (args.read, args.compare)):
        if not path.is_file():
            ap.error(f"no profile at {path}: write one with --json {path}")
    return args, argv[split + 1:] or DEFAULT_ARGS


def run_suite(path: Path, pytest_args: list[str]) -> int:
    """pytest with the profile plugin writing ``path``; its exit status."""
    cmd = [sys.executable, "-m", "pytest", *pytest_args, "--profile-json", str(path)]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def summary_lines(doc: dict, top: int) -> list[str]:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(doc["summary"].items()))
    load_avg = doc.get("loadavg") or {}
    workers = f"{doc['workers']} xdist workers" if doc["workers"] else "one process"
    lines = [f"wall {doc['wall_s']:.0f} s, {workers}, {counts}; load average at start "
             f"{(load_avg.get('start') or ['?'])[0]}, at end {(load_avg.get('end') or ['?'])[0]}",
             "", f"costliest tests (setup + call + teardown, s):"]
    for t in doc["tests"][:top]:
        lines.append(f"{t['total']:8.1f}  setup {t['setup']:6.1f}  call {t['call']:6.1f}  {t['worker']:>4}  "
                     f"{t['nodeid']}")
    lines += ["", "costliest fixtures (own setup summed over the run, s):"]
    for f in doc["fixtures"][:top]:
        lines.append(f"{f['total_s']:8.1f}  x{f['count']:<3} max {f['max_s']:6.1f}  "
                     f"{f['scope']:<8} {f['name']}")
    return lines


def compare_lines(new: dict, old: dict, top: int) -> list[str]:
    """Wall time, and the tests whose time changed most (tests in one file only are listed as such)."""
    before, after = old["wall_s"], new["wall_s"]
    lines = ["", f"wall {before:.0f} s -> {after:.0f} s ({after - before:+.0f} s)"]
    a, b = ({t["nodeid"]: t for t in d["tests"]} for d in (old, new))
    both = sorted(set(a) & set(b), key=lambda k: -abs(b[k]["total"] - a[k]["total"]))
    lines.append(f"tests in both: {len(both)}; only in the old file: {len(set(a) - set(b))}; "
                 f"only in the new: {len(set(b) - set(a))}")
    lines.append("largest changes (old -> new, s):")
    for k in both[:top]:
        lines.append(f"{a[k]['total']:8.1f} -> {b[k]['total']:8.1f}  {k}")
    changed = [k for k in both if a[k]["outcome"] != b[k]["outcome"]]
    lines += [f"outcome changed: {k}: {a[k]['outcome']} -> {b[k]['outcome']}" for k in changed]
    return lines


def main(argv: list[str] | None = None) -> int:
    args, pytest_args = parse(argv)
    status = 0
    if args.json:
        status = run_suite(args.json, pytest_args)
        if not args.json.is_file():
            print(f"error: pytest wrote no profile to {args.json} (exit {status})", file=sys.stderr)
            return status or 1
    doc = load(args.json or args.read)
    lines = summary_lines(doc, args.top)
    if args.compare:
        lines += compare_lines(doc, load(args.compare), args.top)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
