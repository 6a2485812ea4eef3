"""How far the LR finder's LRMAX moves between seeds, for each of fastai's suggestion rules, alone and as the median
of several range tests.

For each seed, the run's data and Learner as `era-s10 train` builds them (`setup_run`), then `--reps` range tests
from the same initial weights (fastai's `lr_find` puts them back after each), each on the loader's next batches.
Today's rule, `--lr-max-rule minimum --lr-find-reps 1`, is the first test's `minimum`; `--lr-find-reps N` takes the
median of the first N tests. Prints each rule's LRMAX per seed and its spread (largest over smallest), and writes
the rows to `--out` as JSON.

Usage: python benchmarks/lr_spread.py DATA [--seeds 0,1,2,3,4] [--subset 5000] [--bs 512] [--its 100] [--reps 3]"""
import argparse, json, statistics, tempfile, time
from pathlib import Path
from era_s10.config import RunConfig
from era_s10.core import LR_RULES
from era_s10.learner import find_lrs
from era_s10.train import setup_run


def range_tests(cfg:RunConfig, reps:int)->list:
    "The suggestions of `reps` range tests of the run `cfg` describes, from the same initial weights"
    learn = setup_run(cfg, out=Path(tempfile.mkdtemp())/'run', quiet=True)
    res = []
    for _ in range(reps):
        find_lrs(learn, num_it=cfg.lr_find_its)
        res.append({k: float(v) for k, v in learn.lr_suggestions.items()})
    return res


def spread(v:list)->float: return max(v)/min(v)


def table(rows:list, reps:int)->list:
    "Per rule and number of tests: each seed's LRMAX and the spread over seeds"
    out = []
    for rule in LR_RULES:
        for n in sorted({1, reps}):
            lrs = [statistics.median(t[rule] for t in r['tests'][:n]) for r in rows if rule in r['tests'][0]]
            if lrs: out.append(dict(rule=rule, reps=n, lr_max=lrs, spread=spread(lrs)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('data')
    p.add_argument('--seeds', default='0,1,2,3,4')
    p.add_argument('--subset', type=int, default=5000)
    p.add_argument('--bs', type=int, default=512)
    p.add_argument('--its', type=int, default=100, help='iterations of each range test')
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--device', default='auto')
    p.add_argument('--out', help='write the rows to this JSON file')
    a = p.parse_args()
    rows, t0 = [], time.perf_counter()
    for s in [int(o) for o in a.seeds.split(',')]:
        cfg = RunConfig(data=a.data, subset=a.subset, bs=a.bs, lr_find_its=a.its, seed=s, device=a.device, plots=False)
        rows.append(dict(seed=s, tests=range_tests(cfg, a.reps)))
        print(f"seed {s}: minimum " + ', '.join(f"{t['minimum']:.2e}" for t in rows[-1]['tests']), flush=True)
        res = dict(args=vars(a), seconds=time.perf_counter()-t0, seeds=rows, table=table(rows, a.reps))
        if a.out: Path(a.out).write_text(json.dumps(res, indent=1)) # after each seed, so a stopped run keeps its seeds
    print(f"{'rule':8} {'tests':>5}  {'LRMAX per seed':<52} {'spread':>6}")
    for r in res['table']:
        print(f"{r['rule']:8} {r['reps']:>5}  {', '.join(f'{v:.2e}' for v in r['lr_max']):<52} {r['spread']:6.2f}x")


if __name__ == '__main__': main()
