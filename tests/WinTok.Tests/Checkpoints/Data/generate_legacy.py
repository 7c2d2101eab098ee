"""Writes legacy (pre-1.6, non-zip) torch.save files for the C# LegacyPthReader tests, without torch.

It reuses generate.py's stub torch (storage classes, rebuild functions, Storage/Tensor helpers) and writes the layout
of torch/serialization.py `_legacy_save`: five pickles in a row (magic number, protocol version 1001, sys_info, the
object with persistent ids ('storage', storage_type, key, location, numel, view_metadata=None), the storage keys
sorted as strings), then per key its element count as a little-endian int64 and its raw bytes.

  legacy.pth          an OrderedDict of float32 views of one storage (contiguous, transposed, offset), an int64 and a
                      float16 tensor; storage keys '9' and '10' so that string order differs from creation order
  legacy_v1_cuda.pth  torch < 0.4 style: torch._utils._rebuild_tensor (4 arguments) and torch.cuda.FloatStorage, as in
                      old published weights (whose Python 2 strings the real lpips head files in
                      tests/fixtures/lpips-v0.1 cover)

`legacy_expected.json` holds every tensor's dtype, shape and values. Run: python3 generate_legacy.py (stdlib only).
"""
import collections
import json
import os
import pickle
import struct
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (its stub torch modules and helpers; its main() does not run on import)

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

torch_cuda = types.ModuleType('torch.cuda')
sys.modules['torch.cuda'] = torch_cuda
g.torch.cuda = torch_cuda
torch_cuda.FloatStorage = type('FloatStorage', (), {'__module__': 'torch.cuda'})
_rebuild_tensor = g._make_function(g.torch_utils, '_rebuild_tensor')


class V1Tensor(g.Tensor):
    """torch 0.3's Tensor.__reduce__: (_rebuild_tensor, (storage, storage_offset, size, stride))."""

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor, (self.storage, self.offset, self.size, self.stride))


class _LegacyPickler(pickle.Pickler):
    def __init__(self, file, protocol, keys, cuda):
        super().__init__(file, protocol=protocol)
        self.keys, self.cuda, self.storages = keys, cuda, {}

    def persistent_id(self, obj):
        if not isinstance(obj, g.Storage):
            return None
        if obj.key is None:
            obj.key = self.keys[len(self.storages)]
            self.storages[obj.key] = obj
        storage_type = getattr(torch_cuda if self.cuda else g.torch, obj.kind)
        return ('storage', storage_type, obj.key, 'cuda:0' if self.cuda else 'cpu', len(obj.values), None)


def write_legacy(path, obj, keys, cuda=False):
    with open(path, 'wb') as f:
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION,
                       {'protocol_version': PROTOCOL_VERSION, 'little_endian': True, 'type_sizes': {'short': 2, 'int': 4, 'long': 4}}):
            pickle.dump(header, f, protocol=2)
        pickler = _LegacyPickler(f, 2, keys, cuda)
        pickler.dump(obj)
        ordered = sorted(pickler.storages)          # torch sorts the keys as strings
        pickle.dump(ordered, f, protocol=2)
        for key in ordered:
            storage = pickler.storages[key]
            f.write(struct.pack('<q', len(storage.values)))
            f.write(storage.data())
    for storage in pickler.storages.values():
        storage.key = None


def main():
    out = os.path.dirname(os.path.abspath(__file__))
    weights = g.Storage('FloatStorage', [0.5 * i for i in range(6)])
    counts = g.Storage('LongStorage', [3, -1, 7])
    halves = g.Storage('HalfStorage', [0.25, -2.0, 1.5, 8.0])
    tensors = collections.OrderedDict([
        ('weight', g.contiguous(weights, (2, 3))),
        ('weight_t', g.Tensor(weights, 0, (3, 2), (1, 3))),
        ('tail', g.Tensor(weights, 4, (2,), (1,))),
        ('counts', g.contiguous(counts, (3,))),
        ('half', g.contiguous(halves, (2, 2))),
    ])
    write_legacy(os.path.join(out, 'legacy.pth'), tensors, keys=['9', '10', '11'])

    old = g.Storage('FloatStorage', [1.0, -1.0, 2.0, -2.0])
    v1 = collections.OrderedDict([('lin0.model.1.weight', V1Tensor(old, 0, (1, 4, 1, 1), (4, 1, 1, 1)))])
    write_legacy(os.path.join(out, 'legacy_v1_cuda.pth'), v1, keys=['140234'], cuda=True)

    expected = {
        'legacy': {name: t.expected() for name, t in tensors.items()},
        'legacy_v1_cuda': {name: t.expected() for name, t in v1.items()},
    }
    with open(os.path.join(out, 'legacy_expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)


if __name__ == '__main__':
    main()
