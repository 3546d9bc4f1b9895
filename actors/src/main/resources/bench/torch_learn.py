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

from torch_llama import Llama


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
