#!/usr/bin/env python3
"""Independent numpy reference of mergekit-moe's router weights, for Alloy's tests only.

Follows mergekit-moe's procedure as its source describes it, not Alloy's code: each expert's
prompts go through the base model as ONE left-padded batch (the pad token is BOS, positions are
the grid columns as transformers uses them without position_ids), using
test/model/reference_forward.py's float64 forward pass; `hidden` takes the last column,
`hidden_avg` the mean over each prompt's real tokens (Alloy's documented fix of mergekit's
padding-inclusive mean), `cheap_embed` one-hot rows times the embedding matrix. Then the mean over
prompts, positive minus negative, unit length per layer.

stdin: JSON {"model": DIR, "mode": "hidden"|"hidden_avg"|"cheap_embed",
             "experts": [{"positive": [[ids]], "negative": [[ids]]}]}
stdout: JSON {"routers": [L][E][H]}
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
from reference_forward import forward, load_weights  # noqa: E402


def hidden_rep(model, prompts, average):
    out = forward({"model": model, "sequences": prompts, "padding": "left", "positions": "absolute"})
    states = np.array(out["hidden_states"][:-1])  # [L, B, T, H]: the input of each layer
    T = states.shape[2]
    per_prompt = []
    for b, ids in enumerate(prompts):
        n = len(ids)
        if average:
            per_prompt.append(states[:, b, T - n :, :].mean(axis=1))
        else:
            per_prompt.append(states[:, b, T - 1, :])
    return np.mean(per_prompt, axis=0)  # [L, H]


def embed_rep(embed, prompts, layers):
    V = embed.shape[0]
    total = np.zeros(embed.shape[1])
    for ids in prompts:
        onehot = np.eye(V)[ids]
        total += (onehot @ embed).sum(axis=0)
    total = total / max(np.linalg.norm(total), 1e-8)
    return np.repeat(total[None, :], layers, axis=0)


def main():
    req = json.load(sys.stdin)
    cfg = json.load(open(os.path.join(req["model"], "config.json")))
    L = cfg["num_hidden_layers"]
    mode = req["mode"]
    embed = load_weights(req["model"])["model.embed_tokens.weight"] if mode == "cheap_embed" else None

    def rep(prompts):
        if mode == "cheap_embed":
            return embed_rep(embed, prompts, L)
        return hidden_rep(req["model"], prompts, mode == "hidden_avg")

    routers = []
    for e in req["experts"]:
        v = rep(e["positive"])
        if e.get("negative"):
            v = v - rep(e["negative"])
        v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)
        routers.append(v)
    json.dump({"routers": np.stack(routers, axis=1).tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
