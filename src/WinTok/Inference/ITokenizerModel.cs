using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Inference;

/// <summary>
/// What a tokenizer is, in the terms jobs, shard metadata and results need; no tensors. One per loaded checkpoint.
/// </summary>
/// <param name="Kind">The architecture: <c>wintok</c> or <c>unitok</c> (<see cref="ModelKinds"/>).</param>
/// <param name="ImageSize">Square input side in pixels; preprocessing resizes and crops to it.</param>
/// <param name="NumCodebooks">K: token ids per position, one per codebook.</param>
/// <param name="CodebookSize">Ids per codebook (ids are in [0, CodebookSize)).</param>
/// <param name="PixelTokens">L: positions per image, row-major over a <paramref name="GridSize"/> square.</param>
/// <param name="GridSize">Side of the token grid.</param>
/// <param name="SemanticTokens">N continuous semantic tokens per image (0 when the model has none).</param>
/// <param name="SemanticWidth">Width D of each semantic token (0 when the model has none).</param>
/// <param name="EmbeddingWidth">Width of the normalised image embedding (zero-shot, retrieval).</param>
/// <param name="ArgsJson">The configuration in the reference's <c>Args</c> names, as JSON (recorded with every shard).</param>
public sealed record ModelDescription(
    string Kind,
    int ImageSize,
    int NumCodebooks,
    int CodebookSize,
    int PixelTokens,
    int GridSize,
    int SemanticTokens,
    int SemanticWidth,
    int EmbeddingWidth,
    string ArgsJson);

/// <summary>The model architectures the product runs.</summary>
public static class ModelKinds
{
    public const string WinTok = "wintok";
    public const string UniTok = "unitok";

    public static IReadOnlyList<string> All { get; } = [WinTok, UniTok];
}

/// <summary>
/// What every job needs from a tokenizer, whatever its architecture: images to tokens, tokens to images, images to
/// reconstructions and to their normalised embedding. Images are (B, 3, H, W) float32 in [-1, 1] on the model's device.
/// Every method is synchronous tensor code: call it on the device's one thread (<see cref="ModelThread"/>).
/// </summary>
public interface ITokenizerModel : IDisposable
{
    ModelDescription Description { get; }

    /// <summary>
    /// Moves the model to <paramref name="device"/> and readies it for serving: eval mode, <paramref name="dtype"/> for
    /// the transformer stacks (the projections and the quantizer keep float32, as the reference does under autocast),
    /// and the CUDA paths <paramref name="fastPaths"/> allows. Call once, after loading.
    /// </summary>
    void PrepareForInference(Device device, ScalarType dtype, CudaFastPaths fastPaths);

    /// <summary>Pixel-token ids (B, K, L) int64 and, when the model has them, semantic tokens (B, N, D) float32.</summary>
    TokenizeOutput Tokenize(Tensor images);

    /// <summary>Ids (B, K, L) to reconstructions (B, 3, H, W) float32, not clamped (reference <c>idx_to_img</c>).</summary>
    Tensor IndicesToImage(Tensor indices);

    /// <summary>
    /// Encode then decode (reference <c>forward(x)['recon']</c>): the reconstructions (B, 3, H, W) float32, not clamped,
    /// the ids (B, K, L) the quantizer chose on the way and, when <paramref name="withEmbedding"/>, the normalised image
    /// embedding of the same encoder pass (what <see cref="EncodeImage"/> returns), so an evaluation runs the encoder once.
    /// </summary>
    Reconstruction Reconstruct(Tensor images, bool withEmbedding = false);

    /// <summary>The L2-normalised image embedding (B, E) the model's zero-shot classifier compares with text.</summary>
    Tensor EncodeImage(Tensor images);
}

/// <summary>Tokenizer output: discrete pixel tokens and, when the model has them, continuous semantic tokens.</summary>
/// <param name="Indices">(B, K, L) int64 per-codebook ids.</param>
/// <param name="SemanticTokens">(B, N, D) float32, or null for a model without semantic tokens.</param>
public sealed record TokenizeOutput(Tensor Indices, Tensor? SemanticTokens) : IDisposable
{
    public void Dispose()
    {
        Indices.Dispose();
        SemanticTokens?.Dispose();
    }
}

/// <summary>
/// Reconstructions (B, 3, H, W) float32, not clamped, the ids (B, K, L) int64 they were decoded from, and the normalised
/// image embedding (B, E) float32 when asked for.
/// </summary>
public sealed record Reconstruction(Tensor Images, Tensor Indices, Tensor? Embedding = null) : IDisposable
{
    public void Dispose()
    {
        Images.Dispose();
        Indices.Dispose();
        Embedding?.Dispose();
    }
}
