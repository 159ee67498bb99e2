"""The regularizer study (issue 9, deliver item 2; CPU-sized): fine-tune the shipped starter baseline on shapes with
no regularizer (the control) and with the guided regularizer over batchnorm x gradient_of x lambda, then measure
every model (and the starting checkpoint) with accuracy, the eval-mode gradient cosines and one evaluation run of all
models together, compared pairwise against the fine-tuned control.

    python studies/regularizer/run.py               # the grid (resumable: finished runs are skipped)
    python studies/regularizer/run.py --quick       # a tiny smoke version into build/regularizer-study-quick
    python studies/regularizer/run.py --lams 1 --batchnorms batch,per_sample,running

Run folders go to build/regularizer-study/ (ignored by git); the tables (CSV + markdown + small JSON) to
studies/regularizer/results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "checkpoints" / "shapes-resnet18-baseline"
METHODS = ["gradient", "guided_backprop", "gradcam", "random"]
METRICS = ["energy_pointing_game", "insertion", "deletion", "sparseness"]
DIRECTION = {"energy_pointing_game": "↑", "insertion": "↑", "deletion": "↓", "sparseness": "↑"}
CONTROL = "control"
START_NAME = "shapes-resnet18-baseline"  # the starting checkpoint, named as the evaluation names it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (few images, one epoch, two runs)")
    parser.add_argument("--lams", default="1,10", help="guided lambdas (comma-separated; default 1,10)")
    parser.add_argument("--batchnorms", default="batch,per_sample", help="guided batchnorm modes (default batch,per_sample)")
    parser.add_argument("--gradient-ofs", default="loss,logit", help="guided gradient_of values (default loss,logit)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=2560)
    parser.add_argument("--n-eval", type=int, default=200, help="validation images of the evaluation (default 200)")
    parser.add_argument("--alignment-samples", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=2, help="training processes at a time (each --threads 1)")
    parser.add_argument("--runs", default=None, help="folder of the run folders (default build/regularizer-study)")
    parser.add_argument("--results", default=None, help="folder of the tables (default studies/regularizer/results)")
    parser.add_argument("--skip-train", action="store_true", help="only measure the runs that are finished")
    parser.add_argument("--skip-eval", action="store_true", help="no evaluation run (tables without its metrics)")
    args = parser.parse_args(argv)
    if args.quick:
        args.lams, args.batchnorms, args.gradient_ofs = "1", "per_sample", "logit"
        args.epochs, args.n_train, args.n_eval, args.alignment_samples = 1, 128, 16, 64
    runs_default = "build/regularizer-study-quick" if args.quick else "build/regularizer-study"
    results_default = "build/regularizer-study-quick/results" if args.quick else "studies/regularizer/results"
    args.runs = ROOT / (args.runs or runs_default)
    args.results = ROOT / (args.results or results_default)
    return args


def grid(args: argparse.Namespace) -> list[dict]:
    """The configurations: the control first, then guided batchnorm x gradient_of x lambda."""
    configs = [{"name": CONTROL, "regularizer": "none", "batchnorm": "", "gradient_of": "", "lam": 0.0}]
    for batchnorm in args.batchnorms.split(","):
        for gradient_of in args.gradient_ofs.split(","):
            for lam in (float(value) for value in args.lams.split(",")):
                configs.append({"name": f"guided-{batchnorm}-{gradient_of}-lam{lam:g}", "regularizer": "guided",
                                "batchnorm": batchnorm, "gradient_of": gradient_of, "lam": lam})
    return configs


def train_command(config: dict, args: argparse.Namespace, out: Path, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "interpgrad", "train", "--out", str(out), "--no-progress", "--threads", "1"]
    if resume:
        return command + ["--resume"]
    command += ["--preset", "shapes-cpu", "--init", str(START), "--optimizer", "adam", "--lr", "1e-4",
                "--schedule", "constant", "--warmup-epochs", "0", "--epochs", str(args.epochs),
                "--n-train", str(args.n_train), "--alignment-samples", str(args.alignment_samples),
                "--seed", str(args.seed), "--device", "cpu", "--regularizer", config["regularizer"]]
    if config["regularizer"] == "guided":
        command += ["--error", "cosine", "--lam", f"{config['lam']:g}", "--batchnorm", config["batchnorm"],
                    "--gradient-of", config["gradient_of"]]
    return command


def state(folder: Path) -> str | None:
    try:
        return json.loads((folder / "status.json").read_text()).get("state")
    except (OSError, ValueError):
        return None


def train_one(config: dict, args: argparse.Namespace) -> dict:
    out = args.runs / config["name"]
    timing_file = args.runs / f"{config['name']}.timing.json"
    if state(out) == "finished":
        print(f"[skip] {config['name']}: finished", flush=True)
        return config
    resume = out.exists()
    command = train_command(config, args, out, resume)
    print(f"[train] {config['name']}: {' '.join(command[1:])}", flush=True)
    log = args.runs / f"{config['name']}.log"
    started = time.monotonic()
    with open(log, "a") as handle:
        code = subprocess.call(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.monotonic() - started
    previous = json.loads(timing_file.read_text()) if timing_file.exists() else {"wall_s": 0.0, "parts": 0}
    timing_file.write_text(json.dumps({"wall_s": previous["wall_s"] + wall, "parts": previous["parts"] + 1,
                                       "command": command[1:]}))
    print(f"[done] {config['name']}: exit {code} in {wall:.0f} s", flush=True)
    return config


def start_metrics(args: argparse.Namespace) -> dict:
    """Validation accuracy (all 2,000 images) and the eval-mode cosines (the first alignment_samples images) of the
    starting checkpoint, computed as the trainer computes them for every run."""
    cache = args.runs / "start_metrics.json"
    if cache.exists():
        return json.loads(cache.read_text())
    import numpy as np
    import torch

    from interpgrad.data import build_datasets, normalize
    from interpgrad.data.transforms import to_float_images
    from interpgrad.regularizers import gradient_alignment
    from interpgrad.training.checkpoint import load_checkpoint

    torch.set_num_threads(2)
    model = load_checkpoint(START).model.eval()
    _, val, info = build_datasets("shapes", seed=0, normalize=True)
    labels = torch.as_tensor(np.array(val.labels)).long()

    def prepare(images):
        x = to_float_images(torch.as_tensor(images))
        return normalize(x, info.mean, info.std, inplace=True).contiguous(memory_format=torch.channels_last)

    model = model.to(memory_format=torch.channels_last)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), 256):
            x = prepare(val.images[start:start + 256])
            correct += int((model(x).argmax(1) == labels[start:start + 256]).sum())
    count = min(args.alignment_samples, len(labels))
    cosines = {"loss": [], "logit": []}
    for start in range(0, count, 128):
        x = prepare(val.images[start:min(start + 128, count)])
        y = labels[start:min(start + 128, count)]
        for of in cosines:
            cosines[of].append(gradient_alignment(model, x, y, of=of).float())
    result = {"val_accuracy": correct / len(labels),
              "val_alignment_eval": float(torch.cat(cosines["loss"]).mean()),
              "val_alignment_logit_eval": float(torch.cat(cosines["logit"]).mean())}
    cache.write_text(json.dumps(result))
    return result


def run_evaluation(names: list[str], args: argparse.Namespace) -> tuple[Path, float | None]:
    # resumed while unfinished; after extending the grid (e.g. --lams 1,10) remove this folder (and its timing file)
    # so that all models are evaluated together again (a resume with other models is refused)
    out = args.runs / "evaluation"
    timing_file = args.runs / "evaluation.timing.json"
    if state(out) == "finished":
        print("[skip] evaluation: finished", flush=True)
    else:
        command = [sys.executable, "-m", "interpgrad", "evaluate", "--no-progress", "--device", "cpu",
                   "--methods", ",".join(METHODS), "--metrics", ",".join(METRICS), "--dataset", "shapes",
                   "--n", str(args.n_eval), "--out", str(out), "--seed", "0"]
        for name in names:
            command += ["--checkpoint", str(START if name == START_NAME else args.runs / name)]
        if args.quick:
            command += ["--resamples", "200"]
        if out.exists():
            command = [sys.executable, "-m", "interpgrad", "evaluate", "--no-progress", "--out", str(out), "--resume"]
        print(f"[evaluate] {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        wall = time.monotonic() - started
        previous = json.loads(timing_file.read_text()) if timing_file.exists() else {"wall_s": 0.0, "parts": 0}
        timing_file.write_text(json.dumps({"wall_s": previous["wall_s"] + wall, "parts": previous["parts"] + 1,
                                           "command": command[1:]}))
        print(f"[done] evaluation: exit {code} in {wall:.0f} s", flush=True)
    wall = json.loads(timing_file.read_text())["wall_s"] if timing_file.exists() else None
    return out, wall


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fmt(value, digits=3) -> str:
    return "" if value is None or value == "" else f"{float(value):.{digits}f}"


def collect(configs: list[dict], args: argparse.Namespace, evaluation: Path | None, eval_wall: float | None) -> None:
    args.results.mkdir(parents=True, exist_ok=True)
    start = start_metrics(args)
    rows = [{"model": START_NAME, "regularizer": "(starting checkpoint)", "batchnorm": "", "gradient_of": "",
             "lam": "", "finished": True, "val_accuracy": start["val_accuracy"],
             "accuracy_cost_vs_control_points": None, "val_cosine_loss_eval": start["val_alignment_eval"],
             "val_cosine_logit_eval": start["val_alignment_logit_eval"], "train_wall_s": None, "epoch_time_s_sum": None}]
    for config in configs:
        folder = args.runs / config["name"]
        row = {"model": config["name"], "regularizer": config["regularizer"], "batchnorm": config["batchnorm"],
               "gradient_of": config["gradient_of"], "lam": config["lam"] if config["regularizer"] != "none" else "",
               "finished": state(folder) == "finished"}
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()] \
            if (folder / "metrics.jsonl").exists() else []
        last = metrics[-1] if metrics and row["finished"] else {}
        timing_file = args.runs / f"{config['name']}.timing.json"
        row.update({"val_accuracy": last.get("val_accuracy"), "accuracy_cost_vs_control_points": None,
                    "val_cosine_loss_eval": last.get("val_alignment_eval"),
                    "val_cosine_logit_eval": last.get("val_alignment_logit_eval"),
                    "train_wall_s": json.loads(timing_file.read_text())["wall_s"] if timing_file.exists() else None,
                    "epoch_time_s_sum": sum(m.get("epoch_time_s", 0.0) for m in metrics) if last else None})
        rows.append(row)
    control = next(row for row in rows if row["model"] == CONTROL)
    for row in rows:
        if row["val_accuracy"] is not None and control["val_accuracy"] is not None:
            row["accuracy_cost_vs_control_points"] = 100 * (control["val_accuracy"] - row["val_accuracy"])
    write_csv(args.results / "configs.csv", rows)

    # the evaluation: means with CIs, and the paired comparison of every model against the control
    metric_rows = []
    if evaluation is not None and (evaluation / "summary.csv").exists():
        summary = {(r["model"], r["method"], r["metric"]): r for r in read_csv(evaluation / "summary.csv")}
        comparisons = {}
        for r in read_csv(evaluation / "comparisons.csv"):
            if r["model_b"] == CONTROL:
                comparisons[(r["model_a"], r["method"], r["metric"])] = r
            elif r["model_a"] == CONTROL:  # the control listed after (e.g. the starting checkpoint): flip the sign
                flipped = dict(r, model_a=r["model_b"], model_b=CONTROL, difference=-float(r["difference"]),
                               ci_low=-float(r["ci_high"]), ci_high=-float(r["ci_low"]),
                               verdict={"better": "worse", "worse": "better"}.get(r["verdict"], r["verdict"]))
                comparisons[(r["model_b"], r["method"], r["metric"])] = flipped
        for row in rows:
            for method in METHODS:
                for metric in METRICS:
                    s = summary.get((row["model"], method, metric))
                    if s is None:
                        continue
                    c = comparisons.get((row["model"], method, metric), {})
                    metric_rows.append({"model": row["model"], "method": method, "metric": metric,
                                        "direction": DIRECTION[metric], "mean": s["mean"], "ci_low": s["ci_low"],
                                        "ci_high": s["ci_high"], "n": s["n"],
                                        "difference_vs_control": c.get("difference", ""),
                                        "diff_ci_low": c.get("ci_low", ""), "diff_ci_high": c.get("ci_high", ""),
                                        "p_value": c.get("p_value", ""), "verdict_vs_control": c.get("verdict", "")})
        write_csv(args.results / "evaluation_vs_control.csv", metric_rows)
        info = json.loads((evaluation / "results.json").read_text()) if (evaluation / "results.json").exists() else {}
        (args.results / "evaluation_protocol.json").write_text(json.dumps(
            {key: info[key] for key in ("data", "target", "preset", "statistics", "models", "methods", "metrics",
                                        "batch_size", "device", "versions", "seconds", "seconds_per_model_method")
             if key in info}, indent=1, default=str))

    # markdown
    lines = ["## Configurations (one seed, 0)", "",
             "| model | regularizer | batchnorm | gradient_of | lambda | val accuracy % | cost vs control (points) "
             "| val cosine loss-grad (eval) | val cosine logit-grad (eval) | training wall (s) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| `{row['model']}` | {row['regularizer']} | {row['batchnorm']} | {row['gradient_of']} | "
                     f"{'' if row['lam'] == '' else format(float(row['lam']), 'g')} | "
                     f"{fmt(None if row['val_accuracy'] is None else 100 * row['val_accuracy'], 2)} | "
                     f"{fmt(row['accuracy_cost_vs_control_points'], 2)} | {fmt(row['val_cosine_loss_eval'])} | "
                     f"{fmt(row['val_cosine_logit_eval'])} | {fmt(row['train_wall_s'], 0)} |")
    if metric_rows:
        mark = {"better": "**+**", "worse": "**−**", "no clear difference": "·"}
        for method in METHODS:
            lines += ["", f"## `{method}`: mean [95 % CI] over {args.n_eval} images; verdict vs `control` "
                      "(+ better, − worse, · no clear difference)", "",
                      "| model | " + " | ".join(f"{metric} {DIRECTION[metric]}" for metric in METRICS) + " |",
                      "|---|" + "---|" * len(METRICS)]
            for row in rows:
                cells = []
                for metric in METRICS:
                    m = next((r for r in metric_rows if r["model"] == row["model"] and r["method"] == method
                              and r["metric"] == metric), None)
                    if m is None:
                        cells.append("")
                        continue
                    verdict = mark.get(m["verdict_vs_control"], "") if m["verdict_vs_control"] else "(control)"
                    cells.append(f"{fmt(m['mean'])} [{fmt(m['ci_low'])}, {fmt(m['ci_high'])}] {verdict}")
                lines.append(f"| `{row['model']}` | " + " | ".join(cells) + " |")
    lines += ["", f"Evaluation wall time: {fmt(eval_wall, 0)} s." if eval_wall else ""]
    (args.results / "table.md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"[results] {args.results}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    configs = grid(args)
    started = time.monotonic()
    if not args.skip_train:
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            list(pool.map(lambda config: train_one(config, args), configs))
        print(f"[train] all in {time.monotonic() - started:.0f} s", flush=True)
    finished = [c["name"] for c in configs if state(args.runs / c["name"]) == "finished"]
    evaluation, eval_wall = None, None
    if not args.skip_eval and CONTROL in finished:
        evaluation, eval_wall = run_evaluation([CONTROL] + [START_NAME] + [n for n in finished if n != CONTROL], args)
    collect(configs, args, evaluation, eval_wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
