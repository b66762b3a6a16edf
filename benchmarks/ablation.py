"""The paper's ablation tables (2, 3, 4) on the TACoS proxy, each row over several seeds.

Run: .venv/bin/python benchmarks/ablation.py --table 2 [--seeds 3] [--jobs 2] [--out DIR] [key=value ...]

The paper ablates on TACoS; so does this script, on proxy features (`benchmarks/proxy.py`:
the real TACoS paragraphs, synthetic clips that carry their words). A row of a table is a set
of config switches; every row is trained with `--seeds` seeds and tested on the 673 held-out
TACoS test paragraphs, and the table gives each metric's mean and sample standard deviation
over the seeds, with the paper's figures beside them.

Sized for about an hour a table on 2 CPU cores (Table 3 has twice the rows): the small-data
recipe of configs/own-small.yaml with a smaller model (PROXY below: D 64, 64 clips, words
truncated at 32, 8 epochs) on 500-d proxy features (TACoS's own are 4096-d) and all 1526
training paragraphs, validation on 150 of the 1001 val paragraphs. `--jobs` runs that many
trainings side by side, one thread each. A run whose test.json exists is read, not trained
again, so an interrupted table resumes.

An ordering of two rows is claimed only where their mean mIoU differ by more than the sum of
their standard deviations; the lines under the table say which. The last line is the full
model's test mIoU over the first row's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from proxy_store import write_proxy_store

from hscnet.annotations import load_paragraphs

REPO = Path(__file__).resolve().parents[1]
PROXY = [
    "model.hidden_dim=64",
    "model.heads=4",
    "data.num_clips=64",
    "data.max_words=32",
    "train.epochs=8",
    "eval.thresholds=[0.1,0.3,0.5]",
]
VAL_PARAGRAPHS = 150
DIM = 500  # proxy feature size: 4096-d clips of TACoS's long videos cost more to prepare than a D-64 step
STORE = f"/tmp/hscnet-proxy-tacos-{DIM}"
TACOS = ("tacos/train_paragraphs.npy", "tacos/val_paragraphs.npy", "tacos/test_paragraphs.npy")

# Each table: (row name, switches), in the paper's order, with the paper's R@0.3, R@0.5, mIoU.
TABLES = {
    "2": [
        ("SL", ["model.word_level=false", "model.paragraph_level=false"], (49.27, 30.14, 32.66)),
        ("SL + PL", ["model.word_level=false"], (53.73, 32.67, 35.18)),
        ("SL + WL", ["model.paragraph_level=false"], (54.79, 38.76, 37.43)),
        ("SL + PL + WL", [], (59.74, 42.00, 40.61)),
    ],
    "3": [
        ("none", ["loss.align_word=0", "loss.align_sentence=0", "loss.align_paragraph=0"], (29.98, 12.81, 22.38)),
        ("P", ["loss.align_word=0", "loss.align_sentence=0"], (36.34, 17.14, 25.56)),
        ("S", ["loss.align_word=0", "loss.align_paragraph=0"], (48.94, 31.18, 32.71)),
        ("W", ["loss.align_sentence=0", "loss.align_paragraph=0"], (52.23, 34.25, 35.02)),
        ("S + P", ["loss.align_word=0"], (51.66, 32.86, 34.46)),
        ("W + P", ["loss.align_sentence=0"], (55.66, 35.85, 37.49)),
        ("W + S", ["loss.align_paragraph=0"], (56.80, 38.82, 38.39)),
        ("W + S + P", [], (59.74, 42.00, 40.61)),
    ],
    "4": [
        ("SD", ["model.paragraph_decoder=false", "model.word_decoder=false"], (53.56, 38.55, 37.57)),
        ("SD + PD", ["model.word_decoder=false"], (55.41, 38.90, 38.33)),
        ("SD + WD", ["model.paragraph_decoder=false"], (56.78, 40.21, 39.10)),
        ("SD + PD + WD", [], (59.74, 42.00, 40.61)),
    ],
}
TITLES = {
    "2": "Table 2, hierarchical modelling (WL, SL, PL: word, sentence, paragraph level)",
    "3": "Table 3, alignment losses of the encoder (W, S, P: L_enc^VW, L_enc^VS, L_enc^VP switched on)",
    "4": "Table 4, decoders (SD, PD, WD: sentence, paragraph, word decoder)",
}
METRICS = ("R@0.3", "R@0.5", "mIoU")


def slug(name: str) -> str:
    return name.replace(" + ", "-").replace(" ", "-").lower()


def train_row(out: Path, name: str, switches: list[str], seed: int, extra: list[str]) -> dict:
    """One proxy training and test (in its own process, one thread); its test.json, read back."""
    run = out / slug(name) / f"seed{seed}"
    result = run / "test.json"
    if not result.is_file():
        run.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, str(REPO / "benchmarks" / "proxy.py"), "--dataset", "tacos",
            "--config", str(REPO / "configs" / "own-small.yaml"), "--run", str(run), "--seed", str(seed),
            "--threads", "1", "--dim", str(DIM), "--store", STORE, "--val-paragraphs", str(VAL_PARAGRAPHS),
            *PROXY, *switches, *extra,
        ]  # fmt: skip
        started = time.time()
        with open(run / "proxy.log", "w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        if done.returncode != 0 or not result.is_file():
            sys.exit(f"{name}, seed {seed}: the training failed; see {run / 'proxy.log'}")
        print(f"  {name}, seed {seed}: {time.time() - started:.0f} s", flush=True)
    return json.loads(result.read_text())


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=sorted(TABLES), required=True)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side, one thread each (default 2)")
    parser.add_argument("--out", help="folder of the runs (default runs/ablation-table<N>)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more config overrides for every row")
    args = parser.parse_args()
    if args.seeds < 1 or args.jobs < 1:
        sys.exit("--seeds and --jobs must be at least 1")

    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (shared / TACOS[0]).is_file():
        sys.exit(f"real TACoS annotations not found under {shared}: set HSCNET_SHARED_DATA")
    out = Path(args.out or REPO / "runs" / f"ablation-table{args.table}")
    rows = TABLES[args.table]
    # The proxy store is written once here, so that the trainings side by side only read it.
    write_proxy_store([load_paragraphs(shared / name) for name in TACOS], STORE, dim=DIM, progress=False)

    started = time.time()
    print(f"{TITLES[args.table]}: {len(rows)} rows x {args.seeds} seeds, {args.jobs} side by side; runs in {out}")
    print(f"proxy: TACoS, configs/own-small.yaml + {' '.join(PROXY + args.overrides)}")
    jobs = [(name, switches, seed) for name, switches, _ in rows for seed in range(args.seeds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda job: train_row(out, *job, args.overrides), jobs))
    by_row = {name: [r for (n, _, _), r in zip(jobs, results, strict=True) if n == name] for name, _, _ in rows}

    prior = results[0]["prior"]
    header = f"| {TITLES[args.table].split(',')[0]} | " + " | ".join(METRICS) + " | paper " + " / ".join(METRICS) + " |"
    print(f"\nTACoS proxy test ({results[0]['paragraphs']} paragraphs, {results[0]['sentences']} sentences), "
          f"mean ± sample std over {args.seeds} seeds, in {time.time() - started:.0f} s:\n")  # fmt: skip
    print(header)
    print("|---" * (len(METRICS) + 2) + "|")
    means = {}
    for name, _, paper in rows:
        cells = []
        for metric in METRICS:
            mean, std = spread([100 * r["metrics"][metric] for r in by_row[name]])
            cells.append(f"{mean:.2f} ± {std:.2f}")
            if metric == "mIoU":
                means[name] = (mean, std)
        print(f"| {name} | " + " | ".join(cells) + " | " + " / ".join(f"{v:.2f}" for v in paper) + " |")
    print("| dataset prior | " + " | ".join(f"{100 * prior[m]:.2f}" for m in METRICS) + " | |")
    print()
    names = [name for name, _, _ in rows]
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            (a, sa), (b, sb) = means[first], means[second]
            if abs(a - b) > sa + sb:
                better, worse = (first, second) if a > b else (second, first)
                print(f"claimed: {better} > {worse} (mIoU gap {abs(a - b):.2f} > spread {sa + sb:.2f})")
    unclaimed = sum(abs(means[x][0] - means[y][0]) <= means[x][1] + means[y][1]
                    for i, x in enumerate(names) for y in names[i + 1 :])  # fmt: skip
    print(f"not claimed: {unclaimed} of {len(names) * (len(names) - 1) // 2} pairs (gap within the spread)")
    full, base = means[names[-1]][0], means[names[0]][0]
    print(f"{names[-1]} / {names[0]} test mIoU (paper {rows[-1][2][2] / rows[0][2][2]:.2f}), ratio: {full / base:.2f}")


if __name__ == "__main__":
    main()
