# CPU test only (tests/bench-cpu/run.sh puts this folder first on PYTHONPATH): Debian's torch 1.13 lacks
# F.scaled_dot_product_attention, which transformers' SigLIP and the references' attention call on torch >= 2.
import math
try:
    import torch
    import torch.nn.functional as F
    if not hasattr(F, 'scaled_dot_product_attention'):
        def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            s = q @ k.transpose(-2, -1) * (scale if scale is not None else 1.0 / math.sqrt(q.shape[-1]))
            if is_causal:
                n, m = s.shape[-2], s.shape[-1]
                s = s.masked_fill(torch.ones(n, m, dtype=torch.bool, device=s.device).triu(1), float('-inf'))
            if attn_mask is not None:
                s = s.masked_fill(~attn_mask, float('-inf')) if attn_mask.dtype == torch.bool else s + attn_mask
            return torch.softmax(s, dim=-1) @ v
        F.scaled_dot_product_attention = scaled_dot_product_attention
except ImportError:
    pass

# Debian's torch 1.13 cannot import torch.distributed.fsdp under Python 3.11 (a dataclass default error);
# utils/optimizer.py of the reference only imports the class name.
try:
    import sys, types
    import torch.distributed.fsdp  # noqa: F401
except Exception:  # noqa: BLE001
    _fsdp = types.ModuleType('torch.distributed.fsdp')
    class FullyShardedDataParallel(object):
        pass
    _fsdp.FullyShardedDataParallel = FullyShardedDataParallel
    sys.modules['torch.distributed.fsdp'] = _fsdp

# Debian's torch 1.13 CPU autocast cannot run LayerNorm in bfloat16 ("expected scalar type BFloat16"): on the CPU test
# machine autocast is made a no-op so that the bf16 code paths of the scripts still run (in float32). The GPU machine
# runs the real autocast.
try:
    import contextlib
    import torch
    if torch.__version__.startswith('1.'):
        class _NoAutocast(contextlib.ContextDecorator):
            def __init__(self, *args, **kwargs):
                pass
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                return False
        torch.autocast = _NoAutocast
except ImportError:
    pass

# torch 1.13's AdamW has no `fused` argument, which the reference's build_optimizer passes (fuse_opt False).
try:
    import inspect
    import torch
    if 'fused' not in inspect.signature(torch.optim.AdamW.__init__).parameters:
        _AdamW = torch.optim.AdamW
        class AdamW(_AdamW):
            def __init__(self, *args, fused=None, **kwargs):
                super().__init__(*args, **kwargs)
        torch.optim.AdamW = AdamW
except ImportError:
    pass
