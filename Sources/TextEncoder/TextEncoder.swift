import Tensors
/// TextEncoder: the frozen all-MiniLM-L6-v2 sentence encoder (BERT WordPiece tokenizer,
/// 6-layer encoder, masked mean pooling, L2 normalization) with a backward pass to the input
/// token embeddings, for CreTok. ../shared/docs/assets.md §3.
///
/// The files:
///   - `WordPieceTokenizer`: BERT's uncased tokenizer exactly as HF tokenizers runs it
///     (BertNormalizer, BertPreTokenizer, WordPiece), plus verbatim added tokens.
///   - `BertConfig`: the few fields of HF's config.json the encoder needs.
///   - `BertWeights`: the tensors of a HF `BertModel` safetensors file, under HF's key names.
///   - `BertKernels`: llm.c-style forward/backward pairs over flat buffers (affine LayerNorm,
///     exact erf GELU, attention over one sentence's tokens, mean pooling, L2 normalization).
///   - `BertEncoder`: the forward pass (batched sentences of any lengths, optionally one
///     vocabulary row overridden) and the backward pass to the input word-embedding vectors.
///   - `MiniLM`: the installed all-MiniLM-L6-v2 (where its files are looked for, loading).
///   - `CreTokPairs`, `CreTokSettings`, `CreTokObjective`, `CreTokTrainer`: CreTok
///     (methods.md §5): the concept pairs, the capped cosine loss on this encoder with its
///     gradient to the `<CreTok>` row, the trainer (Adam, checkpoints) and the evaluation.
public enum TextEncoderModule {}

/// What went wrong, and how to fix it.
public typealias TextEncoderError = FixableError
