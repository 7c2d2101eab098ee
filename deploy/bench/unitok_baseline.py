"""The reference UniTok model, timed: FoundationVision/UniTok @ bb8012e models/unitok.py (UniTok-L: ViTamin-L encoder,
8 codebooks of 4096 x 8, its decoder and text tower), built by the reference's own `models.build_unitok(Args())` with
its default Args (the released configuration), random weights, in eager PyTorch under bf16 autocast, as
`wintok-bench tokenize --model unitok` runs ours (issue 13 item 5).

  tokenize   : img_to_idx(x)                    (batch of random images in [-1, 1] already on the GPU)
  roundtrip  : idx_to_img(img_to_idx(x))
timed like deploy/bench/torch_baseline.py: one warm-up call, then --iters calls (roundtrip: iters - 2) between
synchronizations, under torch.no_grad() and torch.autocast('cuda', bfloat16). --agreement also reports how many token
ids of the bf16-autocast path equal the fp32 path's on one batch (the reference's own bf16 agreement).

The released args have grad_ckpt=True (activation checkpointing, a training-memory switch that changes no value);
it is set False here, as ours does not checkpoint at inference (tests/fixtures/unitok does the same). UniTok pins
timm 1.0.8 (newer timm passes norm_layer/bias to its GeGluMlp, which rejects them): .gpu/ref/timm-1.0.8 goes first
on sys.path. `tap`, `pytz` and `ftfy` (open_clip's text cleaning, unused for images) are stubbed when missing.

Output: `BASELINE unitok ...` lines. See deploy/gpu/README.md.
"""
import argparse
import os
import sys
import time

import refbench
from refbench import emit, note, step

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('--ref', default=None)
ap.add_argument('--batch', type=int, default=128)
ap.add_argument('--iters', type=int, default=5)
ap.add_argument('--modes', default='bf16', help='comma-separated: bf16 (autocast), fp32, tf32')
ap.add_argument('--agreement', action='store_true')
ap.add_argument('--tiny', action='store_true', help='dry run: the tiny ViTamin of tests/fixtures/unitok at 48 px')
ap.add_argument('--device', default=None)
ap.add_argument('--profile', action='store_true',
                help='after timing: where one bf16 tokenize and one round trip spend GPU time (modules and kernels)')
a = ap.parse_args()

ref = refbench.find_ref(a.ref)
sys.path.insert(0, os.path.join(ref, 'UniTok'))
sys.path.insert(0, os.path.join(ref, 'timm-1.0.8'))   # before the installed timm
stubs = refbench.install_stubs()

import torch  # noqa: E402
import timm  # noqa: E402

device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
emit('unitok', what='environment', device=refbench.device_name(), stubs=','.join(stubs) or 'none', timm_file=timm.__file__,
     **refbench.versions('torch', 'timm'))
if timm.__version__ != '1.0.8':
    note('WARNING: timm %s imported, not the pinned 1.0.8: UniTok may fail to build' % timm.__version__)

if a.tiny:
    # tests/fixtures/unitok/generate.py's two additions to models/vitamin.py: a table entry and a tiny factory
    path = os.path.join(ref, 'UniTok', 'models', 'vitamin.py')
    source = open(path).read()
    old = "            'vitamin_large': (1024, 320, 160)\n        }[model]"
    assert source.count(old) == 1, 'models/vitamin.py is not the expected revision'
    source = source.replace(old, "            'vitamin_large': (1024, 320, 160),\n            'vitamin_tiny': (64, 16, 8),\n        }[model]")
    source += '''

@register_model
def vitamin_tiny(pretrained=False, **kwargs) -> VisionTransformer:
    stage_1_2 = MbConvStages(cfg=VitCfg(embed_dim=(8, 16, 64), depths=(2, 4, 1), stem_width=8,
                                        conv_cfg=VitConvCfg(norm_layer='layernorm2d', norm_eps=1e-6), head_type='1d'))
    stage3_args = dict(embed_dim=64, depth=2, num_heads=4, mlp_layer=GeGluMlp, mlp_ratio=2., class_token=False, global_pool='avg')
    return _create_vision_transformer_hybrid('vitamin_tiny', backbone=stage_1_2, pretrained=pretrained, **dict(stage3_args, **kwargs))
'''
    import types
    module = types.ModuleType('models.vitamin')
    module.__file__ = path
    sys.modules['models.vitamin'] = module
    exec(compile(source, path, 'exec'), module.__dict__)

from models import build_unitok  # noqa: E402
from utils.config import Args  # noqa: E402

args = Args()
args.device = str(device)
args.grad_ckpt = False
if a.tiny:
    args.model, args.img_size, args.vocab_size, args.vocab_width = 'vitamin_tiny', 48, 512, 32
    args.embed_dim, args.text_width, args.text_heads, args.text_layers, args.text_context_length = 24, 4, 2, 2, 32
torch.manual_seed(0)
start = time.time()
model = build_unitok(args).to(device).eval()
note('UniTok (%s, %d px) built in %.1f s, %d parameters' % (args.model, args.img_size, time.time() - start,
                                                             sum(p.numel() for p in model.parameters())))
x = torch.rand(a.batch, 3, args.img_size, args.img_size, device=device) * 2 - 1


def timed(function, iters):
    with torch.no_grad():
        function()
        refbench.synchronize()
        clock = time.time()
        for _ in range(iters):
            function()
        refbench.synchronize()
    return time.time() - clock


for mode in [m.strip() for m in a.modes.split(',') if m.strip()]:
    with step('unitok_' + mode):
        torch.backends.cuda.matmul.allow_tf32 = mode == 'tf32'
        torch.backends.cudnn.allow_tf32 = mode == 'tf32'

        def run(function):
            def wrapped():
                if mode == 'bf16':
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        return function()
                return function()
            return wrapped

        seconds = timed(run(lambda: model.img_to_idx(x)), a.iters)
        emit('unitok', op='tokenize', mode=mode, model=args.model, batch=a.batch, img_per_s=a.batch * a.iters / seconds)
        rt = max(1, a.iters - 2)
        seconds = timed(run(lambda: model.idx_to_img(model.img_to_idx(x))), rt)
        emit('unitok', op='roundtrip', mode=mode, model=args.model, batch=a.batch, img_per_s=a.batch * rt / seconds)

if a.agreement:
    with step('unitok_agreement'):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        with torch.no_grad():
            fp32 = model.img_to_idx(x)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                bf16 = model.img_to_idx(x)
        equal = (fp32 == bf16).float()
        emit('unitok', what='bf16_agreement', mode='reference_autocast', tokens='%.2f%%' % (100 * float(equal.mean())),
             per_codebook='[' + ','.join('%.2f' % (100 * float(v)) for v in equal.mean(dim=(0, 2))) + ']', batch=a.batch)

if device.type == 'cuda':
    emit('unitok', what='memory', max_allocated_mib=torch.cuda.max_memory_allocated() / 2 ** 20,
         max_reserved_mib=torch.cuda.max_memory_reserved() / 2 ** 20)

if a.profile and device.type == 'cuda':
    # Where the reference's time goes, to know what a faster path must beat: CUDA-event time per top-level part
    # (forward hooks), then torch.profiler's kernels by total GPU time.
    parts = {'encoder.patch_embed': model.encoder.patch_embed, 'encoder.blocks': model.encoder.blocks,
             'encoder.norm': model.encoder.norm, 'quant_proj': model.quant_proj, 'quantizer': model.quantizer,
             'post_quant_proj': model.post_quant_proj, 'decoder.blocks': model.decoder.blocks}
    for name, child in model.decoder.named_children():
        if name.startswith('up_conv') or name in ('conv_out', 'norm'):
            parts['decoder.' + name] = child
    spent = {name: 0.0 for name in parts}
    marks = {}

    def hooks(name, module):
        def before(_m, _i):
            marks[name] = torch.cuda.Event(enable_timing=True)
            marks[name].record()

        def after(_m, _i, _o):
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            torch.cuda.synchronize()
            spent[name] += marks[name].elapsed_time(end)
        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    for name, module in parts.items():
        hooks(name, module)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        model.idx_to_img(model.img_to_idx(x))
        spent = {name: 0.0 for name in parts}
        model.idx_to_img(model.img_to_idx(x))
    for name, ms in spent.items():
        emit('unitok', what='profile_part', part=name, ms=ms)
    from torch.profiler import profile, ProfilerActivity
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model.img_to_idx(x)
            torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=30, max_name_column_width=90))
