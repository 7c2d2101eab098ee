"""Makes tests/fixtures/metrics-lpips/: the pip `lpips` package's LPIPS(net='alex') and LPIPS(net='vgg'), the networks
WinTok's evaluation (examples/eval_tokenizer/eval_metrics_ddp.py) reports, per image on the metrics fixture's images.

The package code runs as it is (imported from a PerceptualSimilarity checkout, lpips 0.1.4); only its weights are
replaced by the fixtures' deterministic formula weights (tests/fixtures/README.md, "metrics/"), so neither the
torchvision backbones nor the v0.1 heads are downloaded or needed. The weights are defined on the two files the C#
loader reads, with k restarting at 0 in each list:
  - backbone: torchvision `alexnet().features` / `vgg16().features` state_dict, keys `features.N.weight|bias`;
  - heads: the lpips v0.1 head file's keys `linK.model.1.weight` (absolute values, like the `lins.` rule).
The script loads them into the package's own modules (net.sliceS.N.* keeps torchvision's index N) and computes, on the
CPU in float32, LPIPS(image, reconstruction) for each image of tests/fixtures/metrics/metrics.io.safetensors.

Usage (on a machine with torch, torchvision, numpy, safetensors, and scipy + tqdm, which the lpips package imports):
    python tests/fixtures-tools/make_lpips_fixture.py <PerceptualSimilarity checkout> [<output folder>]
The output folder defaults to tests/fixtures/metrics-lpips; the C# tests (LpipsTests) pick it up when it exists.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
checkout = os.path.abspath(sys.argv[1])
out = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.path.join(REPO, 'tests', 'fixtures', 'metrics-lpips')
os.makedirs(out, exist_ok=True)

import torchvision
import torchvision.models as tvm

# lpips/pretrained_networks.py calls tv.alexnet(pretrained=...) / tv.vgg16(pretrained=...) when LPIPS is built;
# newer torchvision spells that `weights`. Build them without weights, so nothing is downloaded.
_alexnet, _vgg16 = tvm.alexnet, tvm.vgg16
tvm.alexnet = lambda pretrained=False, **kwargs: _alexnet(weights=None)
tvm.vgg16 = lambda pretrained=False, **kwargs: _vgg16(weights=None)

sys.path.insert(0, checkout)
import lpips  # noqa: E402  (the checkout's package, not an installed one)
assert os.path.dirname(os.path.abspath(lpips.__file__)).startswith(checkout), f'imported {lpips.__file__}, not the checkout'


def formula_state(named_tensors):
    """tests/fixtures/metrics/generate.py formula_state, with the abs rule for head names `linK.*` as well."""
    result, order = {}, []
    for k, (name, t) in enumerate(named_tensors):
        order.append([name, list(t.shape), str(t.dtype).replace('torch.', '')])
        if not t.is_floating_point():
            result[name] = torch.zeros_like(t)
            continue
        n = t.numel()
        i = np.arange(n, dtype=np.float64) % 10007
        s = np.array([math.sin(0.1 + 0.37 * v + 1.7 * k) for v in i], dtype=np.float64)
        if name.endswith('running_var'):
            v = 1 + 0.25 * s * s
        elif name.endswith('running_mean'):
            v = 0.1 * s
        elif t.dim() == 1 and name.endswith('bn.weight'):
            v = 1 + 0.1 * s
        elif t.dim() == 1:
            v = 0.05 * s
        else:
            v = s * math.sqrt(3.0 / (n // t.shape[0]))
            if name.startswith('lins.') or (name.startswith('lin') and name[3:4].isdigit()):
                v = np.abs(v)
        result[name] = torch.from_numpy(v.astype(np.float32)).reshape(t.shape)
    return result, order


# WINTOK_METRICS_IO: a copy holding at least images_u8 and reconstructions (the GPU session carries a slice of it)
metrics = load_file(os.environ.get('WINTOK_METRICS_IO') or os.path.join(REPO, 'tests', 'fixtures', 'metrics', 'metrics.io.safetensors'))
images_u8, rec = metrics['images_u8'], metrics['reconstructions']
x = images_u8.float() / 255 * 2 - 1          # the metrics fixture's own conversion (its generate.py)

values, expected = {}, {}
for net, key, torchvision_net in [('alex', 'lpips_alex', _alexnet), ('vgg', 'lpips_vgg_pip', _vgg16)]:
    # pretrained=False: no head file is read; pnet_rand=True: the trunk is built without downloading weights.
    model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
    features = torchvision_net(weights=None).features.state_dict()
    backbone, backbone_order = formula_state([('features.' + name, t) for name, t in features.items()])
    heads, heads_order = formula_state([(f'lin{k}.model.1.weight', getattr(model, f'lin{k}').model[1].weight) for k in range(5)])

    slices = [model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5]
    with torch.no_grad():
        for sl in slices:
            # the package numbers each slice's children with torchvision's feature index
            sl.load_state_dict({name: backbone['features.' + name] for name in sl.state_dict()}, strict=True)
        for k in range(5):
            getattr(model, f'lin{k}').model[1].weight.copy_(heads[f'lin{k}.model.1.weight'])
        per_image = [float(model(x[i:i + 1], rec[i:i + 1]).item()) for i in range(x.shape[0])]
        batched = model(x, rec).flatten().double()
    assert torch.allclose(batched, torch.tensor(per_image, dtype=torch.float64), rtol=1e-4), (key, batched, per_image)
    values[key] = torch.tensor(per_image, dtype=torch.float64)
    expected[key + '_mean'] = float(np.mean(per_image))
    expected[key + '_weights'] = {'backbone': backbone_order, 'heads': heads_order}
    print(key, per_image)

try:
    commit = subprocess.run(['git', '-C', checkout, 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
except (OSError, subprocess.CalledProcessError):
    commit = 'unknown'
expected['source'] = {'PerceptualSimilarity': commit, 'torch': torch.__version__, 'torchvision': torchvision.__version__}

# Only the outputs: the inputs stay in ../metrics/ and the file names them (the tests merge them back in).
save_file(values, os.path.join(out, 'metrics.io.safetensors'), metadata={'inputs': '../metrics/metrics.io.safetensors'})
with open(os.path.join(out, 'metrics.expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
with open(os.path.join(out, 'README.md'), 'w') as f:
    f.write(f"""# metrics-lpips/ — the pip lpips package's LPIPS(net='alex') and LPIPS(net='vgg')

Made by tests/fixtures-tools/make_lpips_fixture.py (its docstring says how) from PerceptualSimilarity {commit}
(lpips 0.1.4) with torch {torch.__version__} and torchvision {torchvision.__version__}, on the CPU in float32.

`metrics.io.safetensors`: per image `lpips_alex`, `lpips_vgg_pip` (float64) = `lpips.LPIPS(net=...)(image,
reconstruction)` with inputs in [-1, 1]; the images and reconstructions are those of ../metrics/metrics.io.safetensors,
which its metadata key `inputs` names.
`metrics.expected.json`: the means and, per network, the formula-weight lists `backbone` (torchvision `features.N.*`)
and `heads` (`linK.model.1.weight`), k counted from 0 in each list.
""")
