# CPU test stand-in: Rearrange for the one pattern WinTok's decoder uses, 'b (p1 p2 c) h w -> b c (h p1) (w p2)'.
import torch


class Rearrange(torch.nn.Module):
    def __init__(self, pattern, **sizes):
        super().__init__()
        assert pattern == 'b (p1 p2 c) h w -> b c (h p1) (w p2)', pattern
        self.p1, self.p2 = sizes['p1'], sizes['p2']

    def forward(self, x):
        b, _, h, w = x.shape
        x = x.view(b, self.p1, self.p2, -1, h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(b, x.shape[1], h * self.p1, w * self.p2)
