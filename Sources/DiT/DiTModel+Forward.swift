import Tensors

extension DiTModel {
    /// out (N, 2C, S, S) = DiT(x (N, C, S, S), t, y). `t` are timesteps on the original
    /// 0…999 scale; `y` are labels in 0…K (K = the null class; label dropout, if any, is the
    /// caller's choice and already applied). Caches activations for `backward`. A
    /// text-conditioned model (`config.textDim > 0`) reads label k's text embedding from
    /// `textTable` (which must be set) and projects it; label K is the learned null embedding.
    public func forward(x: UnsafePointer<Float>, t: [Int], y: [Int], out: UnsafeMutablePointer<Float>) {
        let N = t.count
        precondition(y.count == N, "forward: \(t.count) timesteps but \(y.count) labels")
        let c = config, D = c.hiddenSize, T = c.tokens, H = c.numHeads, F = c.mlpHidden
        let a = activations(N)
        let P = params.data
        a.labels = y

        // Conditioning: c = t_emb + y_emb, then SiLU(c) feeds every adaLN modulation.
        timestepFrequencies(out: a.tFreq.data, t: t, dim: c.frequencyEmbeddingSize)
        linearForward(out: a.tH.data, inp: a.tFreq.data, weight: P + layout.offset("t_embedder.mlp.0.weight"),
                      bias: P + layout.offset("t_embedder.mlp.0.bias"), M: N, IC: c.frequencyEmbeddingSize, OC: D)
        siluForward(out: a.tHs.data, inp: a.tH.data, count: N * D)
        linearForward(out: a.tEmb.data, inp: a.tHs.data, weight: P + layout.offset("t_embedder.mlp.2.weight"),
                      bias: P + layout.offset("t_embedder.mlp.2.bias"), M: N, IC: D, OC: D)
        if c.textDim > 0 {
            textLabelForward(a, y: y)
        } else {
            embeddingForward(out: a.yEmb.data, table: P + layout.offset("y_embedder.embedding_table.weight"), labels: y, D: D)
        }
        for i in 0..<(N * D) { a.c.data[i] = a.tEmb.data[i] + a.yEmb.data[i] }
        siluForward(out: a.siluC.data, inp: a.c.data, count: N * D)

        // Patch embedding (a stride-p conv as a matmul) plus the fixed positions.
        patchify(out: a.patches.data, images: x, N: N, C: c.inChannels, S: c.inputSize, p: c.patchSize)
        let x0 = a.residual(0).data
        linearForward(out: x0, inp: a.patches.data, weight: P + layout.offset("x_embedder.proj.weight"),
                      bias: P + layout.offset("x_embedder.proj.bias"), M: N * T, IC: c.patchDim, OC: D)
        let pos = posEmbed.data
        Parallel.forRanges(N * T, costPerItem: D) { r in
            for row in r {
                let o = x0 + row * D, pe = pos + (row % T) * D
                for i in 0..<D { o[i] += pe[i] }
            }
        }

        for l in 0..<c.depth {
            blockForward(l, a: a, N: N, T: T, D: D, H: H, F: F)
        }

        // Final layer: adaLN (shift, scale) → LN/modulate → linear → unpatchify.
        linearForward(out: a.modF.data, inp: a.siluC.data, weight: P + layout.offset("final_layer.adaLN_modulation.1.weight"),
                      bias: P + layout.offset("final_layer.adaLN_modulation.1.bias"), M: N, IC: D, OC: 2 * D)
        layerNormModulateForward(out: a.hF.data, mean: a.lnFMean.data, rstd: a.lnFRstd.data, inp: a.residual(c.depth).data,
                                 shift: a.modF.data, scale: a.modF.data + D, modStride: 2 * D, N: N, T: T, D: D)
        let outDim = c.patchSize * c.patchSize * c.outChannels
        linearForward(out: a.outTok.data, inp: a.hF.data, weight: P + layout.offset("final_layer.linear.weight"),
                      bias: P + layout.offset("final_layer.linear.bias"), M: N * T, IC: D, OC: outDim)
        unpatchify(out: out, tokens: a.outTok.data, N: N, OC: c.outChannels, S: c.inputSize, p: c.patchSize)
    }

    /// y_emb = W_text · textTable[y] + b_text, or the null embedding for y = K.
    func textLabelForward(_ a: Activations, y: [Int]) {
        let c = config, P = params.data
        guard let table = textTable else {
            preconditionFailure("text-conditioned DiT: set the text table (setTextTable) before forward")
        }
        textEmbeddingForward(out: a.yEmb.data, inputs: a.textIn.data, table: table.data,
                             nullRow: layout["y_embedder.embedding_table.weight"].map { P + $0.offset },
                             weight: P + layout.offset("y_embedder.text_proj.weight"),
                             bias: P + layout.offset("y_embedder.text_proj.bias"),
                             labels: y, nullLabel: c.numClasses, E: c.textDim, D: c.hiddenSize)
    }

    /// One adaLN-Zero block: x += gate_msa·attn(modulate(LN(x))); x += gate_mlp·mlp(modulate(LN(x))).
    func blockForward(_ l: Int, a: Activations, N: Int, T: Int, D: Int, H: Int, F: Int) {
        let o = blockOffsets[l], b = a.block(l)
        let x = a.residual(l).data, xOut = a.residual(l + 1).data, mod = b.mod.data
        blockLinearForward(.adaLN, layer: l, out: mod, inp: a.siluC.data, weight: o.adaW, bias: o.adaB, M: N, labels: a.labels)
        // attention branch
        layerNormModulateForward(out: b.h1.data, mean: b.ln1Mean.data, rstd: b.ln1Rstd.data, inp: x,
                                 shift: mod, scale: mod + D, modStride: 6 * D, N: N, T: T, D: D)
        blockLinearForward(.qkv, layer: l, out: b.qkv.data, inp: b.h1.data, weight: o.qkvW, bias: o.qkvB, M: N * T, labels: a.labels)
        attentionForward(out: b.attnO.data, probs: b.probs.data, qkv: b.qkv.data, N: N, T: T, D: D, H: H)
        blockLinearForward(.proj, layer: l, out: b.attnY.data, inp: b.attnO.data, weight: o.projW, bias: o.projB, M: N * T, labels: a.labels)
        gatedResidualForward(out: b.xMid.data, res: x, y: b.attnY.data, gate: mod + 2 * D, modStride: 6 * D, N: N, T: T, D: D)
        // MLP branch
        layerNormModulateForward(out: b.h2.data, mean: b.ln2Mean.data, rstd: b.ln2Rstd.data, inp: b.xMid.data,
                                 shift: mod + 3 * D, scale: mod + 4 * D, modStride: 6 * D, N: N, T: T, D: D)
        blockLinearForward(.fc1, layer: l, out: b.fc1.data, inp: b.h2.data, weight: o.fc1W, bias: o.fc1B, M: N * T, labels: a.labels,
                           epilogue: .gelu(act: b.gelu.data))  // gelu = GELU(fc1), fused
        blockLinearForward(.fc2, layer: l, out: b.mlpY.data, inp: b.gelu.data, weight: o.fc2W, bias: o.fc2B, M: N * T, labels: a.labels)
        gatedResidualForward(out: xOut, res: b.xMid.data, y: b.mlpY.data, gate: mod + 5 * D, modStride: 6 * D, N: N, T: T, D: D)
    }
}
