import Tensors

extension DiTModel {
    /// Accumulates d(loss)/d(params) into `grads`, given dOut = d(loss)/d(output) (N, 2C, S, S)
    /// for the most recent `forward`. The exact reverse of `forward`, kernel by kernel.
    /// Consumes the cached attention probabilities (call `forward` again before another backward).
    public func backward(dOut: UnsafePointer<Float>) {
        guard let a = acts else { preconditionFailure("backward called before forward") }
        precondition(!a.inference, "backward needs a model not in inferenceOnly mode")
        let c = config, N = a.N, D = c.hiddenSize, T = c.tokens, H = c.numHeads, F = c.mlpHidden
        let P = params.data, G = grads.data
        let outDim = c.patchSize * c.patchSize * c.outChannels

        // Final layer.
        unpatchifyBackward(dTokens: a.dOutTok.data, dImages: dOut, N: N, OC: c.outChannels, S: c.inputSize, p: c.patchSize)
        linearBackward(dInp: a.dH.data, dWeight: G + layout.offset("final_layer.linear.weight"),
                       dBias: G + layout.offset("final_layer.linear.bias"), dOut: a.dOutTok.data, inp: a.hF.data,
                       weight: P + layout.offset("final_layer.linear.weight"), M: N * T, IC: D, OC: outDim, overwriteInput: true)
        a.dResid.zero()
        a.dMod.zero()
        layerNormModulateBackward(dInp: a.dResid.data, dShift: a.dMod.data, dScale: a.dMod.data + D, dOut: a.dH.data,
                                  inp: a.resid[c.depth].data, mean: a.lnFMean.data, rstd: a.lnFRstd.data,
                                  scale: a.modF.data + D, modStride: 2 * D, N: N, T: T, D: D)
        linearBackward(dInp: a.dSiluC.data, dWeight: G + layout.offset("final_layer.adaLN_modulation.1.weight"),
                       dBias: G + layout.offset("final_layer.adaLN_modulation.1.bias"), dOut: a.dMod.data, inp: a.siluC.data,
                       weight: P + layout.offset("final_layer.adaLN_modulation.1.weight"), M: N, IC: D, OC: 2 * D,
                       overwriteInput: true)

        for l in stride(from: c.depth - 1, through: 0, by: -1) {
            blockBackward(l, a: a, N: N, T: T, D: D, H: H, F: F)
        }

        // Patch embedding: weight and bias only (the images need no gradient).
        linearBackward(dInp: nil, dWeight: G + layout.offset("x_embedder.proj.weight"),
                       dBias: G + layout.offset("x_embedder.proj.bias"), dOut: a.dResid.data, inp: a.patches.data,
                       weight: P + layout.offset("x_embedder.proj.weight"), M: N * T, IC: c.patchDim, OC: D)

        // Conditioning: c = t_emb + y_emb, so both receive dC.
        a.dC.zero()
        siluBackward(dInp: a.dC.data, dOut: a.dSiluC.data, inp: a.c.data, count: N * D)
        if c.textDim > 0 {
            // Text: W_text, b_text and the null row; the text table is frozen data.
            textEmbeddingBackward(dWeight: G + layout.offset("y_embedder.text_proj.weight"),
                                  dBias: G + layout.offset("y_embedder.text_proj.bias"),
                                  dNullRow: layout["y_embedder.embedding_table.weight"].map { G + $0.offset },
                                  dOut: a.dC.data, inputs: a.textIn.data, labels: a.labels, nullLabel: c.numClasses,
                                  E: c.textDim, D: D)
        } else {
            embeddingBackward(dTable: G + layout.offset("y_embedder.embedding_table.weight"), dOut: a.dC.data, labels: a.labels, D: D)
        }
        linearBackward(dInp: a.dTHs.data, dWeight: G + layout.offset("t_embedder.mlp.2.weight"),
                       dBias: G + layout.offset("t_embedder.mlp.2.bias"), dOut: a.dC.data, inp: a.tHs.data,
                       weight: P + layout.offset("t_embedder.mlp.2.weight"), M: N, IC: D, OC: D, overwriteInput: true)
        a.dTH.zero()
        siluBackward(dInp: a.dTH.data, dOut: a.dTHs.data, inp: a.tH.data, count: N * D)
        linearBackward(dInp: nil, dWeight: G + layout.offset("t_embedder.mlp.0.weight"),
                       dBias: G + layout.offset("t_embedder.mlp.0.bias"), dOut: a.dTH.data, inp: a.tFreq.data,
                       weight: P + layout.offset("t_embedder.mlp.0.weight"), M: N, IC: c.frequencyEmbeddingSize, OC: D)
    }

    /// Backward of one block. On entry `dResid` holds d(loss)/d(block output); on exit
    /// d(loss)/d(block input). dSiluC accumulates this block's adaLN contribution.
    func blockBackward(_ l: Int, a: Activations, N: Int, T: Int, D: Int, H: Int, F: Int) {
        let o = blockOffsets[l], b = a.blocks[l]
        let mod = b.mod.data, dMod = a.dMod.data, dR = a.dResid.data
        a.dMod.zero()
        // MLP branch: x_out = x_mid + gate_mlp · fc2(gelu(fc1(h2)))
        gatedResidualBackward(dY: a.dY.data, dGate: dMod + 5 * D, dOut: dR, y: b.mlpY.data, gate: mod + 5 * D,
                              modStride: 6 * D, N: N, T: T, D: D)
        // dFc = (dY · W_fc2) ⊙ gelu′(fc1), the GELU backward fused into the product's rows.
        blockLinearBackward(.fc2, layer: l, dInp: a.dFc.data, dOut: a.dY.data, inp: b.gelu.data, weight: o.fc2W, bias: o.fc2B,
                            M: N * T, labels: a.labels, overwriteInput: true, inputEpilogue: .geluBackward(preact: b.fc1.data))
        blockLinearBackward(.fc1, layer: l, dInp: a.dH.data, dOut: a.dFc.data, inp: b.h2.data, weight: o.fc1W, bias: o.fc1B,
                            M: N * T, labels: a.labels, overwriteInput: true)
        layerNormModulateBackward(dInp: dR, dShift: dMod + 3 * D, dScale: dMod + 4 * D, dOut: a.dH.data, inp: b.xMid.data,
                                  mean: b.ln2Mean.data, rstd: b.ln2Rstd.data, scale: mod + 4 * D, modStride: 6 * D,
                                  N: N, T: T, D: D)
        // Attention branch: x_mid = x + gate_msa · proj(attn(qkv(h1)))
        gatedResidualBackward(dY: a.dY.data, dGate: dMod + 2 * D, dOut: dR, y: b.attnY.data, gate: mod + 2 * D,
                              modStride: 6 * D, N: N, T: T, D: D)
        blockLinearBackward(.proj, layer: l, dInp: a.dAttnO.data, dOut: a.dY.data, inp: b.attnO.data, weight: o.projW, bias: o.projB,
                            M: N * T, labels: a.labels, overwriteInput: true)
        attentionBackward(dQKV: a.dQKV.data, scratch: a.attnScratch.data, scratchWorkers: a.attnScratch.count / (T * T), dOut: a.dAttnO.data, probs: b.probs.data,
                          qkv: b.qkv.data, N: N, T: T, D: D, H: H)
        blockLinearBackward(.qkv, layer: l, dInp: a.dH.data, dOut: a.dQKV.data, inp: b.h1.data, weight: o.qkvW, bias: o.qkvB,
                            M: N * T, labels: a.labels, overwriteInput: true)
        layerNormModulateBackward(dInp: dR, dShift: dMod, dScale: dMod + D, dOut: a.dH.data, inp: a.resid[l].data,
                                  mean: b.ln1Mean.data, rstd: b.ln1Rstd.data, scale: mod + D, modStride: 6 * D,
                                  N: N, T: T, D: D)
        // adaLN modulation: mod = W·SiLU(c) + b
        blockLinearBackward(.adaLN, layer: l, dInp: a.dSiluC.data, dOut: dMod, inp: a.siluC.data, weight: o.adaW, bias: o.adaB,
                            M: N, labels: a.labels, overwriteInput: false)
    }
}
