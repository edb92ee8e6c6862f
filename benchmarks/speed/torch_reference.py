#!/usr/bin/env python3
"""CPU speed benchmark of one DiT (Diffusion Transformer) training step in PyTorch.

learngene's copy of ../shared/bench/torch_dit_bench.py (the PyTorch reference), unchanged in
its model, loss and timing, with two additions for `learngene-bench train`:
  - the example's configs (cpu-28-small and the other cpu-* presets of DiTConfig.preset);
  - `--serve`: set up once, then time one round per "round" line read on stdin and print it
    as one JSON line, so the Swift side can interleave its rounds with these.

A compact, self-contained implementation of the DiT architecture (adaLN-Zero blocks,
learned-range variance, i.e. learn_sigma=True) and of the Gaussian-diffusion training loss
used to train it (epsilon MSE + variational-bound term for the variance). Parameter names
match the reference DiT state_dict, so reference checkpoints load with strict=True.

One training step = forward + loss + backward + AdamW(lr=1e-4, wd=0) + EMA(decay 0.9999).

Usage:
  python3 torch_dit_bench.py --config {tiny,mnist,s2} --batch N --threads T
                             [--steps 10] [--warmup 3] [--naive-attn] [--json]
                             [--sample-steps K]
Requires only torch and numpy.
"""
import argparse
import copy
import json
import math
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # input_size, in_channels, patch_size, depth, hidden_size, num_heads, num_classes
    "tiny": dict(input_size=32, in_channels=3, patch_size=2, depth=6, hidden_size=192, num_heads=3, num_classes=10),
    "mnist": dict(input_size=28, in_channels=1, patch_size=4, depth=6, hidden_size=256, num_heads=4, num_classes=10),
    # DiT-S/2 on 256x256 images = 32x32x4 latents
    "s2": dict(input_size=32, in_channels=4, patch_size=2, depth=12, hidden_size=384, num_heads=6, num_classes=1000),
    # learngene's presets for 28-32 px images (DiTConfig.preset); cpu-28-small is the example's.
    "cpu-28-small": dict(input_size=28, in_channels=1, patch_size=4, depth=4, hidden_size=128, num_heads=4, num_classes=10),
    "cpu-28": dict(input_size=28, in_channels=1, patch_size=4, depth=8, hidden_size=256, num_heads=4, num_classes=10),
    "cpu-32-small": dict(input_size=32, in_channels=3, patch_size=4, depth=4, hidden_size=128, num_heads=4, num_classes=10),
    "cpu-32": dict(input_size=32, in_channels=3, patch_size=2, depth=8, hidden_size=192, num_heads=3, num_classes=10),
}

# ----------------------------------------------------------------------------- model

def modulate(x, shift, scale):
    """adaLN: per-sample shift/scale (B, D) broadcast over the tokens of x (B, N, D)."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)

def sincos_pos_embed_2d(dim, grid):
    """Fixed (grid*grid, dim) table. Channels [0, dim/2) encode the column index and
    [dim/2, dim) the row index; each half is [sin(pos*w_k), cos(pos*w_k)], w_k = 10000^(-k/(dim/4))."""
    assert dim % 4 == 0
    quarter = dim // 4
    omega = 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")

    def encode(pos):
        angles = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([encode(cols), encode(rows)], axis=1).astype(np.float32)

class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> D-dim tokens via a strided convolution."""

    def __init__(self, patch, in_ch, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, kernel_size=patch, stride=patch)

    def forward(self, x):                                 # (B, C, H, W) -> (B, N, D)
        return self.proj(x).flatten(2).transpose(1, 2)

class TimestepEmbedder(nn.Module):
    """256-d sinusoidal features [cos, sin] of the timestep, then Linear -> SiLU -> Linear."""

    def __init__(self, dim, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        angles = t.float()[:, None] * freqs[None, :]
        return self.mlp(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))

class LabelEmbedder(nn.Module):
    """Class table with one extra "null" row (index num_classes) for classifier-free guidance.
    In training mode each label is replaced by the null class with probability drop_prob."""

    def __init__(self, num_classes, dim, drop_prob=0.1):
        super().__init__()
        self.num_classes, self.drop_prob = num_classes, drop_prob
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y):
        if self.training and self.drop_prob > 0:
            drop = torch.rand(y.shape[0], device=y.device) < self.drop_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)

class Attention(nn.Module):
    """Multi-head self-attention: fused qkv projection, SDPA or explicit softmax(QK^T/sqrt(d))V."""

    def __init__(self, dim, heads, naive=False):
        super().__init__()
        self.heads, self.naive = heads, naive
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4).unbind(0)  # (B, h, N, hd)
        if self.naive:
            weights = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))

class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

class DiTBlock(nn.Module):
    """Transformer block whose LayerNorms are modulated by the conditioning c (adaLN-Zero):
    c -> SiLU -> Linear(D, 6D) gives shift/scale/gate for the attention and MLP branches."""

    def __init__(self, dim, heads, naive_attn=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, naive_attn)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c):
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_a, sc_a))
        x = x + g_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_m, sc_m))
        return x

class FinalLayer(nn.Module):
    """Non-affine LayerNorm modulated by c (Linear(D, 2D)), then Linear(D, p*p*out_channels)."""

    def __init__(self, dim, patch, out_ch):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * out_ch)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))

class DiT(nn.Module):
    def __init__(self, input_size, in_channels, patch_size, depth, hidden_size, num_heads,
                 num_classes, class_dropout_prob=0.1, naive_attn=False):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, 2 * in_channels   # learn_sigma=True
        self.patch, self.grid = patch_size, input_size // patch_size
        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        # fixed (non-trainable) positional table, stored as a parameter like the reference
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid ** 2, hidden_size), requires_grad=False)
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, naive_attn) for _ in range(depth))
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.pos_embed.copy_(torch.from_numpy(sincos_pos_embed_2d(self.pos_embed.shape[-1], self.grid))[None])
        w = self.x_embedder.proj.weight                       # init the patch conv like a Linear
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero: every modulation layer and the output projection start at zero
        zeroed = [b.adaLN_modulation[1] for b in self.blocks]
        zeroed += [self.final_layer.adaLN_modulation[1], self.final_layer.linear]
        for m in zeroed:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def unpatchify(self, x):                              # (B, N, p*p*C) -> (B, C, H, W)
        B, g, p, c = x.shape[0], self.grid, self.patch, self.out_channels
        x = x.reshape(B, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, c, g * p, g * p)

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))

# ----------------------------------------------------------------------------- diffusion loss

def approx_std_normal_cdf(x):
    """tanh approximation of the standard normal CDF."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))

def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log P(x) for data quantised to 256 levels in [-1, 1] (bins of width 2/255, open edge bins)."""
    inv_std = torch.exp(-log_scale)
    centered = x - mean
    cdf_hi = approx_std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_lo = approx_std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_hi = torch.log(cdf_hi.clamp(min=1e-12))
    log_one_minus_lo = torch.log((1.0 - cdf_lo).clamp(min=1e-12))
    log_mid = torch.log((cdf_hi - cdf_lo).clamp(min=1e-12))
    return torch.where(x < -0.999, log_hi, torch.where(x > 0.999, log_one_minus_lo, log_mid))

class GaussianDiffusion:
    """DDPM with T linear betas in [1e-4, 0.02] (float64 schedule), epsilon prediction and a
    learned-range variance; loss = MSE(eps) + VB term (bits) that trains only the variance."""

    def __init__(self, T=1000):
        self.T = T
        betas = np.linspace(1e-4, 0.02, T, dtype=np.float64)
        ac = np.cumprod(1.0 - betas)                      # alpha-bar_t
        ac_prev = np.append(1.0, ac[:-1])
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)   # variance of q(x_{t-1} | x_t, x_0)
        tables = dict(
            sqrt_ac=np.sqrt(ac), sqrt_one_minus_ac=np.sqrt(1.0 - ac),
            sqrt_recip_ac=np.sqrt(1.0 / ac), sqrt_recipm1_ac=np.sqrt(1.0 / ac - 1.0),
            post_logvar=np.log(np.append(post_var[1], post_var[1:])),   # t=0 entry clipped
            log_betas=np.log(betas),
            mean_c0=betas * np.sqrt(ac_prev) / (1.0 - ac),              # coefficient of x_0
            mean_ct=(1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac),  # coefficient of x_t
        )
        self.tab = {k: torch.from_numpy(v) for k, v in tables.items()}

    def at(self, name, t):
        """Look up a float64 table at timesteps t and return a float32 (B, 1, 1, 1) tensor."""
        return self.tab[name][t].float().view(-1, 1, 1, 1)

    def training_loss(self, model, x0, t, y, noise):
        C = x0.shape[1]
        x_t = self.at("sqrt_ac", t) * x0 + self.at("sqrt_one_minus_ac", t) * noise
        eps, var_raw = model(x_t, t, y).split(C, dim=1)
        mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))

        # Variance interpolates (in log space) between the posterior variance and beta_t.
        min_log, max_log = self.at("post_logvar", t), self.at("log_betas", t)
        frac = (var_raw + 1) / 2
        model_logvar = frac * max_log + (1 - frac) * min_log
        # The VB term must not train the mean: use the stop-gradient eps prediction.
        x0_pred = self.at("sqrt_recip_ac", t) * x_t - self.at("sqrt_recipm1_ac", t) * eps.detach()
        model_mean = self.at("mean_c0", t) * x0_pred + self.at("mean_ct", t) * x_t
        true_mean = self.at("mean_c0", t) * x0 + self.at("mean_ct", t) * x_t
        true_logvar = min_log
        kl = 0.5 * (-1.0 + model_logvar - true_logvar + torch.exp(true_logvar - model_logvar)
                    + (true_mean - model_mean) ** 2 * torch.exp(-model_logvar))
        kl = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar)
        nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)                 # decoder NLL at t=0, KL otherwise
        return (mse + vb).mean()

# ----------------------------------------------------------------------------- benchmark

def gflop_per_image_fwd(cfg):
    """Analytic forward GFLOP per image (2 FLOPs per multiply-add; matmuls/conv/attention only)."""
    D, p, C, L = cfg["hidden_size"], cfg["patch_size"], cfg["in_channels"], cfg["depth"]
    N = (cfg["input_size"] // p) ** 2
    f = 2 * N * (C * p * p) * D                          # patch-embedding conv
    f += 2 * (256 * D + D * D)                           # timestep MLP
    block = 2 * D * 6 * D                                # adaLN modulation
    block += 2 * N * D * 3 * D + 2 * N * D * D           # qkv + output projection
    block += 2 * 2 * N * N * D                           # QK^T and attention-weighted V
    block += 2 * 2 * N * D * 4 * D                       # MLP fc1 + fc2
    f += L * block
    f += 2 * D * 2 * D + 2 * N * D * p * p * 2 * C       # final adaLN + output projection
    return f / 1e9

def median_ms(fn, warmup, steps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3

def matmul_peak_gflops(n=1024, reps=10):
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / (median_ms(lambda: torch.mm(a, b), 3, reps) * 1e-3) / 1e9

def peak_rss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024

def sample_evals_per_s(model, cfg, diffusion, K, n=16, guidance=4.0):
    """K plain model evaluations for sampling n images with classifier-free guidance (the batch
    is doubled: conditional + null label). The sampler arithmetic is a trivial placeholder."""
    C, H, nc = cfg["in_channels"], cfg["input_size"], cfg["num_classes"]
    y = torch.cat([torch.randint(0, nc, (n,)), torch.full((n,), nc)])
    steps = np.linspace(diffusion.T - 1, 0, K).round().astype(np.int64)

    def guided_eps(x, step):
        out = model(torch.cat([x, x]), torch.full((2 * n,), int(step), dtype=torch.long), y)
        cond, uncond = out[:, :C].chunk(2)
        return uncond + guidance * (cond - uncond)

    model.eval()
    with torch.no_grad():
        x = torch.randn(n, C, H, H)
        guided_eps(x, steps[0])                           # warm-up evaluation
        t0 = time.perf_counter()
        for s in steps:
            x = x - guided_eps(x, s) / K
        elapsed = time.perf_counter() - t0
    model.train()
    return K / elapsed

def serve(args, cfg, model, diffusion, train_step):
    """Rounds on request: the caller alternates its own rounds with these, so a drift of the
    shared machine lands on both sides. Peak RSS is read at the points the caller names."""
    for _ in range(args.warmup):
        train_step()
    reply = lambda obj: print(json.dumps(obj), flush=True)
    reply(dict(ready=True, torch_version=torch.__version__, threads=torch.get_num_threads(),
               params=sum(p.numel() for p in model.parameters() if p.requires_grad),
               gflop_per_image_fwd=round(gflop_per_image_fwd(cfg), 5)))
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "round":
            train_ms = median_ms(train_step, 0, args.steps)
            res = dict(train_ms=round(train_ms, 3), train_images_per_s=round(args.batch / (train_ms * 1e-3), 3))
            if args.sample_steps > 0:
                res["sample_evals_per_s"] = round(sample_evals_per_s(model, cfg, diffusion, args.sample_steps), 3)
            res["matmul_peak_gflops"] = round(matmul_peak_gflops(reps=5), 3)
            reply(res)
        elif cmd == "peak":
            reply(dict(peak_rss_mb=round(peak_rss_mb(), 1)))
        elif cmd == "quit":
            break

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    if "--list-configs" in sys.argv:                      # which configs this script has
        print(json.dumps(sorted(CONFIGS)))
        return
    ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10, help="timed iterations (median reported)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations before timing")
    ap.add_argument("--naive-attn", action="store_true", help="explicit softmax(QK^T/sqrt(d))V instead of SDPA")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--sample-steps", type=int, default=0, help="also time K CFG sampling evaluations (16 images)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--serve", action="store_true",
                    help="time one round per 'round' line on stdin (JSON line each); 'peak' prints peak RSS")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = CONFIGS[args.config]
    B, C, H = args.batch, cfg["in_channels"], cfg["input_size"]

    matmul_peak = matmul_peak_gflops()

    model = DiT(**cfg, naive_attn=args.naive_attn).train()
    ema = copy.deepcopy(model).requires_grad_(False)
    params, ema_params = list(model.parameters()), list(ema.parameters())   # same order
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    diffusion = GaussianDiffusion(1000)

    # Synthetic data, created once (data loading is not part of the measured step).
    x0 = torch.rand(B, C, H, H) * 2 - 1
    y = torch.randint(0, cfg["num_classes"], (B,))

    def train_step():
        t = torch.randint(0, diffusion.T, (B,))
        noise = torch.randn_like(x0)
        loss = diffusion.training_loss(model, x0, t, y, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():                             # EMA: e = decay * e + (1 - decay) * p
            torch._foreach_mul_(ema_params, 0.9999)
            torch._foreach_add_(ema_params, params, alpha=1 - 0.9999)
        return loss

    if args.serve:
        serve(args, cfg, model, diffusion, train_step)
        return

    # Forward only (no autograd graph), on a fixed noised batch.
    t_fwd = torch.randint(0, diffusion.T, (B,))
    x_fwd = diffusion.at("sqrt_ac", t_fwd) * x0 + diffusion.at("sqrt_one_minus_ac", t_fwd) * torch.randn_like(x0)
    with torch.no_grad():
        fwd_ms = median_ms(lambda: model(x_fwd, t_fwd, y), args.warmup, args.steps)
    train_ms = median_ms(train_step, args.warmup, args.steps)

    gflop = gflop_per_image_fwd(cfg)
    res = dict(
        config=args.config, batch=B, threads=args.threads,
        attn="naive" if args.naive_attn else "sdpa",
        fwd_ms=round(fwd_ms, 3), train_ms=round(train_ms, 3),
        train_images_per_s=round(B / (train_ms * 1e-3), 3),
        gflop_per_image_fwd=round(gflop, 5),
        train_gflops=round(3 * gflop * B / (train_ms * 1e-3), 3),
        matmul_peak_gflops=round(matmul_peak, 3),
        peak_rss_mb=None, torch_version=torch.__version__,
    )
    if args.sample_steps > 0:
        evals = sample_evals_per_s(model, cfg, diffusion, args.sample_steps)
        res.update(sample_steps=args.sample_steps, sample_evals_per_s=round(evals, 3))
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)

    if args.json:
        print(json.dumps(res), flush=True)
        return
    nparams = sum(p.numel() for p in params if p.requires_grad)
    print(f"DiT config={args.config} {cfg}  trainable params={nparams / 1e6:.2f}M  torch {torch.__version__}")
    print(f"batch={B} threads={args.threads} attn={res['attn']} warmup={args.warmup} steps={args.steps}")
    print(f"forward:        {fwd_ms:9.2f} ms  ({gflop * B / (fwd_ms * 1e-3):.1f} GFLOP/s)")
    print(f"training step:  {train_ms:9.2f} ms  ({res['train_images_per_s']:.2f} images/s, "
          f"{res['train_gflops']:.1f} GFLOP/s)")
    print(f"model FLOPs:    {gflop:.4f} GFLOP/image forward, {3 * gflop:.4f} training")
    print(f"matmul 1024^3:  {matmul_peak:.1f} GFLOP/s fp32")
    if args.sample_steps > 0:
        print(f"sampling:       {res['sample_evals_per_s']:.2f} model evaluations/s "
              f"(16 images, CFG batch 32, {args.sample_steps} steps)")
    print(f"peak RSS:       {res['peak_rss_mb']:.1f} MB")

if __name__ == "__main__":
    main()
