#!/usr/bin/env python3
"""Independent numpy reference of Alloy's forward pass (src/model/), for the tests only.

Written from the Hugging Face model definitions (Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma2,
Phi3) and transformers' RoPE initialisation functions, in float64, with whole-tensor numpy
operations and an explicit [tokens, tokens] mask: a different shape of computation from the
TypeScript loops it checks. Reads safetensors with its own parser (numpy only).

stdin: JSON {"model": DIR, "sequences": [[ids]], "padding": "right"|"left",
             "positions": "from-first-token"|"absolute", "targets": [[ids]] (optional)}
   or {"model": DIR, "ids": [ids], "window": W} for a strided perplexity (reply {"perplexity", "scored"})
stdout: JSON {"hidden_states": [[B][T][H] per entry], "logits": [B][T][V],
              "target_log_probs": [B][T] (null where no target)}
"""
import json
import math
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = body[start:end]
        dtype = entry["dtype"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {dtype} not handled")
        out[name] = arr.astype(np.float64).reshape(entry["shape"])
    return out


def load_weights(model_dir):
    import os

    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for f in files:
        weights.update(read_safetensors(os.path.join(model_dir, f)))
    return weights


def rope_inv_freq(cfg, head_dim, seq_len):
    """transformers' ROPE_INIT_FUNCTIONS, re-derived: returns (inv_freq, attention_factor)."""
    base = cfg.get("rope_theta", 10000.0)
    dim = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "su":
        kind = "longrope"
    idx = np.arange(0, dim, 2, dtype=np.float64) / dim
    inv = 1.0 / base**idx
    attn = 1.0
    if kind == "default":
        pass
    elif kind == "linear":
        inv = inv / scaling["factor"]
    elif kind == "dynamic":
        factor = scaling["factor"]
        max_pos = cfg["max_position_embeddings"]
        if seq_len > max_pos:
            b = base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
            inv = 1.0 / b**idx
    elif kind == "llama3":
        factor = scaling["factor"]
        low = scaling.get("low_freq_factor", 1.0)
        high = scaling.get("high_freq_factor", 4.0)
        old = scaling.get("original_max_position_embeddings", 8192)
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
        inv = np.where(medium, smoothed, scaled)
    elif kind == "yarn":
        factor = scaling["factor"]
        orig = scaling.get("original_max_position_embeddings") or cfg["max_position_embeddings"]

        def mscale(s, m=1.0):
            return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0

        if scaling.get("attention_factor") is not None:
            attn = scaling["attention_factor"]
        elif scaling.get("mscale") and scaling.get("mscale_all_dim"):
            attn = mscale(factor, scaling["mscale"]) / mscale(factor, scaling["mscale_all_dim"])
        else:
            attn = mscale(factor)
        beta_fast = scaling.get("beta_fast") or 32
        beta_slow = scaling.get("beta_slow") or 1

        def corr(rot):
            return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        lo = max(math.floor(corr(beta_fast)), 0)
        hi = min(math.ceil(corr(beta_slow)), dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extra = 1 - ramp
        inv = (inv / factor) * (1 - extra) + inv * extra
    elif kind == "longrope":
        if "original_max_position_embeddings" in cfg:
            orig = cfg["original_max_position_embeddings"]
            factor = cfg["max_position_embeddings"] / orig
        else:
            orig = cfg["max_position_embeddings"]
            factor = scaling.get("factor", 1.0)
        if scaling.get("attention_factor") is not None:
            attn = scaling["attention_factor"]
        else:
            attn = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(orig))
        ext = np.array(scaling["long_factor"] if seq_len > orig else scaling["short_factor"], dtype=np.float64)
        inv = 1.0 / (ext * base**idx)
    else:
        raise ValueError(f"rope type {kind}")
    return inv, attn


def rms_norm(x, w, eps, offset):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(var + eps) * (offset + w)


def rotate(x, cos, sin, rot_dim):
    # x: [heads, T, hd]; HF rotate_half on the first rot_dim dims.
    r, rest = x[..., :rot_dim], x[..., rot_dim:]
    half = rot_dim // 2
    rotated = np.concatenate([-r[..., half:], r[..., :half]], axis=-1)
    return np.concatenate([r * cos + rotated * sin, rest], axis=-1)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1 + np.exp(-x))


def forward(req):
    model_dir = req["model"]
    cfg = json.load(open(model_dir + "/config.json"))
    w = load_weights(model_dir)
    mt = cfg["model_type"]
    gemma = mt in ("gemma", "gemma2")
    H = cfg["hidden_size"]
    nH = cfg["num_attention_heads"]
    nKV = cfg.get("num_key_value_heads", nH)
    hd = cfg.get("head_dim") or H // nH
    L = cfg["num_hidden_layers"]
    V = cfg["vocab_size"]
    eps = cfg.get("rms_norm_eps", 1e-6)
    off = 1.0 if gemma else 0.0
    act = gelu_tanh if gemma else silu
    scale = (cfg.get("query_pre_attn_scalar", hd) if mt == "gemma2" else hd) ** -0.5
    attn_cap = cfg.get("attn_logit_softcapping") if mt == "gemma2" else None
    final_cap = cfg.get("final_logit_softcapping") if mt == "gemma2" else None
    tied = cfg.get("tie_word_embeddings", gemma) or "lm_head.weight" not in w
    lm_head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]

    seqs = req["sequences"]
    B = len(seqs)
    T = max(len(s) for s in seqs)
    left = req.get("padding", "right") == "left"
    absolute = req.get("positions", "from-first-token") == "absolute"
    rot_dim = int(hd * cfg.get("partial_rotary_factor", 1.0))

    batch_seq_len = T  # the longest sequence holds positions 0..T-1 in every layout
    hidden_out = [[] for _ in range(L + 1)]
    logits_out, logp_out = [], []
    # One sequence at a time: padding never mixes sequences, so this equals a batched pass.
    for b, seq in enumerate(seqs):
        n = len(seq)
        first = T - n if left else 0
        cols = np.arange(T)
        valid = (cols >= first) & (cols < first + n)
        ids = np.zeros(T, dtype=np.int64)
        ids[first : first + n] = seq
        pos = cols.astype(np.float64) if absolute else np.where(valid, cols - first, 0).astype(np.float64)
        # Dynamic NTK and LongRoPE depend on the longest position of the whole batch, as in
        # transformers (max(position_ids) + 1), so a sequence's result depends on its batch.
        inv, attn_factor = rope_inv_freq(cfg, hd, batch_seq_len)
        ang = np.outer(pos, inv)
        emb = np.concatenate([ang, ang], axis=-1)
        cos, sin = np.cos(emb) * attn_factor, np.sin(emb) * attn_factor
        x = w["model.embed_tokens.weight"][ids] * valid[:, None]
        if gemma:
            x = x * np.float64(np.float32(math.sqrt(H)))
        mask = (cols[None, :] <= cols[:, None]) & valid[None, :]
        for i in range(L):
            p = f"model.layers.{i}."
            hidden_out[i].append(x)
            h = rms_norm(x, w[p + "input_layernorm.weight"], eps, off)
            if mt == "phi3":
                qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
                q, k, v = np.split(qkv, [nH * hd, nH * hd + nKV * hd], axis=-1)
            else:
                q = h @ w[p + "self_attn.q_proj.weight"].T
                k = h @ w[p + "self_attn.k_proj.weight"].T
                v = h @ w[p + "self_attn.v_proj.weight"].T
                if p + "self_attn.q_proj.bias" in w:
                    q = q + w[p + "self_attn.q_proj.bias"]
                    k = k + w[p + "self_attn.k_proj.bias"]
                    v = v + w[p + "self_attn.v_proj.bias"]
            q = q.reshape(T, nH, hd).transpose(1, 0, 2)
            k = k.reshape(T, nKV, hd).transpose(1, 0, 2)
            v = v.reshape(T, nKV, hd).transpose(1, 0, 2)
            if mt == "qwen3":
                q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, 0.0)
                k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, 0.0)
            q = rotate(q, cos[None, :, :rot_dim], sin[None, :, :rot_dim], rot_dim)
            k = rotate(k, cos[None, :, :rot_dim], sin[None, :, :rot_dim], rot_dim)
            k = np.repeat(k, nH // nKV, axis=0)
            v = np.repeat(v, nH // nKV, axis=0)
            scores = q @ k.transpose(0, 2, 1) * scale
            if attn_cap:
                scores = attn_cap * np.tanh(scores / attn_cap)
            scores = np.where(mask[None], scores, -np.inf)
            mx = np.max(scores, axis=-1, keepdims=True)
            mx = np.where(np.isfinite(mx), mx, 0)
            e = np.exp(scores - mx)
            denom = e.sum(-1, keepdims=True)
            probs = np.where(denom > 0, e / np.where(denom > 0, denom, 1), 0)
            probs = probs * valid[None, :, None]  # padding queries attend to nothing
            o = (probs @ v).transpose(1, 0, 2).reshape(T, nH * hd)
            o = o @ w[p + "self_attn.o_proj.weight"].T
            if mt == "gemma2":
                o = rms_norm(o, w[p + "post_attention_layernorm.weight"], eps, off)
            x = x + o
            pre = "pre_feedforward_layernorm.weight" if mt == "gemma2" else "post_attention_layernorm.weight"
            m = rms_norm(x, w[p + pre], eps, off)
            if mt == "phi3":
                gu = m @ w[p + "mlp.gate_up_proj.weight"].T
                g, u = np.split(gu, 2, axis=-1)
            else:
                g = m @ w[p + "mlp.gate_proj.weight"].T
                u = m @ w[p + "mlp.up_proj.weight"].T
            d = (act(g) * u) @ w[p + "mlp.down_proj.weight"].T
            if mt == "gemma2":
                d = rms_norm(d, w[p + "post_feedforward_layernorm.weight"], eps, off)
            x = x + d
        x = rms_norm(x, w["model.norm.weight"], eps, off)
        hidden_out[L].append(x)
        logits = x @ lm_head.T
        if final_cap:
            logits = final_cap * np.tanh(logits / final_cap)
        logits_out.append(logits)
        if req.get("targets") is not None:
            tg = np.full(T, -1, dtype=np.int64)
            tg[first : first + n] = req["targets"][b]
            mx = logits.max(-1, keepdims=True)
            lse = (mx + np.log(np.exp(logits - mx).sum(-1, keepdims=True)))[:, 0]
            logp_out.append([float(logits[t, tg[t]] - lse[t]) if tg[t] >= 0 else None for t in range(T)])

    return {
        "hidden_states": [np.stack(h).tolist() for h in hidden_out],
        "logits": np.stack(logits_out).tolist(),
        "target_log_probs": logp_out if req.get("targets") is not None else None,
    }


def perplexity(req):
    """Strided perplexity as in Hugging Face's perplexity guide: windows of `window` tokens moved
    by window // 2; each window's labels before the previous window's end are ignored."""
    ids = req["ids"]
    window = min(req["window"], len(ids))
    stride = max(1, window // 2)
    nll, count, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        chunk = ids[begin:end]
        # labels = chunk with the first len - (end - prev_end) masked; position j predicts j + 1.
        first_label = max(len(chunk) - (end - prev_end), 1)
        targets = [chunk[j + 1] if j + 1 < len(chunk) and j + 1 >= first_label else -1 for j in range(len(chunk))]
        out = forward({"model": req["model"], "sequences": [chunk], "targets": [targets]})
        for lp in out["target_log_probs"][0]:
            if lp is not None:
                nll -= lp
                count += 1
        prev_end = end
        if end == len(ids):
            break
    return {"perplexity": math.exp(nll / count), "scored": count}


if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(perplexity(request) if "ids" in request else forward(request), sys.stdout)
