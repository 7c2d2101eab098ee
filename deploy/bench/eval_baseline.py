"""The reference's evaluation step, timed: WinTok's examples/eval_tokenizer/eval_metrics_ddp.py (markywg/WinTok @
eb0452e) per batch, on one GPU, with random weights, so that `wintok-bench evaluate` can be compared with it in the
same run (issue 10 item 4).

Per batch, exactly as the reference's loop body does it with --vocab_stats (zero-shot classification left out on
both sides): the batch to the GPU; `img_to_idx` (an extra encoder pass) and the vocabulary counts; encode + decode
(its VQWrapper) in float32 without autocast; `rec = clamp(recon, -1, 1)`; LPIPS alex and vgg (the pip `lpips`
package) summed; Inception (its pytorch-fid InceptionV3) features of both sides copied to numpy; the truncating uint8
conversion and skimage PSNR / SSIM one image at a time on the CPU. The images/s of that whole step is the baseline.
With --components the blocks are also timed alone (the model in fp32 and under bf16 autocast, Inception, LPIPS,
skimage), as issue 10 lists them.

Weights are random everywhere and nothing is downloaded: the SigLIP encoder is read from a random local folder made
here (the reference calls `SiglipVisionModel.from_pretrained(args.model)`); torchvision's AlexNet/VGG16 trunks and
the FID Inception get random weights; the LPIPS v0.1 heads are the package's own files. With --export DIR the
weights, the images (uint8 levels) and the reference's metric values are written for `wintok-bench evaluate
--reference DIR`, which then measures the same images with the same weights (identical-values check).

Output: `BASELINE eval ...` lines (refbench.emit); see deploy/gpu/README.md.

  python3 .gpu/bench/eval_baseline.py --batch 64 --batches 8 --warmup 2 --components --export /tmp/wintok-eval
"""
import argparse
import json
import os
import sys
import time

import refbench
from refbench import emit, note, step

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('--ref', default=None, help='folder assembled by assemble-references.sh (default .gpu/ref)')
ap.add_argument('--preset', default='so400m-16-256', choices=['so400m-16-256', 'tiny'])
ap.add_argument('--semantic-tokens', type=int, default=32)
ap.add_argument('--batch', type=int, default=64)
ap.add_argument('--batches', type=int, default=8, help='timed batches')
ap.add_argument('--warmup', type=int, default=2, help='untimed batches first (their metrics still count)')
ap.add_argument('--components', action='store_true', help='also time each block alone')
ap.add_argument('--no-fid', action='store_true', help='skip the Frechet distance (scipy sqrtm of 2048x2048)')
ap.add_argument('--export', default=None, help='write weights, images and metric values here for wintok-bench')
ap.add_argument('--workdir', default='/tmp/wintok-bench')
ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--device', default=None)
a = ap.parse_args()

import numpy as np  # noqa: E402
import torch  # noqa: E402

device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
ref = refbench.find_ref(a.ref)
stubs = refbench.install_stubs()
refbench.ensure_timm(ref)
wintok_root = os.path.join(ref, 'WinTok')
refbench.add_reference(wintok_root, ['utils', 'data', 'examples', 'examples.eval_tokenizer'])
# data/dataset.py imports webdataset and open_clip.transform (neither shipped nor needed: the images are given here)
refbench.inert_module('data.dataset', functions=['build_clip_transforms', 'build_vae_transforms', 'load_data', 'pil_load'])
sys.path.insert(1, os.path.join(ref, 'PerceptualSimilarity'))

import torchvision.models as tvm  # noqa: E402

# Random trunks, nothing downloaded: lpips calls tv.alexnet(pretrained=True) / tv.vgg16(pretrained=True) and
# inception.py calls models.inception_v3(..., pretrained=False); newer torchvision spells these `weights`.
_alexnet, _vgg16, _inception_v3 = tvm.alexnet, tvm.vgg16, tvm.inception_v3
tvm.alexnet = lambda pretrained=False, **kw: _alexnet(weights=None)
tvm.vgg16 = lambda pretrained=False, **kw: _vgg16(weights=None)


def _inception(**kw):
    kw.pop('pretrained', None)
    kw.setdefault('init_weights', False)
    return _inception_v3(weights=None, **kw)


tvm.inception_v3 = _inception

emit('eval', what='environment', device=refbench.device_name(), stubs=','.join(stubs) or 'none',
     **refbench.versions('torch', 'torchvision', 'transformers', 'numpy', 'scipy', 'skimage', 'timm'))

import lpips  # noqa: E402  (the PerceptualSimilarity checkout's package)
import examples.eval_tokenizer.inception as inception_module  # noqa: E402
import models.wintok as wintok_module  # noqa: E402
from utils.config import Args  # noqa: E402

INCEPTION_WEIGHTS = {}


def _random_fid_weights(url, progress=True, **kw):
    """pytorch-fid's weight download, replaced: random weights of the same keys (kept for --export)."""
    state = _inception(num_classes=1008, aux_logits=False).state_dict()
    INCEPTION_WEIGHTS.update(state)
    return state


inception_module.load_state_dict_from_url = _random_fid_weights
refbench.nest_siglip_classes(wintok_module)
import examples.eval_tokenizer.eval_metrics_ddp as E  # noqa: E402  (the reference script, for its own functions)

if not refbench.signature_accepts(E.linalg.sqrtm, 'disp'):
    # scipy >= 1.16 dropped sqrtm's `disp` argument, which the reference passes (disp=False returns a pair)
    import types
    _sqrtm = E.linalg.sqrtm
    E.linalg = types.SimpleNamespace(sqrtm=lambda m, disp=True: (_sqrtm(m), 0.0) if disp is False else _sqrtm(m))

torch.backends.cuda.matmul.allow_tf32 = False  # the reference evaluates in fp32 (PyTorch defaults: cuDNN TF32 on)
PRESETS = {
    'so400m-16-256': dict(encoder=refbench.SO400M_16_256, decoder=(27, 16, 1152, 4304), vocab=(16384, 32, 4)),
    'tiny': dict(encoder=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              image_size=64, patch_size=8), decoder=(2, 4, 64, 128), vocab=(256, 16, 4)),
}
preset = PRESETS[a.preset]

args = Args()
args.model = refbench.siglip_folder(os.path.join(a.workdir, 'siglip-' + a.preset), **preset['encoder'])
args.img_size = preset['encoder']['image_size']
args.num_latent_tokens = a.semantic_tokens
(args.decoder_rec_depth, args.decoder_rec_num_heads, args.decoder_rec_hidden_size,
 args.decoder_rec_intermediate_size) = preset['decoder']
args.vocab_size, args.vocab_width, args.num_codebooks = preset['vocab']

torch.manual_seed(a.seed)
start = time.time()
base_model = wintok_module.WinTok(args).eval()
wrapper = E.VQWrapper(base_model).to(device)  # the reference wraps this in DDP; on one GPU DDP adds nothing here
inception = E.InceptionV3([E.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()
lpips_alex = lpips.LPIPS(net='alex', verbose=False).to(device).eval()
lpips_vgg = lpips.LPIPS(net='vgg', verbose=False).to(device).eval()
note('networks built in %.1f s' % (time.time() - start))
vocab_size, num_codebooks = int(wrapper.g.codebook_size), int(wrapper.g.quantizer.num_codebooks)

# The images: random 8-bit levels through the reference's ToTensor + Normalize(0.5, 0.5), in float32.
size = args.img_size
count = a.batch * (a.warmup + a.batches)
generator = torch.Generator().manual_seed(a.seed + 1)
levels = torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)
images_all = ((levels.float() / 255) - 0.5) / 0.5
if device.type == 'cuda':
    images_all = images_all.pin_memory()  # the reference's DataLoader pins its batches


class Totals(object):
    def __init__(self):
        self.img_cnt = 0
        self.iter_cnt = 0
        self.lpips_alex_sum = torch.tensor(0.0, device=device)
        self.lpips_vgg_sum = torch.tensor(0.0, device=device)
        self.ssim_value = torch.tensor(0.0, device=device)
        self.psnr_value = torch.tensor(0.0, device=device)
        self.feats_ref, self.feats_rec = [], []
        self.vocab_counts = torch.zeros(vocab_size, dtype=torch.long, device=device)


def reference_step(images, totals):
    """One iteration of the reference's loop (eval_metrics_ddp.py main, step 4) with --vocab_stats, no zero-shot."""
    from skimage.metrics import peak_signal_noise_ratio as psnr_loss, structural_similarity as ssim_loss
    with torch.no_grad():
        images = images.to(device)
        batch_size = images.size(0)
        totals.img_cnt += batch_size
        indices = wrapper.g.img_to_idx(images)
        totals.vocab_counts += E.count_vocab_from_indices(indices, totals.vocab_counts.numel(), num_codebooks)
        out_dict = wrapper(images)
        rec = out_dict['recon'].clamp(-1, 1)
        totals.lpips_alex_sum += lpips_alex(images, rec).sum()
        totals.lpips_vgg_sum += lpips_vgg(images, rec).sum()
        totals.feats_ref.append(inception((images + 1) / 2)[0].squeeze(-1).squeeze(-1).cpu().numpy())
        totals.feats_rec.append(inception((rec + 1) / 2)[0].squeeze(-1).squeeze(-1).cpu().numpy())
        img_np = ((images + 1) / 2).mul_(255).permute(0, 2, 3, 1).to('cpu', dtype=torch.uint8).numpy()
        rec_np = ((rec + 1) / 2).mul_(255).permute(0, 2, 3, 1).to('cpu', dtype=torch.uint8).numpy()
        ssim_sum = torch.tensor(0.0, device=device)
        psnr_sum = torch.tensor(0.0, device=device)
        for x, y in zip(img_np, rec_np):
            ssim_sum += ssim_loss(x, y, data_range=255, channel_axis=-1)
            psnr_sum += psnr_loss(x, y)
        totals.ssim_value += ssim_sum / batch_size
        totals.psnr_value += psnr_sum / batch_size
        totals.iter_cnt += 1


totals = Totals()
batches = [images_all[i * a.batch:(i + 1) * a.batch] for i in range(a.warmup + a.batches)]
metrics = {}
with step('reference_step'):
    for b in batches[:a.warmup]:
        reference_step(b, totals)
    refbench.synchronize()
    clock = time.time()
    for b in batches[a.warmup:]:
        reference_step(b, totals)
    refbench.synchronize()
    seconds = time.time() - clock
    emit('eval', what='step', mode='fp32', batch=a.batch, batches=a.batches, warmup=a.warmup, preset=a.preset,
         semantic_tokens=a.semantic_tokens, img_per_s=a.batch * a.batches / seconds, seconds=seconds)

with step('reference_metrics'):
    n = float(totals.img_cnt)
    metrics['lpips_alex'] = float(totals.lpips_alex_sum) / n
    metrics['lpips_vgg'] = float(totals.lpips_vgg_sum) / n
    metrics['ssim'] = float(totals.ssim_value) / totals.iter_cnt
    metrics['psnr'] = float(totals.psnr_value) / totals.iter_cnt
    counts = totals.vocab_counts.cpu().double()
    p = counts / counts.sum()
    nz = p > 0
    metrics['usage_percent'] = 100.0 * float((counts > 0).sum()) / counts.numel()
    metrics['usage_entropy'] = float((-p[nz] * torch.log(p[nz])).sum())
    metrics['usage_perplexity'] = float(np.exp(metrics['usage_entropy']))
    if not a.no_fid:
        clock = time.time()
        ref_f, rec_f = np.concatenate(totals.feats_ref, 0), np.concatenate(totals.feats_rec, 0)
        metrics['rfid'] = float(E.calculate_frechet_distance(ref_f.mean(0), np.cov(ref_f, rowvar=False),
                                                             rec_f.mean(0), np.cov(rec_f, rowvar=False)))
        note('Frechet distance in %.1f s (scipy sqrtm)' % (time.time() - clock))
    for key, value in metrics.items():
        emit('eval', what='metric', name=key, value=value, images=totals.img_cnt)


def time_block(name, function, repeats, images_per_call):
    with torch.no_grad():
        function()
        refbench.synchronize()
        clock = time.time()
        for _ in range(repeats):
            function()
        refbench.synchronize()
    seconds = time.time() - clock
    emit('eval', what='component', name=name, img_per_s=images_per_call * repeats / seconds, batch=a.batch)


if a.components:
    x = batches[0].to(device)
    with torch.no_grad():
        r = wrapper(x)['recon'].clamp(-1, 1)
    repeats = 2 if a.batches <= 2 else 3
    with step('component_model_fp32'):
        time_block('model_fp32_encode_decode', lambda: wrapper(x), repeats, a.batch)
    with step('component_model_bf16'):
        def bf16():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                wrapper(x)
        time_block('model_bf16_autocast_encode_decode', bf16, repeats, a.batch)
    with step('component_img_to_idx_fp32'):
        time_block('img_to_idx_fp32', lambda: wrapper.g.img_to_idx(x), repeats, a.batch)
    with step('component_inception'):
        time_block('inception_both_sides', lambda: (inception((x + 1) / 2), inception((r + 1) / 2)), repeats, a.batch)
    with step('component_lpips'):
        time_block('lpips_alex_and_vgg', lambda: (lpips_alex(x, r).sum(), lpips_vgg(x, r).sum()), repeats, a.batch)
    with step('component_skimage'):
        from skimage.metrics import peak_signal_noise_ratio as psnr_loss, structural_similarity as ssim_loss
        xn = ((x + 1) / 2).mul_(255).permute(0, 2, 3, 1).to('cpu', dtype=torch.uint8).numpy()
        rn = ((r + 1) / 2).mul_(255).permute(0, 2, 3, 1).to('cpu', dtype=torch.uint8).numpy()
        time_block('skimage_psnr_ssim_cpu', lambda: [(ssim_loss(p_, q_, data_range=255, channel_axis=-1), psnr_loss(p_, q_))
                                                     for p_, q_ in zip(xn, rn)], 1, a.batch)

if device.type == 'cuda':
    emit('eval', what='memory', max_allocated_mib=torch.cuda.max_memory_allocated() / 2 ** 20,
         max_reserved_mib=torch.cuda.max_memory_reserved() / 2 ** 20)

if a.export:
    with step('export'):
        clock = time.time()
        os.makedirs(a.export, exist_ok=True)
        # the levels as raw bytes, (count, 3, size, size) row-major: what the C# evaluation consumes
        levels.contiguous().numpy().tofile(os.path.join(a.export, 'images.u8'))
        torch.save({'args': args.state_dict(), 'trainer': {'unitok': {k: v.detach().cpu() for k, v in base_model.state_dict().items()}}},
                   os.path.join(a.export, 'wintok.pth'))
        torch.save(INCEPTION_WEIGHTS, os.path.join(a.export, 'inception.pth'))
        for name, net, slices in (('alexnet', lpips_alex, 5), ('vgg16', lpips_vgg, 5)):
            # the package numbers each slice's children with torchvision's `features` index: back to features.N.*
            features = {}
            for s in range(1, slices + 1):
                for key, value in getattr(net.net, 'slice%d' % s).state_dict().items():
                    features['features.' + key] = value.detach().cpu()
            torch.save(features, os.path.join(a.export, name + '.pth'))
        heads = os.path.join(ref, 'PerceptualSimilarity', 'lpips', 'weights', 'v0.1')
        import shutil
        for name in ('alex', 'vgg'):  # the package's own v0.1 heads, which LPIPS(net=...) loaded
            shutil.copy(os.path.join(heads, name + '.pth'), os.path.join(a.export, name + '_heads.pth'))
        with open(os.path.join(a.export, 'reference-metrics.json'), 'w') as f:
            json.dump({'metrics': metrics, 'images': totals.img_cnt, 'image_shape': [count, 3, size, size], 'batch': a.batch, 'preset': a.preset,
                       'semantic_tokens': a.semantic_tokens, 'lpips_heads': {'alex': os.path.join(heads, 'alex.pth'),
                                                                             'vgg': os.path.join(heads, 'vgg.pth')}}, f, indent=1)
        emit('eval', what='export', folder=a.export, seconds=time.time() - clock)
