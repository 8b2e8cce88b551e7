"""python -m demos list | python -m demos <name> [--quick] [--out DIR] | python -m demos all --quick

A demo's options are checked before it starts (their ranges: demos/arguments.py); `all` checks every demo's before
the first starts, runs the rest when one fails, and ends with the list of failures. The exit status is 1 when a
demo failed or recorded a metric that is not a finite number, 2 for bad options.
"""

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from demos import DEMOS, arguments
from demos.report import Report, problems


def _parser(name: str, module) -> argparse.ArgumentParser:
    # no abbreviations: `--seed` must not pass for `--seeds` in the demos that have only the latter
    parser = argparse.ArgumentParser(prog=f"python -m demos {name}", description=module.DESCRIPTION,
                                     allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: runs/<name>, runs/quick/<name> with --quick)")
    parser.add_argument("--backend", choices=["numba", "numpy", "cuda"], default=None, help="kernel backend")
    module.add_arguments(parser)
    return parser


def _settings(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def prepare(name: str, argv: list[str], in_subfolder: bool = False):
    """The demo's module, its checked options and its output folder; a bad option ends the process with a
    message (argparse's exit status 2) before anything runs. With `in_subfolder` (as `all` does), --out DIR means
    DIR/<name>."""
    from scratchnet.backend import BackendUnavailable, get_backend, set_backend

    module = importlib.import_module(DEMOS[name])
    parser = _parser(name, module)
    args = parser.parse_args(argv)
    found = arguments.problems(args, module)
    if found:
        parser.error("; ".join(found))
    try:
        if args.backend:
            set_backend(args.backend)
        else:
            get_backend()  # checks SCRATCHNET_BACKEND
    except (BackendUnavailable, ValueError) as error:
        parser.error(str(error))
    default = Path("runs") / "quick" / name if args.quick else Path("runs") / name  # a smoke run never overwrites
    out = default if args.out is None else args.out / name if in_subfolder else args.out
    if out.exists() and not out.is_dir():
        parser.error(f"the output folder {out} is a file")
    return module, args, out


def run_demo(name: str, module, args, out: Path) -> dict:
    """Run one prepared demo and write its report; returns its results."""
    from scratchnet.backend import get_backend

    given = _settings(args)
    report = Report(name, out, args.quick, dict(given, backend=get_backend()))
    module.run(args, report)
    # as run: a quick run overrides some settings in args (or adds some); a value the demo recorded itself (a
    # default it resolved, a size it capped) stands
    ran = _settings(args)
    report.config.update({k: v for k, v in ran.items() if report.config.get(k, given.get(k)) == given.get(k)})
    results = report.write()
    replaced = [f"--{k.replace('_', '-')} {given[k]} -> {v}" for k, v in ran.items() if k in given and v != given[k]]
    if replaced:
        print(f"\n{name} ran with settings of its own (the configuration records them): {', '.join(replaced)}")
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
        prepared = {name: prepare(name, argv[1:], in_subfolder=True) for name in DEMOS}  # every option, first
        start, failures = time.perf_counter(), []
        try:
            for name, demo in prepared.items():
                print(f"=== {name}", flush=True)
                try:
                    failures += [f"{name}: {problem}" for problem in problems(run_demo(name, *demo))]
                except (Exception, SystemExit) as error:  # the other demos still run; the summary names this one
                    traceback.print_exc()
                    failures.append(f"{name}: raised {type(error).__name__}: {error}")
        finally:
            print(f"all demos finished in {time.perf_counter() - start:.0f} s")
            for failure in failures:
                print(f"FAILED {failure}", file=sys.stderr)
        return 1 if failures else 0
    if argv[0] not in DEMOS:
        print(f"unknown demo {argv[0]!r}; choose one of: {', '.join(DEMOS)} (or list, all)", file=sys.stderr)
        return 2
    found = problems(run_demo(argv[0], *prepare(argv[0], argv[1:])))
    for problem in found:
        print(f"FAILED {argv[0]}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
