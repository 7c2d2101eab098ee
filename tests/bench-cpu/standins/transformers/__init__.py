"""CPU test stand-in for Hugging Face transformers (not packaged for Debian, and the GPU machine has 5.17).

Only the surface the reference code and the baselines touch, shaped like transformers >= 5 (SiglipVisionModel and
Siglip2VisionModel are flat: `embeddings`, `encoder`, `post_layernorm`, `head`, no `.vision_model`), so that the
baselines' wrapping is exercised as it is on the GPU machine. The numbers are a plausible pre-LN ViT, not SigLIP's
exact math: this exists to test the scripts' plumbing, never to produce figures.
"""
import json
import os
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

__version__ = '0.0-standin'


class _Config(object):
    defaults = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    num_channels=3, image_size=224, patch_size=16, layer_norm_eps=1e-6)

    def __init__(self, **kwargs):
        for key, value in dict(self.defaults, **kwargs).items():
            setattr(self, key, value)

    def update(self, values):
        for key, value in values.items():
            setattr(self, key, value)

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items() if not k.startswith('_')}

    def save_pretrained(self, path):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, 'config.json'), 'w') as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        with open(os.path.join(path, 'config.json')) as f:
            return cls(**dict(json.load(f), **kwargs))


class SiglipVisionConfig(_Config):
    pass


class Siglip2VisionConfig(_Config):
    pass


class _Out(types.SimpleNamespace):
    pass


class _Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c.hidden_size
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.heads = c.num_attention_heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        return self.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.fc2 = nn.Linear(c.intermediate_size, c.hidden_size)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class _Layer(nn.Module):
    """SigLIP's key names: layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1/fc2."""

    def __init__(self, c):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.self_attn = _Attention(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _Mlp(c)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([_Layer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, inputs_embeds, attention_mask=None, output_hidden_states=False, **kwargs):
        x = inputs_embeds
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        return _Out(last_hidden_state=x, hidden_states=tuple(states) if output_hidden_states else None)


class _Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.patch_embedding = nn.Conv2d(c.num_channels, c.hidden_size, c.patch_size, stride=c.patch_size)
        self.position_embedding = nn.Embedding((c.image_size // c.patch_size) ** 2, c.hidden_size)

    def forward(self, pixel_values, interpolate_pos_encoding=False):
        x = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        return x + self.position_embedding.weight.unsqueeze(0)


class _Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, c.hidden_size) * 0.02)
        self.attention = nn.MultiheadAttention(c.hidden_size, c.num_attention_heads, batch_first=True)
        self.layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _Mlp(c)

    def forward(self, x):
        q = self.probe.expand(x.shape[0], -1, -1)
        h = self.attention(q, x, x)[0]
        return (h + self.mlp(self.layernorm(h)))[:, 0]


class _PreTrained(nn.Module):
    config_class = _Config

    def save_pretrained(self, path):
        self.config.save_pretrained(path)
        torch.save(self.state_dict(), os.path.join(path, 'pytorch_model.bin'))

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        model = cls(cls.config_class.from_pretrained(path))
        model.load_state_dict(torch.load(os.path.join(path, 'pytorch_model.bin'), map_location='cpu'))
        return model


class SiglipVisionModel(_PreTrained):
    config_class = SiglipVisionConfig

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.head = _Head(config)

    def forward(self, pixel_values, output_hidden_states=False, **kwargs):
        x = self.post_layernorm(self.encoder(inputs_embeds=self.embeddings(pixel_values)).last_hidden_state)
        return _Out(last_hidden_state=x, pooler_output=self.head(x))


class Siglip2VisionModel(SiglipVisionModel):
    config_class = Siglip2VisionConfig

    def __init__(self, config):
        config.image_size = getattr(config, 'image_size', 16)
        super().__init__(config)


class SiglipTextModel(_PreTrained):
    pass


class AutoTokenizer(object):
    @classmethod
    def from_pretrained(cls, path, **kwargs):
        raise RuntimeError('not used by the benchmarks')
