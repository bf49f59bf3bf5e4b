"""Cold import of the Lambda code path, in fresh processes, against `import boto3, chalice` as the baseline.

    .venv/bin/python benchmarks/cold_import.py [--runs 15] [--before DIR] [--extra STATEMENT ...]

`--before DIR`: another checkout (e.g. `git archive main | tar -x -C DIR`) whose `import app` is timed too,
with this environment's packages: the change's cost side by side with the baseline, in one run.

Each sample is one new interpreter that times only its imports (not interpreter start-up), with the dev
stage's environment variables set as `chalice deploy` sets them before importing `app.py`. Samples of the
cases are interleaved, so a busy machine slows them alike; the medians are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

PROBE = """
import sys, time
started = time.perf_counter()
{imports}
print(time.perf_counter() - started)
"""


def stage_environment(stage: str) -> dict[str, str]:
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    return {**os.environ, **config["stages"][stage]["environment_variables"]}


def sample(imports: str, env: dict[str, str], cwd: Path = PROJECT_DIR) -> float:
    code = PROBE.format(imports=imports)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--before", type=Path, help="another checkout whose `import app` is timed as well")
    parser.add_argument("--extra", action="append", default=[],
                        help="another import statement to time after app (e.g. 'import aws_lambda_powertools')")
    args = parser.parse_args()
    env = stage_environment(args.stage)
    cases = {"import boto3, chalice (baseline)": ("import boto3, chalice", PROJECT_DIR),
             "import app": ("import app", PROJECT_DIR)}
    if args.before:
        cases[f"import app (from {args.before})"] = ("import app", args.before.resolve())
    for extra in args.extra:
        cases[f"import app; {extra}"] = (f"import app\n{extra}", PROJECT_DIR)
    for imports, cwd in cases.values():  # warm the disk cache and write .pyc files once
        sample(imports, env, cwd)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (imports, cwd) in cases.items():
            times[name].append(sample(imports, env, cwd))
    baseline = statistics.median(times["import boto3, chalice (baseline)"])
    print(f"{'case':<70} {'median ms':>10} {'ratio':>7}   ({args.runs} fresh processes each)")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<70} {median * 1000:>10.1f} {median / baseline:>7.2f}")


if __name__ == "__main__":
    main()
