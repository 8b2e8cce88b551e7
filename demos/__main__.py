"""python -m demos list | python -m demos <name> [--quick] [--out DIR] | python -m demos all --quick"""

import argparse
import importlib
import sys
import time
from pathlib import Path

from demos import DEMOS
from demos.report import Report, problems


def _parser(name: str, module) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m demos {name}", description=module.DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: runs/<name>, runs/quick/<name> with --quick)")
    parser.add_argument("--backend", choices=["numba", "numpy", "cuda"], default=None, help="kernel backend")
    module.add_arguments(parser)
    return parser


def _settings(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def run_demo(name: str, argv: list[str], in_subfolder: bool = False) -> dict:
    """Run one demo; with `in_subfolder` (as `all` does), --out DIR means DIR/<name>."""
    module = importlib.import_module(DEMOS[name])
    parser = _parser(name, module)
    args = parser.parse_args(argv)
    if args.backend:
        from scratchnet.backend import BackendUnavailable, set_backend

        try:
            set_backend(args.backend)
        except BackendUnavailable as error:
            parser.error(str(error))
    default = Path("runs") / "quick" / name if args.quick else Path("runs") / name  # a smoke run never overwrites
    out = default if args.out is None else args.out / name if in_subfolder else args.out
    given = _settings(args)
    report = Report(name, out, args.quick, dict(given))
    module.run(args, report)
    # as run: a quick run overrides some settings in args (or adds some); a value the demo recorded itself (a
    # default it resolved, a size it capped) stands
    ran = _settings(args)
    report.config.update({k: v for k, v in ran.items() if report.config.get(k, given.get(k)) == given.get(k)})
    results = report.write()
    print(f"\n{name}: {out / 'report.md'}\n{report.table()}\n")
    return results


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from scratchnet.memory import keep_freed_memory

    keep_freed_memory()  # fewer page faults between training steps (scratchnet/memory.py)
    if argv[0] == "list":
        for name, module_name in DEMOS.items():
            print(f"{name:24s} {importlib.import_module(module_name).DESCRIPTION}")
        return 0
    if argv[0] == "all":
        start, failures = time.perf_counter(), []
        for name in DEMOS:
            print(f"=== {name}")
            failures += [f"{name}: {problem}" for problem in problems(run_demo(name, argv[1:], in_subfolder=True))]
        print(f"all demos finished in {time.perf_counter() - start:.0f} s")
        for failure in failures:
            print(f"FAILED {failure}", file=sys.stderr)
        return 1 if failures else 0
    if argv[0] not in DEMOS:
        print(f"unknown demo {argv[0]!r}; choose one of: {', '.join(DEMOS)} (or list, all)", file=sys.stderr)
        return 2
    run_demo(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
