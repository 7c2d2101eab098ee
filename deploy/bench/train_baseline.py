"""The reference's training step, timed: markywg/WinTok @ eb0452e examples/train_tokenizer/trainer.py
`Trainer.train_step` (with train.py's schedules and utils/optimizer.py's AmpOptimizer), one GPU, random weights,
bf16 autocast and TF32 as the reference trains (issue 12 item 8), so that `wintok-bench train` can be compared with
it in the same run.

Built as train.py main() builds it (the DDP wrapper, data pipeline, visualizer and tensorboard left out; on one
process DDP would only add its hooks): build_wintok, build_discriminator (DINOv2 ViT-S/14 `vit_small`, random
weights written to a file because DinoDiscV2 loads one), build_optimizer for both, LRScheduler, the reference LPIPS
(random VGG16 + heads, written to a file), and the Trainer, whose teacher is `SiglipVisionModel.from_pretrained` of a
random so400m/16-256 SigLIP folder made here (the same folder seeds the encoder, as in real training).

Two phases, each: --warmup iterations, then --iters timed iterations (make both multiples of --grad-accu so that
optimizer steps are timed in proportion), batch --batch (`local_bs`), random images in [-1, 1] already on the GPU:
  generator : iterations after the LR warm-up, before the discriminator starts (generator losses only);
  full      : iterations after the discriminator's start and warm-up (warmup_disc_schedule 1, no blur): the whole
              loss set with the adaptive weight, the discriminator step with LeCAM and BCR.
Each phase reports images/s, torch.cuda.max_memory_allocated / reserved since the phase began, and the device's peak
used memory sampled through NVML (the way `wintok-bench train` measures its own).

Output: `BASELINE train ...` lines. See deploy/gpu/README.md.
"""
import argparse
import os
import time

import refbench
from refbench import emit, note, step

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('--ref', default=None)
ap.add_argument('--preset', default='so400m-16-256', choices=['so400m-16-256', 'tiny'])
ap.add_argument('--semantic-tokens', type=int, default=32)
ap.add_argument('--batch', type=int, default=32)
ap.add_argument('--grad-accu', type=int, default=4)
ap.add_argument('--warmup', type=int, default=4)
ap.add_argument('--iters', type=int, default=8)
ap.add_argument('--phases', default='generator,full')
ap.add_argument('--precision', default='bf16', choices=['bf16', 'fp32'], help='bf16 autocast + TF32 (reference) or fp32')
ap.add_argument('--workdir', default='/tmp/wintok-bench')
ap.add_argument('--device', default=None)
ap.add_argument('--profile-iters', type=int, default=0,
                help='after the timed iterations, this many more under torch.profiler: GPU kernel time against wall time, top kernels')
a = ap.parse_args()

ref = refbench.find_ref(a.ref)
stubs = refbench.install_stubs()
refbench.ensure_timm(ref)
wintok_root = os.path.join(ref, 'WinTok')
refbench.add_reference(wintok_root, ['utils', 'data', 'examples', 'examples.train_tokenizer'])
refbench.inert_module('data.dataset', functions=['build_clip_transforms', 'build_vae_transforms', 'load_data', 'pil_load'])
refbench.inert_module('utils.visualizer', functions=['setup_visualizer'])

import torch  # noqa: E402

device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
emit('train', what='environment', device=refbench.device_name(), stubs=','.join(stubs) or 'none',
     **refbench.versions('torch', 'torchvision', 'transformers', 'timm', 'xformers'))

import models as rmodels  # noqa: E402
import models.wintok as wintok_module  # noqa: E402
import models.discrim as rdiscrim  # noqa: E402
import models.layers.attention as rattention  # noqa: E402
from models.modules import LPIPS  # noqa: E402
from models.modules.lpips import Vgg16, NetLinLayer  # noqa: E402
from utils.config import Args  # noqa: E402
from utils.optimizer import build_optimizer  # noqa: E402
from utils.scheduler import LRScheduler  # noqa: E402
import examples.train_tokenizer.trainer as rtrainer  # noqa: E402

refbench.nest_siglip_classes(wintok_module)
note('DINOv2 attention: %s' % ('xformers memory-efficient' if rattention.XFORMERS_AVAILABLE else 'plain softmax (xformers absent)'))

PRESETS = {
    'so400m-16-256': dict(encoder=refbench.SO400M_16_256, decoder=(27, 16, 1152, 4304), vocab=(16384, 32, 4)),
    'tiny': dict(encoder=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              image_size=64, patch_size=8), decoder=(2, 4, 64, 128), vocab=(256, 16, 4)),
}
preset = PRESETS[a.preset]
os.makedirs(a.workdir, exist_ok=True)

args = Args()
args.seed = 0
args.device = str(device)
args.seed_everything()  # the reference's seeding and cudnn.benchmark = True
args.model = refbench.siglip_folder(os.path.join(a.workdir, 'siglip-' + a.preset), **preset['encoder'])
args.img_size = preset['encoder']['image_size']
args.num_latent_tokens = a.semantic_tokens
(args.decoder_rec_depth, args.decoder_rec_num_heads, args.decoder_rec_hidden_size,
 args.decoder_rec_intermediate_size) = preset['decoder']
args.vocab_size, args.vocab_width, args.num_codebooks = preset['vocab']
args.local_bs = args.vae_local_bs = args.global_bs = a.batch
args.grad_accu = a.grad_accu
args.bf16 = a.precision == 'bf16'
args.tf32 = a.precision == 'bf16'
Args.set_tf32(args.tf32)

# Random weight files for what the reference loads from files: the LPIPS-VGG (keys net.sliceN.M.*, lins.K.*) and
# the DINOv2 ViT-S/14 backbone.
lpips_path = os.path.join(a.workdir, 'lpips_random.pth')
probe = torch.nn.Module()
probe.net = Vgg16()
probe.lins = torch.nn.ModuleList([NetLinLayer(c) for c in [64, 128, 256, 512, 512]])
torch.save(probe.state_dict(), lpips_path)
dino_path = os.path.join(a.workdir, 'dinov2_vits14_random.pth')
torch.save(rdiscrim.make_dinov2_model(arch_name='vit_small').state_dict(), dino_path)
args.lpips_path, args.dino_path = lpips_path, dino_path
del probe

start = time.time()
unitok = rmodels.build_wintok(args)
disc = rmodels.build_discriminator(args)
unitok_optim = build_optimizer(args, 'weunitok', unitok)
disc_optim = build_optimizer(args, 'disc', disc)
NB = 10000  # iterations per epoch (only the schedules read it)
max_iter, warmup_iter = args.epoch * NB, args.warmup_ep * NB
disc_start, disc_warmup = args.disc_start_ep * NB, args.disc_warmup_ep * NB
unitok_scheduler = LRScheduler(unitok_optim.optimizer, {
    'lr': args.lr, 'type': args.schedule, 'start_factor': args.lr_start_ratio, 'end_factor': args.lr_end_ratio,
    'warmup_iter': warmup_iter, 'max_iter': max_iter})
disc_scheduler = LRScheduler(disc_optim.optimizer, {
    'lr': args.disc_lr, 'type': args.schedule, 'start_factor': args.lr_start_ratio, 'end_factor': args.disc_lr_end_ratio,
    'warmup_iter': disc_warmup, 'max_iter': max_iter - disc_start})
lpips_loss = LPIPS(args.lpips_path).to(args.device)
trainer = rtrainer.Trainer(args=args, unitok=unitok, disc=disc, unitok_optim=unitok_optim, disc_optim=disc_optim,
                           lpips_loss=lpips_loss)
note('reference trainer built in %.1f s: generator %d parameters, discriminator heads %d, teacher %d' % (
    time.time() - start, sum(p.numel() for p in unitok.parameters()), sum(p.numel() for p in disc.parameters()),
    sum(p.numel() for p in trainer.teacher.parameters())))


class NoLog(object):
    def update(self, **kwargs):
        pass


generator = torch.Generator(device=device).manual_seed(1)
images = [torch.rand(a.batch, 3, args.img_size, args.img_size, device=device, generator=generator) * 2 - 1 for _ in range(2)]
text = torch.zeros(a.batch, 1, dtype=torch.long, device=device)


def iteration(global_iter):
    """train.py train_one_ep's body for one iteration (schedules, stepping, the trainer's step)."""
    d_iter = global_iter - disc_start
    unitok_scheduler.step(global_iter)
    if d_iter >= 0:
        disc_scheduler.step(d_iter)
    stepping = (global_iter + 1) % args.grad_accu == 0
    warmup = 0 if d_iter < 0 else min(1.0, d_iter / disc_warmup)
    fade = 1 - (0 if d_iter < 0 else min(1.0, d_iter / (disc_warmup * 2)))
    trainer.train_step(img=images[global_iter % 2], text=text, global_iter=global_iter, stepping=stepping,
                       metric_logger=NoLog(), warmup_disc_schedule=warmup, fade_blur_schedule=fade, logging_config=None)


# first iterations: generator only after the LR warm-up; full: after the discriminator's warm-up and blur fade
# (iterations that are not multiples of 50, where the reference logs, and aligned on accumulation windows)
FIRST = {'generator': int(warmup_iter) + 4 * a.grad_accu, 'full': int(disc_start + 2 * disc_warmup) + 8 * a.grad_accu}
for phase in [p.strip() for p in a.phases.split(',') if p.strip()]:
    with step('train_' + phase):
        first = FIRST[phase] - FIRST[phase] % a.grad_accu + a.grad_accu
        if first % 50 == 0:
            first += a.grad_accu
        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with refbench.GpuMemoryPeak() as sampler:
            for i in range(a.warmup):
                iteration(first + i)
            refbench.synchronize()
            clock = time.time()
            for i in range(a.iters):
                iteration(first + a.warmup + i)
            refbench.synchronize()
            seconds = time.time() - clock
        fields = dict(phase=phase, precision=a.precision, preset=a.preset, batch=a.batch, grad_accu=a.grad_accu,
                      iters=a.iters, first_iter=first, img_per_s=a.batch * a.iters / seconds, seconds=seconds,
                      nvml_peak_mib=sampler.peak_mib, nvml_start_mib=sampler.baseline_mib, nvml_source=sampler.source)
        if device.type == 'cuda':
            fields.update(max_allocated_gib=torch.cuda.max_memory_allocated() / 2 ** 30,
                          max_reserved_gib=torch.cuda.max_memory_reserved() / 2 ** 30)
        emit('train', **fields)

        if a.profile_iters > 0 and device.type == 'cuda':
            # How busy the GPU is during the reference's step, and on what: kernel time summed against wall time.
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                refbench.synchronize()
                clock = time.time()
                for i in range(a.profile_iters):
                    iteration(first + a.warmup + a.iters + i)
                refbench.synchronize()
                wall = time.time() - clock
            events = prof.key_averages()
            kernel_ms = sum(e.self_device_time_total for e in events) / 1000
            emit('train', what='profile', phase=phase, iters=a.profile_iters, wall_ms_per_iter=1000 * wall / a.profile_iters,
                 kernel_ms_per_iter=kernel_ms / a.profile_iters)
            print(events.table(sort_by='self_device_time_total', row_limit=25, max_name_column_width=80))
