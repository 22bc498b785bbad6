#!/usr/bin/python3
"""Experiment 1 in PyTorch, for the side by side in docs/experiments.md.

Runs ../shared/anchors/torch_baseline.py (Debian's python3-torch: `scripts/install-deps.sh
--torch`) on cnn-small with the settings of examples/experiments/rectifiers.json
(Kaiming, 3 epochs, batch 64, lr 0.01, momentum 0.9, weight decay 5e-4, none on
slopes; Leaky ReLU's slope 0.01 as Prelude's default, PReLU's start 0.25) for each
rectifier and seed, and prints a markdown table: test accuracy mean +- sample sd over
seeds, images/s and the slopes learned (mean per layer). Raw results go to --raw as
JSON lines, and a rerun reuses the lines already there.

    /usr/bin/python3 scripts/torch_rectifiers.py --seeds 1 2 3 --raw build/torch-rectifiers.jsonl
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = [("RELU", "relu", 0.0), ("LEAKY_RELU", "leaky", 0.01),
         ("PRELU_SHARED", "prelu-shared", 0.25), ("PRELU_CHANNELWISE", "prelu-channel", 0.25)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default=os.path.join(HERE, "..", "..", "shared", "anchors", "torch_baseline.py"))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--raw", default="torch-rectifiers.jsonl", help="JSON lines, one per run (appended, reused)")
    a = p.parse_args()
    if not os.path.exists(a.baseline):
        raise SystemExit(f"{a.baseline}: not found (--baseline PATH)")

    done = {}
    if os.path.exists(a.raw):
        with open(a.raw) as f:
            for line in f:
                r = json.loads(line)
                done[(r["activation"], r["seed"], r["epochs"])] = r
    for _, kind, alpha in KINDS:
        for seed in a.seeds:
            if (kind, seed, a.epochs) in done:
                continue
            cmd = [sys.executable, a.baseline, "--model", "cnn-small", "--activation", kind,
                   "--alpha", str(alpha), "--init", "kaiming", "--epochs", str(a.epochs),
                   "--seed", str(seed), "--threads", str(a.threads), "--steps", "50"]
            print("running:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r.update(seed=seed, epochs=a.epochs)
            done[(kind, seed, a.epochs)] = r
            with open(a.raw, "a") as f:
                f.write(json.dumps(r) + "\n")

    def ms(xs, fmt):
        if len(xs) < 2:
            return fmt.format(xs[0])
        return (fmt + " +- " + fmt).format(statistics.mean(xs), statistics.stdev(xs))

    print("| activation | runs | TEST ACC | IMG/S | SLOPES (mean per layer) |")
    print("|---|---|---|---|---|")
    for name, kind, _ in KINDS:
        runs = [done[(kind, s, a.epochs)] for s in a.seeds]
        acc = [r["test_accuracy"] for r in runs]
        ips = [r["train_images_per_s"] for r in runs]
        slopes = ""
        if runs[0]["alphas"]:
            layers = zip(*[r["alphas"] for r in runs])
            slopes = " ".join(f"{statistics.mean(v):.3f}" for v in layers)
        print(f"| {name} | {len(runs)} | {ms(acc, '{:.4f}')} | {ms(ips, '{:.0f}')} | {slopes} |")


if __name__ == "__main__":
    main()
