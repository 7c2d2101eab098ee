"""What the reference baselines (eval_baseline.py, unitok_baseline.py, train_baseline.py) share: where the reference
code is, stand-ins for the imports it needs but that are not installed on the GPU machine, a random SigLIP folder for
its `from_pretrained(args.model)` calls, machine-readable output, and a GPU-memory sampler.

Nothing here takes part in the math: the baselines run the reference's own code (assembled into .gpu/ref by
deploy/bench/assemble-references.sh), with random weights, and only time it.

Output lines start with `BASELINE`, then `key=value` pairs (no spaces inside a value), so the session driver and a
person can grep them. A step that cannot run prints `BASELINE skipped step=<name> reason=<...>` and the script goes on.
"""
import contextlib
import datetime
import importlib
import importlib.machinery
import inspect
import os
import subprocess
import sys
import threading
import time
import traceback
import types
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))


def emit(kind, **fields):
    """One machine-readable line: BASELINE <kind> k=v ... (floats with 4 significant decimals or more)."""
    parts = ['BASELINE', kind]
    for key, value in fields.items():
        if isinstance(value, float):
            value = ('%.6g' % value) if abs(value) < 1e4 else ('%.1f' % value)
        parts.append('%s=%s' % (key, str(value).replace(' ', '_')))
    print(' '.join(parts), flush=True)


def note(text):
    print('# ' + text, flush=True)


@contextlib.contextmanager
def step(name):
    """Runs a step; on any failure prints why (and the traceback to stderr) and carries on with the next step."""
    start = time.time()
    try:
        yield
    except Exception as error:  # noqa: BLE001 - fail soft: the other steps still run
        traceback.print_exc()
        emit('skipped', step=name, reason='%s:%s' % (type(error).__name__, str(error).splitlines()[0][:160] if str(error) else ''))
    finally:
        note('step %s took %.1f s' % (name, time.time() - start))


def find_ref(explicit=None):
    """The reference code assemble-references.sh packed: --ref or $WINTOK_REF (a folder), else .gpu/ref beside this
    script's copy (.gpu/bench) or the repository (deploy/bench), else .gpu/ref.tar.xz unpacked once into /tmp."""
    gpu_dirs = [os.path.join(HERE, '..'), os.path.join(HERE, '..', '..', '.gpu')]
    candidates = [explicit, os.environ.get('WINTOK_REF')] + [os.path.join(d, 'ref') for d in gpu_dirs]
    for c in candidates:
        if c and os.path.isdir(c):
            return os.path.abspath(c)
    for d in gpu_dirs:
        archive = os.path.join(d, 'ref.tar.xz')
        if os.path.isfile(archive):
            import tarfile
            import zlib
            with open(archive, 'rb') as f:
                target = '/tmp/wintok-ref-%08x' % zlib.crc32(f.read())
            if not os.path.exists(os.path.join(target, '.unpacked')):
                with tarfile.open(archive, 'r:xz') as tar:
                    try:
                        tar.extractall(target, filter='data')
                    except TypeError:  # Python without extraction filters
                        tar.extractall(target)
                open(os.path.join(target, '.unpacked'), 'w').close()
            return os.path.join(target, 'ref')
    raise FileNotFoundError('no reference code: run deploy/bench/assemble-references.sh here and carry .gpu '
                            '(or pass --ref / set WINTOK_REF); tried %s and ref.tar.xz there' % [c for c in candidates if c])


def install_stubs():
    """Stand-ins for modules the reference imports but which the GPU machine lacks and which do no math:
    `tap` (typed-argument-parser: Args is only filled in code), `pytz` (log time stamps), `GPUtil` (profiling
    printouts), `ftfy` (text cleaning of open_clip's tokenizer, unused when only images are tokenized).
    Returns the names stubbed."""
    stubbed = []

    def missing(name):
        try:
            importlib.import_module(name)
            return False
        except Exception:  # noqa: BLE001
            return True

    if missing('tap'):
        tap = types.ModuleType('tap')

        class Tap:
            """Class defaults and `class_variables` (annotated attributes in declaration order), no parsing."""

            def __init__(self, *args, **kwargs):
                pass

            @property
            def class_variables(self):
                names = OrderedDict()
                for cls in reversed(type(self).__mro__):
                    for key in getattr(cls, '__annotations__', {}):
                        if not key.startswith('_'):
                            names[key] = {'comment': ''}
                return names

        tap.Tap = Tap
        sys.modules['tap'] = tap
        stubbed.append('tap')
    if missing('pytz'):
        pytz = types.ModuleType('pytz')
        pytz.timezone = lambda name: datetime.timezone(datetime.timedelta(hours=8), name)
        sys.modules['pytz'] = pytz
        stubbed.append('pytz')
    if missing('GPUtil'):
        gputil = types.ModuleType('GPUtil')
        gputil.getGPUs = lambda: []
        sys.modules['GPUtil'] = gputil
        stubbed.append('GPUtil')
    if missing('ftfy'):
        ftfy = types.ModuleType('ftfy')
        ftfy.fix_text = lambda text, **kwargs: text
        ftfy.__version__ = 'stub'
        sys.modules['ftfy'] = ftfy
        stubbed.append('ftfy')
    import torch
    if not hasattr(torch.cuda, 'amp') or not hasattr(torch.cuda.amp, 'autocast'):
        # discrim.py and UniTok call torch.cuda.amp.autocast(enabled=False); newer torch spells it torch.autocast
        torch.cuda.amp.autocast = lambda enabled=True, **kw: torch.autocast('cuda', enabled=enabled, **kw)
        stubbed.append('torch.cuda.amp.autocast')
    return stubbed


def ensure_timm(ref):
    """models/wintok.py imports timm (without using it): where none is installed, the carried timm 1.0.8 serves."""
    try:
        importlib.import_module('timm')
    except ImportError:
        sys.path.append(os.path.join(ref, 'timm-1.0.8'))
        note('timm not installed: using the carried timm 1.0.8')


def add_reference(root, packages=()):
    """Puts a reference checkout first on sys.path and binds its folders without __init__.py to it (so that a
    same-named installed package, e.g. `utils`, does not shadow them)."""
    root = os.path.abspath(root)
    if root not in sys.path:
        sys.path.insert(0, root)
    for name in packages:
        folder = os.path.join(root, *name.split('.'))
        if os.path.isdir(folder) and not os.path.exists(os.path.join(folder, '__init__.py')):
            module = types.ModuleType(name)
            module.__path__ = [folder]
            module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            module.__spec__.submodule_search_locations = [folder]
            sys.modules[name] = module
            if '.' in name:
                parent, child = name.rsplit('.', 1)
                if parent in sys.modules:
                    setattr(sys.modules[parent], child, module)


def inert_module(name, **attributes):
    """A module whose functions raise if called: for imports the benchmark never uses (webdataset pipeline, ...)."""
    def unused(*args, **kwargs):
        raise RuntimeError('%s is not used by the benchmark' % name)
    module = types.ModuleType(name)
    for attribute in attributes.get('functions', ()):
        setattr(module, attribute, unused)
    sys.modules[name] = module
    return module


SO400M_16_256 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                     image_size=256, patch_size=16)


def siglip_folder(path, **shape):
    """A local HF folder with a random SigLIP vision tower of this shape (config.json + weights), made once: what
    the reference's `SiglipVisionModel.from_pretrained(args.model)` reads for the encoder and the teacher."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    if os.path.exists(os.path.join(path, 'config.json')) and any(f.endswith('.safetensors') or f.endswith('.bin')
                                                                  for f in os.listdir(path)):
        return path
    import torch
    os.makedirs(path, exist_ok=True)
    start = time.time()
    config = SiglipVisionConfig(**shape)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        with torch.device(device):  # initialising 400M parameters is much faster on the GPU
            model = SiglipVisionModel(config)
    except Exception as error:  # noqa: BLE001 - torch < 2 has no device context; anything else: initialise on the CPU
        note('SigLIP initialised on the CPU (%s: %s)' % (type(error).__name__, error))
        model = SiglipVisionModel(config)
    model.save_pretrained(path)
    del model
    note('random SigLIP %s written to %s in %.1f s' % (shape, path, time.time() - start))
    return path



def nest_siglip_classes(wintok_module):
    """Makes models/wintok.py's SiglipVisionModel / Siglip2VisionModel nest under `.vision_model` when the installed
    transformers flattened them (as tests/fixtures/reference/generate.py does); a no-op for transformers 4.x."""
    import torch
    import transformers

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.vision_model = inner

    def nested(model):
        return model if hasattr(model, 'vision_model') else Wrap(model)

    class Encoder:
        @staticmethod
        def from_pretrained(path, *args, **kwargs):
            return nested(transformers.SiglipVisionModel.from_pretrained(path, *args, **kwargs))

    wintok_module.SiglipVisionModel = Encoder
    wintok_module.Siglip2VisionModel = lambda config: nested(transformers.Siglip2VisionModel(config))


def versions(*names):
    found = OrderedDict(python=sys.version.split()[0])
    for name in names:
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, '__version__', 'present')
        except Exception as error:  # noqa: BLE001
            found[name] = 'missing(%s)' % type(error).__name__
    return found


class GpuMemoryPeak(object):
    """Samples the device's used memory (NVML through pynvml, else nvidia-smi) every `interval` seconds in a thread,
    the same way the C# benchmarks do, so that both sides report a peak measured alike. `peak_mib` is the largest
    sample, `baseline_mib` the first one (memory used before the measured work)."""

    def __init__(self, interval=0.02, index=0):
        self.interval, self.index = interval, index
        self.samples = []
        self._stop = threading.Event()
        self._thread = None
        self.source = None
        self._read = self._reader()

    def _reader(self):
        try:
            import pynvml
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self.source = 'nvml'
            return lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2 ** 20
        except Exception:  # noqa: BLE001
            pass

        def smi():
            out = subprocess.run(['nvidia-smi', '--query-gpu=memory.used', '--format=csv,noheader,nounits', '-i', str(self.index)],
                                 capture_output=True, text=True, timeout=5).stdout
            return float(out.strip().splitlines()[0])
        try:
            smi()
            self.source = 'nvidia-smi'
            self.interval = max(self.interval, 0.1)
            return smi
        except Exception:  # noqa: BLE001
            self.source = 'none'
            return None

    def __enter__(self):
        if self._read is not None:
            self.samples.append(self._read())
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self._read())
            except Exception:  # noqa: BLE001
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.samples.append(self._read())
        return False

    @property
    def peak_mib(self):
        return max(self.samples) if self.samples else -1.0

    @property
    def baseline_mib(self):
        return self.samples[0] if self.samples else -1.0


def synchronize():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device_name():
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'


def signature_accepts(function, name):
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
