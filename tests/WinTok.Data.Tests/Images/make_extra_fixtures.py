# Extra preprocessing fixtures in ../shared/fixtures/preprocess's layout (index.json + expected.safetensors), made with
# the same reference transform as generate.py, for image kinds that fixture set lacks (LA, 1-bit, GIF, BMP, tRNS,
# WebP with alpha, RGBA needing no resize, odd sizes, another CMYK and 16-bit image). Needs Pillow 12.3, torchvision
# 0.26, numpy and safetensors (the GPU machine has them). Usage:
#   python3 make_extra_fixtures.py ../shared/fixtures/preprocess /tmp/extra
#   WINTOK_PREPROCESS_FIXTURES=/tmp/extra dotnet test tests/WinTok.Data.Tests -- --filter-namespace "*Images*"
# The results of one such run are in docs/preprocessing.md.
import os, sys, io, json, hashlib
import numpy as np, torch
from PIL import Image
from torchvision.transforms import Compose, Resize, CenterCrop, ToTensor, Normalize, InterpolationMode
from safetensors.torch import save_file
src, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
tf = Compose([Resize(256, interpolation=InterpolationMode.BICUBIC), CenterCrop(256),
              lambda im: im.convert('RGB'), ToTensor(), Normalize((0.5,) * 3, (0.5,) * 3)])
kite = Image.open(os.path.join(src, 'kite_2560x1600.jpg')).convert('RGB')
cups = Image.open(os.path.join(src, 'cups_2560x1600.jpg')).convert('RGB')
honey = Image.open(os.path.join(src, 'honeywave_1080x1920.jpg')).convert('RGB')
a = kite.resize((900, 562), Image.BICUBIC)
b = cups.resize((999, 667), Image.BICUBIC)
def save(fn, im, **kw):
    im.save(os.path.join(work, fn), **kw)
alpha = Image.linear_gradient('L').rotate(90).resize(a.size)
la = a.convert('L'); la.putalpha(alpha); save('extra_la.png', la)
save('extra_bilevel.png', a.convert('1'))
save('extra_palette.gif', a.convert('P', palette=Image.ADAPTIVE, colors=128))
save('extra_gray_palette.gif', a.convert('L'))
save('extra_palette8.bmp', b.convert('P', palette=Image.ADAPTIVE, colors=256))
save('extra_rgb24.bmp', b)
p = a.convert('P', palette=Image.ADAPTIVE, colors=64); save('extra_palette_trns.png', p, transparency=0)
save('extra_rgb_trns.png', b, transparency=(0, 0, 0))
r = honey.resize((256, 300), Image.BICUBIC); r.putalpha(Image.linear_gradient('L').resize((256, 300))); save('extra_rgba_256x300.png', r)
w = b.copy(); w.putalpha(Image.linear_gradient('L').resize(b.size)); save('extra_rgba_lossless.webp', w, lossless=True)
save('extra_rgba_lossy.webp', w, quality=80)
save('extra_gray_small.png', honey.convert('L').resize((300, 200), Image.BICUBIC))
save('extra_portrait_odd_q75.jpg', honey.resize((777, 1111), Image.BICUBIC), quality=75)
save('extra_progressive_odd.jpg', b, quality=85, progressive=True)
save('extra_tiny_17x9.png', b.resize((17, 9), Image.BICUBIC))
save('extra_tall_300x2000.jpg', honey.resize((300, 2000), Image.BICUBIC), quality=90)
save('extra_cmyk_kite.jpg', a.convert('CMYK'), quality=92)
rgb16 = (np.asarray(b, dtype=np.uint16) * 257)
Image.fromarray(rgb16[:, :, 0]).save(os.path.join(work, 'extra_gray16_ramp.png'))
tensors, meta = {}, {}
for f in sorted(os.listdir(work)):
    if f.endswith(('.json', '.safetensors')): continue
    data = open(os.path.join(work, f), 'rb').read()
    im = Image.open(io.BytesIO(data))
    key = os.path.splitext(f)[0].replace('-', '_').replace('.', '_')
    t = tf(im)
    u8 = torch.round((t * 0.5 + 0.5) * 255).to(torch.uint8)
    tensors[key] = u8.contiguous()
    meta[f] = {'key': key, 'mode': im.mode, 'size': list(im.size), 'format': im.format, 'sha256': hashlib.sha256(data).hexdigest()}
save_file(tensors, os.path.join(work, 'expected.safetensors'))
import PIL, torchvision
json.dump({'transform': 'as ../shared/fixtures/preprocess (generate.py)', 'pillow': PIL.__version__, 'torchvision': torchvision.__version__,
           'images': meta}, open(os.path.join(work, 'index.json'), 'w'), indent=1)
print(len(meta), 'extra fixtures;', {k: v['mode'] for k, v in meta.items()})
