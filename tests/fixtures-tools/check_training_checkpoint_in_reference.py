"""Loads a training checkpoint written by `wintok train` with the reference code's own classes and loaders.

What it checks, in order (each step prints OK or fails with the reason):

  1. layout   torch.load(weights_only=False) gives the layout train.py saves: 'args', 'epoch', 'iter',
              'trainer' = {'config', 'unitok', 'disc', 'unitok_optim', 'disc_optim'} (our extra top-level 'wintok'
              entry, the exact-resume state, is allowed and reported).
  2. model    WinTok.from_checkpoint's steps: Args().load_state_dict(ckpt['args']), WinTok(args), strict
              load_state_dict(ckpt['trainer']['unitok']), then a forward pass in eval mode on random images.
  3. disc     models.build_discriminator(args) (the DINOv2 backbone from --dino), strict
              load_state_dict(ckpt['trainer']['disc']).
  4. optim    utils.optimizer.build_optimizer(args, 'weunitok', model) and (args, 'disc', disc): their
              AmpOptimizer.load_state_dict(ckpt['trainer'][...]) and every moment's shape against its parameter.
  5. config   ckpt['trainer']['config'] equals what the reference Trainer.get_config() computes from these args, which
              Trainer.load_state_dict(strict=True) compares.

Steps 2-5 need the reference checkout and its Python stack (torch, transformers, timm, einops; safetensors for
safetensors weight files). Run it where those are installed (the GPU machine), e.g. on the tiny sample run:

    wintok sample /tmp/kit && wintok train /tmp/kit/train.json
    python3 tests/fixtures-tools/check_training_checkpoint_in_reference.py --ref /path/to/WinTok \\
        --checkpoint /tmp/kit/training-run/ckpt-last.pth --teacher /tmp/kit/training/siglip-tiny \\
        --dino /tmp/kit/training/dinov2-tiny.safetensors

--layout-only runs step 1 and loads both optimizer states into plain torch.optim.AdamW instances (torch only).
Exit code 0 and a final "OK" line mean the reference code reads the checkpoint.
"""
import argparse
import collections
import importlib
import importlib.machinery
import inspect
import os
import sys
import tempfile
import types
from functools import partial

import torch

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--checkpoint', required=True)
ap.add_argument('--ref', help='checkout of github.com/markywg/WinTok (commit eb0452e)')
ap.add_argument('--teacher', help='HF SigLIP(2) folder the run trained with (default: the checkpoint args.model)')
ap.add_argument('--dino', help='DINOv2 weights (.pth or .safetensors; default: args.dino_path)')
ap.add_argument('--dino-heads', type=int, help='heads of a DINOv2 that is not ViT-S/14 (default: width / 64)')
ap.add_argument('--layout-only', action='store_true', help='only step 1 and plain AdamW loads (needs torch only)')
a = ap.parse_args()

TRAINER_KEYS = ['config', 'unitok', 'disc', 'unitok_optim', 'disc_optim']


def ok(step, detail):
    print(f'{step}: OK ({detail})', flush=True)


# 1. layout -----------------------------------------------------------------------------------------------------
ckpt = torch.load(a.checkpoint, map_location='cpu', weights_only=False)
top = list(ckpt.keys())
assert top[:4] == ['args', 'epoch', 'iter', 'trainer'], f'top-level keys {top}'
assert set(top[4:]) <= {'wintok'}, f'unexpected top-level keys {top[4:]}'
trainer = ckpt['trainer']
assert list(trainer.keys()) == TRAINER_KEYS, f"ckpt['trainer'] keys {list(trainer.keys())}"
args_in = ckpt['args']
assert isinstance(args_in, collections.OrderedDict), f'args is a {type(args_in)}'
assert isinstance(ckpt['epoch'], int) and isinstance(ckpt['iter'], int)
resume = ckpt.get('wintok')
ok('layout', f"epoch {ckpt['epoch']} iter {ckpt['iter']}, {len(trainer['unitok'])} unitok tensors, {len(trainer['disc'])} disc tensors, "
             f"resume state {'present, next iteration ' + str(resume['next_iteration']) if resume else 'absent'}")


def load_into_adamw(state, where):
    """The optimizer state into a plain AdamW over parameters shaped like its moments."""
    shapes = {}
    for group in state['param_groups']:
        for index in group['params']:
            shapes[index] = state['state'][index]['exp_avg'].shape if index in state['state'] else (1,)
    params = {i: torch.nn.Parameter(torch.zeros(s)) for i, s in shapes.items()}
    groups = [{'params': [params[i] for i in g['params']]} for g in state['param_groups']]
    optimizer = torch.optim.AdamW(groups)
    optimizer.load_state_dict(state)
    for index, moments in state['state'].items():
        for key in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(optimizer.state_dict()['state'][index][key], moments[key]), f'{where}[{index}][{key}] changed on load'
    return sum(len(g['params']) for g in state['param_groups'])


if a.layout_only:
    for key in ('unitok_optim', 'disc_optim'):
        count = load_into_adamw(trainer[key]['optimizer'], key)
        ok(key, f'{count} parameters, {len(trainer[key]["optimizer"]["state"])} with moments, into torch.optim.AdamW')
    print(f'OK: torch {torch.__version__} loads {a.checkpoint} in the reference layout (layout only)')
    sys.exit(0)

if not a.ref:
    sys.exit('--ref (the reference checkout) is needed beyond --layout-only')

# Stand-ins for imports the reference needs but that take no part in loading (as tests/fixtures/training does) ------
if importlib.util.find_spec('tap') is None:
    tap = types.ModuleType('tap')

    class Tap:
        """typed-argument-parser's Tap without parsing: class defaults and class_variables in definition order."""

        def __init__(self, *args, **kwargs):
            pass

        @property
        def class_variables(self):
            d = collections.OrderedDict()
            for cls in reversed(type(self).__mro__):
                for k in inspect.get_annotations(cls):
                    if not k.startswith('_'):
                        d[k] = {'comment': ''}
            return d

    tap.Tap = Tap
    sys.modules['tap'] = tap
for name, attribute in (('pytz', 'timezone'), ('GPUtil', 'getGPUs')):
    if importlib.util.find_spec(name) is None:
        stub = types.ModuleType(name)
        setattr(stub, attribute, lambda *args, **kwargs: None)
        sys.modules[name] = stub
for package, relative in (('utils', 'utils'), ('data', 'data'), ('examples', 'examples'),
                          ('examples.train_tokenizer', 'examples/train_tokenizer')):
    path = os.path.join(a.ref, relative)
    if not os.path.exists(os.path.join(path, '__init__.py')):
        module = types.ModuleType(package)
        module.__path__ = [path]
        module.__spec__ = importlib.machinery.ModuleSpec(package, None, is_package=True)
        module.__spec__.submodule_search_locations = [path]
        sys.modules[package] = module
sys.path.insert(0, a.ref)

import transformers  # noqa: E402
from utils.config import Args  # noqa: E402
from utils.optimizer import build_optimizer  # noqa: E402
import models as rmodels  # noqa: E402
import models.wintok as wt  # noqa: E402
import models.dinov2 as rdinov2  # noqa: E402
import models.discrim as rdiscrim  # noqa: E402

if int(transformers.__version__.split('.')[0]) >= 5:
    # transformers 5 flattened SiglipVisionModel; the reference (4.52) and the official checkpoints nest it under
    # .vision_model, so wrap it back (as tests/fixtures/reference/generate.py does).
    class _Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.vision_model = inner

    class _Encoder:
        @staticmethod
        def from_pretrained(path):
            return _Wrap(transformers.SiglipVisionModel.from_pretrained(path))

    wt.SiglipVisionModel = _Encoder
    wt.Siglip2VisionModel = lambda cfg: _Wrap(transformers.Siglip2VisionModel(cfg))

# 2. model: WinTok.from_checkpoint's steps ---------------------------------------------------------------------
args = Args()
args.load_state_dict(ckpt['args'])
if a.teacher:
    args.model = a.teacher
args.device = 'cpu'
model = wt.WinTok(args)
missing, unexpected = model.load_state_dict(trainer['unitok'], strict=True)
model.eval()
size = args.img_size
with torch.no_grad():
    out = model(torch.rand(2, 3, size, size) * 2 - 1)
assert torch.isfinite(out['recon']).all(), 'the loaded model reconstructs non-finite values'
ok('model', f"WinTok({args.num_latent_tokens} latent tokens, vocab {args.vocab_size}, decoder {args.decoder_rec_depth}x"
            f"{args.decoder_rec_hidden_size}) strict load, forward {tuple(out['recon'].shape)}")

# 3. discriminator ----------------------------------------------------------------------------------------------
dino_path = a.dino or args.dino_path
if dino_path.endswith('.safetensors'):
    from safetensors.torch import load_file
    converted = os.path.join(tempfile.mkdtemp(), 'dino.pth')
    torch.save(load_file(dino_path), converted)
    dino_path = converted
args.dino_path = dino_path
dino_state = torch.load(dino_path, map_location='cpu')
width = dino_state['cls_token'].shape[-1]
if width != 384:
    # DinoDiscV2 takes its backbone by name; build_discriminator asks for 'vit_small'. Register the backbone the run
    # trained with (its shapes from the weights) and have build_discriminator ask for it.
    depth = len({k.split('.')[1] for k in dino_state if k.startswith('blocks.')})
    heads = a.dino_heads or max(1, width // 64)
    ratio = dino_state['blocks.0.mlp.fc1.weight'].shape[0] / width

    def vit_run_backbone(patch_size=16, num_register_tokens=0, **kwargs):
        return rdinov2.DinoVisionTransformer(patch_size=patch_size, embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=ratio,
                                             block_fn=partial(rdinov2.Block, attn_class=rdinov2.MemEffAttention),
                                             num_register_tokens=num_register_tokens, **kwargs)

    rdinov2.vit_run_backbone = vit_run_backbone
    rmodels.DinoDiscV2 = partial(rdiscrim.DinoDiscV2, dino_size='vit_run_backbone')
disc = rmodels.build_discriminator(args)
disc.load_state_dict(trainer['disc'], strict=True)
ok('disc', f'DinoDiscV2 (backbone width {width}) strict load of {len(trainer["disc"])} tensors')

# 4. optimizers -------------------------------------------------------------------------------------------------
for key, name, module in (('unitok_optim', 'weunitok', model), ('disc_optim', 'disc', disc)):
    amp = build_optimizer(args, name, module)
    amp.load_state_dict(trainer[key], strict=True)
    params = [p for group in amp.optimizer.param_groups for p in group['params']]
    for index, moments in trainer[key]['optimizer']['state'].items():
        for moment in ('exp_avg', 'exp_avg_sq'):
            assert moments[moment].shape == params[index].shape, \
                f'{key} state[{index}][{moment}] is {tuple(moments[moment].shape)}, its parameter {tuple(params[index].shape)}'
    ok(key, f'{len(params)} parameters in {len(amp.optimizer.param_groups)} groups, {len(trainer[key]["optimizer"]["state"])} with moments, '
            f'shapes match the reference model')

# 5. the trainer's config, as Trainer.load_state_dict(strict=True) compares it ------------------------------------
expected = {'dcrit': args.dcrit, 'wei_l1': args.l1, 'wei_l2': args.l2, 'wei_lpips': args.lp, 'wei_disc': args.ld,
            'wei_clip': args.lc, 'wei_distill': args.ldistill, 'bcr': args.bcr}
assert trainer['config'] == expected, f"ckpt['trainer']['config'] {trainer['config']} != {expected}"
ok('config', str(trainer['config']))
print(f'OK: the reference code (torch {torch.__version__}, transformers {transformers.__version__}) reads {a.checkpoint}')
