/// TextEncoder: the frozen all-MiniLM-L6-v2 sentence encoder (BERT WordPiece tokenizer,
/// 6-layer encoder, masked mean pooling, L2 normalization) with a backward pass to the input
/// token embeddings, for CreTok. ../shared/docs/assets.md §3.
public enum TextEncoderModule {}
