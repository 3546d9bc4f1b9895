"""PyTorch eager reference for `nucleon bench learn --reference PYTHON`.

The same GRPO learner step as Nucleon's, written the way a PyTorch user writes it (Hugging Face's eager Llama
attention, full-vocabulary log-softmax over the shifted logits, entropy statistic, torch.optim.AdamW with global-norm
clipping), on the same model shape, batch and sequence length, with the same number of intra-op threads. Prints one
JSON line. Needs only torch (Debian: python3-torch).
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q_proj = nn.Linear(dim, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(dim, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, dim, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(2, 3) / math.sqrt(self.head_dim) + mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32)
        out = (probs @ v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(out)


class Mlp(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.gate_proj = nn.Linear(dim, ffn, bias=False)
        self.up_proj = nn.Linear(dim, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, dim, ffn, heads, kv_heads, eps):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = Attention(dim, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.mlp = Mlp(dim, ffn)

    def forward(self, x, cos, sin, mask):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Llama(nn.Module):
    def __init__(self, vocab, dim, ffn, layers, heads, kv_heads, eps=1e-5, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(Layer(dim, ffn, heads, kv_heads, eps) for _ in range(layers))
        self.norm = RMSNorm(dim, eps)
        self.head_dim = dim // heads
        self.theta = theta
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens):
        b, t = tokens.shape
        inv = 1.0 / (self.theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return F.linear(self.norm(x), self.embed_tokens.weight)  # tied head


def main():
    ap = argparse.ArgumentParser()
    for name, default in (("vocab", 32000), ("dim", 512), ("ffn", 1408), ("layers", 8), ("heads", 8),
                          ("kv-heads", 8), ("batch", 16), ("seq-len", 256), ("prompt-len", 64), ("steps", 3),
                          ("threads", 0)):
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = Llama(a.vocab, a.dim, a.ffn, a.layers, a.heads, a.kv_heads)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
    n = a.seq_len - a.prompt_len

    def step(seed):
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, a.vocab, (a.batch, a.seq_len), generator=g)
        behaviour = torch.full((a.batch, a.seq_len - 1), -math.log(a.vocab))
        adv = torch.randn(a.batch, 1, generator=g)
        mask = torch.zeros(a.batch, a.seq_len - 1)
        mask[:, a.prompt_len - 1:] = 1.0
        logits = model(tokens)
        logprobs = F.log_softmax(logits[:, :-1], dim=-1)
        logp = logprobs.gather(-1, tokens[:, 1:, None]).squeeze(-1)
        ratio = torch.exp(logp - behaviour)
        obj = torch.minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv)
        loss = -(obj * mask).sum() / mask.sum()
        loss.backward()
        with torch.no_grad():
            lp = logprobs.detach()
            (-(lp.exp() * lp).sum(-1) * mask).sum().item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    step(0)  # warm-up
    start = time.perf_counter()
    for i in range(a.steps):
        step(i + 1)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "bench": "learn-reference",
        "framework": "pytorch " + torch.__version__ + " eager",
        "threads": torch.get_num_threads(),
        "completion_tokens_per_step": a.batch * n,
        "tokens_per_s": round(a.batch * a.seq_len * a.steps / seconds, 1),
        "ms_per_step": round(seconds * 1000 / a.steps, 1),
        "rss_mb_peak": peak_rss_mb(),
    }))


def peak_rss_mb():
    # VmHWM is this process's own peak; getrusage's ru_maxrss would include the launching JVM's (kept across fork)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return -1


if __name__ == "__main__":
    main()
