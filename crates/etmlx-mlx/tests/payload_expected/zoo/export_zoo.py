import torch, torch.nn as nn, torch.nn.functional as F
from executorch.backends.mlx.partitioner import MLXPartitioner
from executorch.exir import to_edge_transform_and_lower

class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(2, 3, (3, 3), stride=(1, 2), padding=(1, 0), dilation=(1, 1))
        self.ln = nn.LayerNorm(6)
    def forward(self, x, img, idx):
        y = self.conv(x)                       # [1,6,L]
        y = y.transpose(1, 2)                  # [1,L,6]
        y = self.ln(y)
        y = F.gelu(y, approximate="tanh")
        y = F.pad(y, (1, 2), value=0.5)
        c = torch.cumsum(y, dim=1)
        w = torch.where(c > 0, c, torch.zeros_like(c))
        a = torch.arange(w.shape[-1], dtype=torch.float32)
        w = w + a
        am = torch.argmax(w, dim=-1, keepdim=True)
        s = w[:, 1:3, ::2]
        t = torch.take_along_dim(w, am, dim=-1)
        v = torch.var(w, dim=1, keepdim=False, unbiased=True)
        z = self.conv2(img)
        g = w.index_select(2, idx)
        st = torch.stack([v, v * 2], dim=0)
        cl = torch.clamp(w, min=-1.0, max=1.0)
        tr = torch.tril(torch.ones(4, 4))
        return s, t, v, z, g, st, cl, am, tr

m = Zoo().eval()
inputs = (torch.randn(1, 4, 10), torch.randn(1, 2, 5, 7), torch.tensor([0, 2, 1]))
ep = torch.export.export(m, inputs, strict=True)
prog = to_edge_transform_and_lower(ep, partitioner=[MLXPartitioner()]).to_executorch()
open("model.pte", "wb").write(prog.buffer)
print("ok", len(prog.buffer))
