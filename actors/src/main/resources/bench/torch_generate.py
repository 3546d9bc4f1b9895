"""PyTorch eager reference for `nucleon bench generate --reference PYTHON`.

Batched sampling with a KV cache the way a PyTorch user writes it (transformers' eager Llama, its cache grown by
concatenation): one prefill of the prompts, then one forward per new token, the next token drawn from the softmax at
temperature 1 (torch.multinomial) and its log-prob kept. Same model shape, batch, prompt length, new tokens, calls,
warm-up calls, compute type and intra-op threads as the Nucleon run. Prints one JSON line. Needs only torch (Debian:
python3-torch).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

from torch_llama import Llama


def main():
    ap = argparse.ArgumentParser()
    for name, default in (("vocab", 32000), ("dim", 512), ("ffn", 1408), ("layers", 8), ("heads", 8),
                          ("kv-heads", 8), ("batch", 64), ("prompt-len", 16), ("new-tokens", 128), ("calls", 3),
                          ("warmup", 1), ("threads", 0)):
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = Llama(a.vocab, a.dim, a.ffn, a.layers, a.heads, a.kv_heads).eval()
    if a.dtype == "bf16":
        model = model.to(torch.bfloat16)

    @torch.inference_mode()
    def generate(seed):
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, a.vocab, (a.batch, a.prompt_len), generator=g)
        cache = model.new_cache()
        logits = model(tokens, cache, 0)[:, -1]
        out, logps = [], []
        for i in range(a.new_tokens):
            logprobs = F.log_softmax(logits.float(), dim=-1)
            nxt = torch.multinomial(logprobs.exp(), 1, generator=g)
            out.append(nxt)
            logps.append(logprobs.gather(-1, nxt))
            if i + 1 < a.new_tokens:
                logits = model(nxt, cache, a.prompt_len + i)[:, -1]
        return torch.cat(out, 1).tolist(), torch.cat(logps, 1).tolist()

    for w in range(a.warmup):
        generate(w)
    start = time.perf_counter()
    for c in range(a.calls):
        generate(1000 + c)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "bench": "generate-reference",
        "framework": "pytorch " + torch.__version__ + " eager",
        "dtype": a.dtype,
        "threads": torch.get_num_threads(),
        "tokens_per_s": round(a.batch * a.new_tokens * a.calls / seconds, 1),
        "ms_per_step": round(seconds * 1000 / (a.new_tokens * a.calls), 3),
    }))


if __name__ == "__main__":
    main()
