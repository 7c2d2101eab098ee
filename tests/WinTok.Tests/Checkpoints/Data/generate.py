"""Writes small torch.save-style checkpoints for the C# checkpoint reader tests, without torch.

torch is not installed on the development machines, so this script fakes just enough of it: stub modules
`torch` and `torch._utils` are registered in sys.modules, holding storage classes, dtype objects and
functions with torch's qualified names. pickle then emits the same GLOBAL/BINPERSID/REDUCE stream that
torch.save writes (protocol 2 by default), and the zip layout copies torch's: ZIP_STORED entries named
`<archive>/data.pkl`, `<archive>/data/<key>`, `<archive>/byteorder`, `<archive>/version`, ..., with each
entry's data aligned to 64 bytes through a padding extra field (torch/csrc/jit/serialization).

`expected.json` records, for every tensor of every file, its dtype, shape and row-major values as this
script computed them from the raw storage and the view's offset/stride, so the C# test does not need to
repeat the arithmetic.

Run from anywhere: python3 generate.py  (stdlib only; output lands beside this script).
"""
import collections
import io
import json
import os
import pathlib
import pickle
import struct
import sys
import types
import zipfile

OUT = os.path.dirname(os.path.abspath(__file__))

torch = types.ModuleType('torch')
torch_utils = types.ModuleType('torch._utils')
torch._utils = torch_utils
sys.modules['torch'] = torch
sys.modules['torch._utils'] = torch_utils

# name -> (struct packer, element size); bfloat16 keeps the high half of a float32, which is exact for the
# values used below.
PACKERS = {
    'FloatStorage': (lambda v: struct.pack('<f', v), 4, 'float32'),
    'DoubleStorage': (lambda v: struct.pack('<d', v), 8, 'float64'),
    'HalfStorage': (lambda v: struct.pack('<e', v), 2, 'float16'),
    'BFloat16Storage': (lambda v: struct.pack('<f', v)[2:], 2, 'bfloat16'),
    'LongStorage': (lambda v: struct.pack('<q', v), 8, 'int64'),
    'IntStorage': (lambda v: struct.pack('<i', v), 4, 'int32'),
    'ShortStorage': (lambda v: struct.pack('<h', v), 2, 'int16'),
    'CharStorage': (lambda v: struct.pack('<b', v), 1, 'int8'),
    'ByteStorage': (lambda v: struct.pack('<B', v), 1, 'uint8'),
    'BoolStorage': (lambda v: struct.pack('<?', v), 1, 'bool'),
}

for _name in PACKERS:
    setattr(torch, _name, type(_name, (), {'__module__': 'torch'}))


class dtype:
    """torch.dtype pickles as a bare global (`torch.bfloat16`): its __reduce__ returns its attribute name."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name


dtype.__module__ = 'torch'
for _name in ('float32', 'bfloat16', 'float16'):
    setattr(torch, _name, dtype(_name))


class Size(tuple):
    def __reduce__(self):
        return (Size, (tuple(self),))


Size.__module__ = 'torch'
torch.Size = Size


def _make_function(module, name):
    def f(*args):
        raise RuntimeError('stub only')
    f.__module__ = module.__name__
    f.__name__ = f.__qualname__ = name
    setattr(module, name, f)
    return f


_rebuild_tensor_v2 = _make_function(torch_utils, '_rebuild_tensor_v2')
_rebuild_parameter = _make_function(torch_utils, '_rebuild_parameter')
_rebuild_parameter_with_state = _make_function(torch_utils, '_rebuild_parameter_with_state')
_rebuild_qtensor = _make_function(torch_utils, '_rebuild_qtensor')


class Storage:
    def __init__(self, kind, values):
        self.kind = kind
        self.values = list(values)
        self.key = None

    def data(self):
        pack = PACKERS[self.kind][0]
        return b''.join(pack(v) for v in self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False, state=None):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.parameter = parameter
        self.state = state

    def __reduce_ex__(self, protocol):
        if not self.parameter:
            return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False,
                                         collections.OrderedDict()))
        # nn.Parameter.__reduce_ex__: (_rebuild_parameter, (data, requires_grad, backward_hooks))
        data = Tensor(self.storage, self.offset, self.size, self.stride)
        if self.state is not None:
            # A Parameter carrying Python attributes (torch >= 2.0)
            return (_rebuild_parameter_with_state, (data, True, collections.OrderedDict(), self.state))
        return (_rebuild_parameter, (data, True, collections.OrderedDict()))

    def values(self):
        out = []

        def walk(dim, at):
            if dim == len(self.size):
                out.append(self.storage.values[at])
                return
            for i in range(self.size[dim]):
                walk(dim + 1, at + i * self.stride[dim])
        walk(0, self.offset)
        return out

    def expected(self):
        values = [bool(v) if self.storage.kind == 'BoolStorage' else v for v in self.values()]
        return {'dtype': PACKERS[self.storage.kind][2], 'shape': list(self.size), 'values': values}


class QTensor:
    """A quantized tensor: its rebuild function is one the C# reader does not support."""

    def __init__(self, storage):
        self.storage = storage

    def __reduce_ex__(self, protocol):
        return (_rebuild_qtensor, (self.storage, 0, (2,), (1,), ('per_tensor_affine', 0.1, 0), False,
                                   collections.OrderedDict()))


def contiguous(storage, size):
    stride, step = [], 1
    for s in reversed(size):
        stride.insert(0, step)
        step *= s
    return Tensor(storage, 0, size, stride)


class _Pickler(pickle.Pickler):
    """torch.save's persistent_id: ('storage', storage_type, key, location, numel)."""

    def __init__(self, file, protocol, storages, missing_keys=()):
        super().__init__(file, protocol=protocol)
        self.storages = storages
        self.missing_keys = set(missing_keys)

    def persistent_id(self, obj):
        if not isinstance(obj, Storage):
            return None
        if obj.key is None:
            obj.key = str(len(self.storages))
            self.storages.append(obj)
        return ('storage', getattr(torch, obj.kind), obj.key, 'cpu', len(obj.values))


def write_zip(path, archive, obj, protocol=2, skip_storage_keys=(), write_pickle=True):
    storages = []
    buf = io.BytesIO()
    _Pickler(buf, protocol, storages).dump(obj)
    for s in storages:
        s.key = None  # reset so the same Storage object can go into another file
    entries = []
    if write_pickle:
        entries.append(('data.pkl', buf.getvalue()))
    entries += [('.format_version', b'1'), ('.storage_alignment', b'64'), ('byteorder', b'little')]
    entries += [('data/%d' % i, s.data()) for i, s in enumerate(storages) if str(i) not in skip_storage_keys]
    entries += [('version', b'3\n'), ('.data/serialization_id', b'0' * 40)]
    with open(path, 'wb') as f, zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(archive + '/' + name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            # torch pads each local header with an 'FB' extra field so that the data starts at a multiple of 64.
            header = 30 + len(info.filename.encode())
            pad = (-(f.tell() + header + 4)) % 64
            info.extra = b'FB' + struct.pack('<H', pad) + b'\0' * pad
            z.writestr(info, data)


class ConfigChoice:
    """A class the reader knows nothing about, pickled through NEWOBJ + BUILD like any plain object."""

    def __init__(self, value):
        self.value = value


ConfigChoice.__module__ = 'utils.config'
sys.modules['utils'] = types.ModuleType('utils')
sys.modules['utils.config'] = types.ModuleType('utils.config')
sys.modules['utils.config'].ConfigChoice = ConfigChoice


def views_state_dict():
    base = Storage('FloatStorage', [float(i) for i in range(12)])        # viewed as (3, 4)
    sd = collections.OrderedDict()
    sd['base'] = contiguous(base, (3, 4))
    sd['base_t'] = Tensor(base, 0, (4, 3), (1, 4))                         # base.t(): same storage
    sd['slice'] = Tensor(base, 5, (2, 2), (4, 1))                          # base[1:, 1:3]
    sd['tail'] = Tensor(base, 8, (4,), (1,))                               # base.view(-1)[8:], contiguous
    sd['bf16'] = contiguous(Storage('BFloat16Storage', [1.5, -2.0, 0.25, 3.0, 96.0, -0.0078125]), (2, 3))
    sd['fp16'] = contiguous(Storage('HalfStorage', [0.5, -1.25, 65504.0, 6.103515625e-05]), (4,))
    sd['f64'] = contiguous(Storage('DoubleStorage', [1e-300, -2.5, 1e300]), (3,))
    sd['i64'] = contiguous(Storage('LongStorage', [-(2 ** 62), 7, 2 ** 40]), (3, 1))
    sd['i32'] = contiguous(Storage('IntStorage', [-(2 ** 31), 2 ** 31 - 1]), (2,))
    sd['i16'] = contiguous(Storage('ShortStorage', [-32768, 12345]), (2,))
    sd['i8'] = contiguous(Storage('CharStorage', [-128, 127, 0]), (3,))
    sd['u8'] = contiguous(Storage('ByteStorage', [0, 200, 255]), (3,))
    sd['mask'] = contiguous(Storage('BoolStorage', [True, False, True, True]), (2, 2))
    sd['scalar'] = Tensor(Storage('FloatStorage', [42.0]), 0, (), ())
    sd['empty'] = Tensor(Storage('FloatStorage', []), 0, (0, 3), (3, 1))
    return sd


def views_args():
    args = collections.OrderedDict()
    args['model'] = '/mnt/somewhere/siglip2-so400m-patch16-256'
    args['dtype'] = torch.bfloat16
    args['num_latent_tokens'] = 4
    args['vocab_size'] = 16384
    args['big'] = 2 ** 70                 # LONG1
    args['negative'] = -100000            # BININT
    args['lr'] = 1e-4
    args['fp16'] = False
    args['bf16'] = True
    args['val_data'] = None
    args['betas'] = (0.9, 0.95)
    args['sizes'] = [1, 2, 3, 4]
    args['nested'] = {'a': 1, 'b': [None, 'x']}
    args['blob'] = b'\x00\x01\x02'
    args['choice'] = ConfigChoice('gn')
    args['path'] = pathlib.PurePosixPath('/tmp/x')
    args['image_shape'] = torch.Size([3, 256, 256])
    args['tags'] = {'only'}               # protocol 2: builtins.set([...]); protocol 4: EMPTY_SET + ADDITEMS
    return args


def main():
    expected = {}

    sd = views_state_dict()
    ckpt = {'args': views_args(), 'epoch': 3,
            'trainer': {'config': {'wei_l1': 0.2}, 'unitok': sd,
                        'disc': collections.OrderedDict(w=contiguous(Storage('FloatStorage', [9.0]), (1,)))}}
    write_zip(os.path.join(OUT, 'views.pth'), 'views', ckpt)
    # The same checkpoint through pickle protocol 4: FRAME, STACK_GLOBAL, MEMOIZE, SHORT_BINUNICODE, ...
    write_zip(os.path.join(OUT, 'views_protocol4.pth'), 'archive', ckpt, protocol=4)
    expected['views'] = {k: t.expected() for k, t in sd.items()}

    params = collections.OrderedDict()
    w = Storage('FloatStorage', [0.5 * i for i in range(6)])
    params['linear.weight'] = Tensor(w, 0, (2, 3), (3, 1), parameter=True)
    params['linear.bias'] = Tensor(Storage('FloatStorage', [1.0, -1.0]), 0, (2,), (1,), parameter=True)
    params['norm.running_mean'] = contiguous(Storage('HalfStorage', [0.5, 0.25]), (2,))
    params['norm.weight'] = Tensor(Storage('BFloat16Storage', [2.0, -0.5]), 0, (2,), (1,), parameter=True,
                                   state={'_is_hf_initialized': True})
    write_zip(os.path.join(OUT, 'parameters.pth'), 'parameters', params)
    expected['parameters'] = {k: t.expected() for k, t in params.items()}

    small = collections.OrderedDict(a=contiguous(Storage('FloatStorage', [1.0, 2.0]), (2,)),
                                    b=contiguous(Storage('FloatStorage', [3.0]), (1,)))
    write_zip(os.path.join(OUT, 'missing_storage.pth'), 'missing_storage', small, skip_storage_keys=('1',))
    write_zip(os.path.join(OUT, 'no_data_pkl.pth'), 'no_data_pkl', small, write_pickle=False)
    quantized = collections.OrderedDict(q=QTensor(Storage('CharStorage', [1, 2])))
    write_zip(os.path.join(OUT, 'unsupported_global.pth'), 'unsupported_global', quantized)

    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
