using System.Runtime.InteropServices;
using TorchSharp;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Inference;

/// <summary>Pixel and semantic tokens of one batch, copied out of native memory.</summary>
/// <param name="PixelTokens">(count, K, L) per-codebook ids, codebook-major per image, as the reference's img_to_idx.</param>
/// <param name="SemanticTokens">(count, N, D) bfloat16 bit patterns, or null when not requested.</param>
public sealed record TokenBatch(int Count, int Codebooks, int Positions, ushort[] PixelTokens, int SemanticTokenCount, int Width, ushort[]? SemanticTokens)
{
    public ReadOnlySpan<ushort> PixelTokensOf(int image) => PixelTokens.AsSpan(image * Codebooks * Positions, Codebooks * Positions);

    public ReadOnlySpan<ushort> SemanticTokensOf(int image) => SemanticTokens is null
        ? ReadOnlySpan<ushort>.Empty
        : SemanticTokens.AsSpan(image * SemanticTokenCount * Width, SemanticTokenCount * Width);
}

/// <summary>
/// Runs a loaded model on one device for a stream of batches. Every call is synchronous and opens and closes its own
/// inference mode and dispose scope, so no tensor outlives its batch; call it from one long-lived thread (TorchSharp's
/// scopes and grad-mode guards are thread-local, see docs/torchsharp.md §3).
/// </summary>
public sealed class TokenizerSession : IDisposable
{
    private readonly WinTokModel model;
    private readonly Device device;
    private Tensor? staging; // reusable (pinned on CUDA) host buffer of uint8 levels

    public TokenizerSession(WinTokModel model, Device device, ScalarType computeDtype)
    {
        this.model = model;
        this.device = device;
        if (device.type != DeviceType.CPU) model.to(device);
        model.PrepareForInference(computeDtype);
    }

    public WinTokModel Model => model;
    public Device Device => device;

    /// <summary>
    /// Tokenizes <paramref name="count"/> images given as 8-bit levels, CHW per image, RGB, already resized and cropped
    /// to the model's image size. Levels become reference inputs on the device exactly as torchvision's ToTensor +
    /// Normalize(0.5, 0.5) make them in float32, so the values are bit-identical to the reference's.
    /// </summary>
    public TokenBatch Tokenize(ReadOnlySpan<byte> levels, int count, bool semantic)
    {
        var size = model.Config.Encoder.ImageSize;
        var perImage = 3 * size * size;
        if (count < 1 || levels.Length < count * perImage)
            throw new ArgumentException($"Expected {count} images of 3x{size}x{size} levels ({count * perImage} bytes), got {levels.Length} bytes");

        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var input = Upload(levels[..(count * perImage)], count, size);
        var images = (input.to(float32) / 255.0 - 0.5) / 0.5;
        var output = model.Tokenize(images);
        var pixelTokens = CopyOut(output.Indices.to(int16), count * model.Config.NumCodebooks * model.Config.PixelTokens);
        ushort[]? semanticTokens = semantic
            ? CopyOut(output.SemanticTokens.to(bfloat16), count * model.Config.NumLatentTokens * model.Config.Encoder.HiddenSize)
            : null;
        return new TokenBatch(count, model.Config.NumCodebooks, model.Config.PixelTokens, pixelTokens,
            model.Config.NumLatentTokens, model.Config.Encoder.HiddenSize, semanticTokens);
    }

    private Tensor Upload(ReadOnlySpan<byte> levels, int count, int size)
    {
        var capacity = staging?.shape[0] ?? 0;
        if (capacity < count)
        {
            staging?.Dispose();
            using var outer = NewDisposeScope();
            var buffer = empty([count, 3, size, size], uint8);
            staging = (device.type == DeviceType.CUDA ? buffer.pin_memory() : buffer).DetachFromDisposeScope();
        }
        var host = staging!.narrow(0, 0, count);
        levels.CopyTo(host.bytes);
        return device.type == DeviceType.CPU ? host.clone() : host.to(device, non_blocking: true);
    }

    private static ushort[] CopyOut(Tensor values, int expected)
    {
        var host = values.cpu().contiguous();
        var result = new ushort[expected];
        MemoryMarshal.Cast<byte, ushort>(host.bytes).CopyTo(result);
        return result;
    }

    public void Dispose() => staging?.Dispose();
}
