"""Checks that real PyTorch loads a checkpoint written by WinTok's PthWriter (CheckpointFile.WritePyTorch).

Make the file with the C# test that writes the sample training checkpoint when asked:

    WINTOK_WRITE_CHECKPOINT_TO=/tmp/wintok-sample.pth \
        dotnet test tests/WinTok.Tests -c Release -- --filter-method "*KeepsTheSampleForTorchToCheck"

which writes /tmp/wintok-sample.pth, the same content as /tmp/wintok-sample.pth.zip64.pth with every zip record in
ZIP64 form (as files past 4 GiB have), and /tmp/wintok-sample.pth.expected.json (dtypes, shapes and values of every
tensor the C# side wrote). Then, with python + torch only:

    python3 tests/fixtures-tools/check_written_checkpoint.py /tmp/wintok-sample.pth

It loads the file with torch.load(weights_only=False), with weights_only=True (torch >= 1.13), and with mmap=True
(torch >= 2.1, which needs the 64-byte aligned records); checks the reference layout, every tensor bit for bit, the
tied tensor sharing one storage, the args, and that the optimizer states load into real torch.optim.AdamW instances.
Exit code 0 and a final "OK" line mean PyTorch accepts the file.
"""
import collections
import json
import os
import pickletools
import sys
import tempfile
import zipfile

import torch

DTYPES = {
    'Float32': torch.float32, 'Float64': torch.float64, 'Float16': torch.float16, 'BFloat16': torch.bfloat16,
    'Int64': torch.int64, 'Int32': torch.int32, 'Int16': torch.int16, 'Int8': torch.int8, 'Byte': torch.uint8,
    'Bool': torch.bool,
}


def version_at_least(major, minor):
    parts = torch.__version__.split('+')[0].split('.')
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def check_tensors(state_dict, expected, where):
    assert isinstance(state_dict, collections.OrderedDict), f'{where} is a {type(state_dict)}, not an OrderedDict'
    assert list(state_dict.keys()) == list(expected.keys()), f'{where} keys {list(state_dict.keys())}'
    for name, spec in expected.items():
        tensor = state_dict[name]
        assert tensor.dtype == DTYPES[spec['dtype']], f'{where}[{name}] dtype {tensor.dtype}, expected {spec["dtype"]}'
        assert list(tensor.shape) == spec['shape'], f'{where}[{name}] shape {list(tensor.shape)}, expected {spec["shape"]}'
        assert tensor.is_contiguous(), f'{where}[{name}] is not contiguous'
        assert not tensor.requires_grad, f'{where}[{name}] requires grad'
        want = torch.tensor(spec['values'], dtype=torch.float64).reshape(spec['shape'])
        got = tensor.to(torch.float64)
        assert torch.equal(got, want), f'{where}[{name}] values differ:\n{got}\nexpected\n{want}'


def check_args(args):
    assert isinstance(args, collections.OrderedDict), f"args is a {type(args)}, not an OrderedDict"
    assert args['model'] == '/mnt/models/siglip2-so400m-patch16-256', args['model']
    assert args['dtype'] is torch.bfloat16, args['dtype']
    assert args['num_latent_tokens'] == 4 and args['vocab_size'] == 32768
    assert args['lr'] == 1e-4 and args['bf16'] is True and args['val_data'] is None
    assert args['optim_betas'] == (0.9, 0.95), args['optim_betas']
    assert args['sizes'] == [1, 2, 3], args['sizes']
    assert args['nested'] == {'a': 1, 'b': [None, 'x']}, args['nested']
    assert args['seed_space'] == 2 ** 40 and args['huge'] == 2 ** 70 and args['negative'] == -100000
    assert args['negative_wide'] == -2 ** 40, args['negative_wide']
    assert args['blob'] == b'\x00\x01\x02\xff', args['blob']
    assert args['unicode'] == 'päth→ø', args['unicode']


def check_optimizer(optimizer_state, where):
    assert set(optimizer_state.keys()) == {'state', 'param_groups'}, f'{where} keys {list(optimizer_state.keys())}'
    for index, moments in optimizer_state['state'].items():
        assert isinstance(index, int), f'{where} state key {index!r} is not an int'
        assert list(moments.keys())[:3] == ['step', 'exp_avg', 'exp_avg_sq'], f'{where}[{index}] keys {list(moments.keys())}'
        assert moments['step'].dim() == 0 and moments['step'].dtype == torch.float32, f'{where}[{index}] step'
    # The moments must fit parameters of their shapes: build them and let AdamW load the state.
    shapes = {}
    for group in optimizer_state['param_groups']:
        for index in group['params']:
            shapes[index] = optimizer_state['state'][index]['exp_avg'].shape if index in optimizer_state['state'] else (1,)
    params = {index: torch.nn.Parameter(torch.zeros(shape, dtype=optimizer_state['state'][index]['exp_avg'].dtype
                                                    if index in optimizer_state['state'] else torch.float32))
              for index, shape in shapes.items()}
    groups = [{'params': [params[i] for i in group['params']]} for group in optimizer_state['param_groups']]
    optimizer = torch.optim.AdamW(groups)
    optimizer.load_state_dict(optimizer_state)
    loaded = optimizer.state_dict()
    for index, moments in optimizer_state['state'].items():
        for key, value in moments.items():
            assert torch.equal(loaded['state'][index][key].to(value.dtype), value), f'{where}[{index}][{key}] changed on load'
    for saved, group in zip(optimizer_state['param_groups'], loaded['param_groups']):
        for key in ('lr', 'betas', 'eps', 'weight_decay', 'amsgrad', 'params'):
            assert group[key] == saved[key], f'{where} param group {key}: {group[key]} vs {saved[key]}'


def check(ckpt, expected, label):
    assert list(ckpt.keys()) == ['args', 'epoch', 'iter', 'trainer'], f'{label}: top-level keys {list(ckpt.keys())}'
    assert ckpt['epoch'] == expected['epoch'] and ckpt['iter'] == expected['iter']
    trainer = ckpt['trainer']
    assert list(trainer.keys()) == ['config', 'unitok', 'disc', 'unitok_optim', 'disc_optim'], list(trainer.keys())
    assert trainer['config'] == {'dcrit': 'hinge', 'wei_l1': 0.2, 'wei_disc': 0.6}, trainer['config']
    check_args(ckpt['args'])
    check_tensors(trainer['unitok'], expected['unitok'], 'unitok')
    check_tensors(trainer['disc'], expected['disc'], 'disc')
    first, second = expected['tied']
    a, b = trainer['unitok'][first], trainer['unitok'][second]
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() if hasattr(a, 'untyped_storage') \
        else a.storage().data_ptr() == b.storage().data_ptr(), f'{first} and {second} do not share a storage'
    check_optimizer(trainer['unitok_optim']['optimizer'], 'unitok_optim')
    check_optimizer(trainer['disc_optim']['optimizer'], 'disc_optim')
    model = trainer['unitok']
    print(f'{label}: OK ({len(model)} unitok tensors, {len(trainer["unitok_optim"]["optimizer"]["state"])} optimizer states)')


def main(path):
    with open(path + '.expected.json') as f:
        expected = json.load(f)
    check_file(path, expected)
    # The test also writes the same content with ZIP64 records (what files past 4 GiB carry).
    if os.path.exists(path + '.zip64.pth'):
        check_file(path + '.zip64.pth', expected)


# The opcodes torch 2.x's weights_only unpickler (torch/_weights_only_unpickler.py) implements.
WEIGHTS_ONLY_OPCODES = set(
    'GLOBAL NEWOBJ REDUCE BUILD APPEND APPENDS SETITEM SETITEMS MARK TUPLE TUPLE1 TUPLE2 TUPLE3 NONE NEWFALSE '
    'NEWTRUE EMPTY_TUPLE EMPTY_LIST EMPTY_DICT EMPTY_SET BININT BININT1 BININT2 BINFLOAT BINUNICODE SHORT_BINSTRING '
    'BINPERSID BINGET LONG_BINGET BINPUT LONG_BINPUT LONG1 PROTO STOP'.split())


def check_file(path, expected):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        assert names[0] == 'archive/data.pkl', names
        assert z.testzip() is None, 'a record fails its CRC'
        print('records:', ', '.join(names))
        opcodes = {op.name for op, _, _ in pickletools.genops(z.read('archive/data.pkl'))}
        assert opcodes <= WEIGHTS_ONLY_OPCODES, f'opcodes weights_only cannot read: {opcodes - WEIGHTS_ONLY_OPCODES}'

    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    check(ckpt, expected, 'weights_only=False')
    if version_at_least(1, 13):
        load_weights_only(path, ckpt, expected, mmap=False)
    if version_at_least(2, 1):
        load_weights_only(path, ckpt, expected, mmap=True)
    print(f'OK: torch {torch.__version__} loads {path}')


def load_weights_only(path, ckpt, expected, mmap):
    label = 'weights_only=True' + (', mmap=True' if mmap else '')
    options = {'mmap': True} if mmap else {}
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True, **options)
    except Exception as error:
        # Older torch versions allow fewer globals (1.13: no dtypes) and opcodes. If torch refuses its own
        # torch.save of the same content, the limit is that version's, not the file's.
        with tempfile.TemporaryDirectory() as folder:
            own = os.path.join(folder, 'own.pth')
            torch.save(ckpt, own)
            try:
                torch.load(own, map_location='cpu', weights_only=True, **options)
            except Exception as own_error:
                print(f'{label}: SKIPPED, torch {torch.__version__} also refuses its own torch.save of this content '
                      f'({str(own_error)[-120:]}); our file: {str(error)[-120:]}')
                return
        raise
    check(loaded, expected, label)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
