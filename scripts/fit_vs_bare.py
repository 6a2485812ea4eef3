"""`learn.fit` against the bare loop over ready batches, on the CPU in fp32 at bs 64: the bench's (b) row alone, in 3
interleaved rounds of 6 steps. Run it on two checkouts to compare them on one machine, e.g. an older one with
`PYTHONPATH=/path/to/old/checkout python scripts/fit_vs_bare.py DATA`; it prints which era_s10 it imported."""
import itertools, sys, tempfile
import era_s10
from era_s10.bench import fit_images_per_s, bare_loop, interleaved, compare_rounds, _plain, _forever
from era_s10.data import cifar10_dls

if __name__ == '__main__':
    dls = cifar10_dls(sys.argv[1] if len(sys.argv) > 1 else None, bs=64, device='cpu')
    ready = [(_plain(x), _plain(y)) for x,y in itertools.islice(_forever(dls.train), 4)]
    bare = bare_loop(ready, precision='fp32', channels_last=True, warm=1)
    with tempfile.TemporaryDirectory() as d:
        T = interleaved(dict(fit=lambda: fit_images_per_s(dls, 6, warm=1, path=d, precision='fp32'), bare=lambda: bare(6)), 3)
    fit, b, ratio = compare_rounds(T, 'fit', 'bare')
    print(f'era_s10 from {era_s10.__file__}: learn.fit {fit:.1f} img/s, bare loop {b:.1f} img/s, ratio {ratio:.3f}x (median of 3 rounds)')
