using System.Runtime.InteropServices;
using TorchSharp;
using WinTok.Cuda;
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
    private readonly ITokenizerModel model;
    private readonly ModelDescription description;
    private readonly Device device;
    private readonly Tensor?[] staging = new Tensor?[2]; // reusable (pinned on CUDA) host buffers of uint8 levels, alternating
    private int next;

    /// <summary>Serves <paramref name="model"/>, already prepared for inference on <paramref name="device"/>.</summary>
    public TokenizerSession(ITokenizerModel model, Device device)
    {
        this.model = model;
        this.device = device;
        description = model.Description;
    }

    public ITokenizerModel Model => model;
    public Device Device => device;

    /// <summary>
    /// Tokenizes <paramref name="count"/> images given as 8-bit levels, CHW per image, RGB, already resized and cropped
    /// to the model's image size. Levels become reference inputs on the device exactly as torchvision's ToTensor +
    /// Normalize(0.5, 0.5) make them in float32, so the values are bit-identical to the reference's.
    /// </summary>
    public TokenBatch Tokenize(ReadOnlySpan<byte> levels, int count, bool semantic) => Collect(Launch(levels, count, semantic));

    /// <summary>
    /// The first half of <see cref="Tokenize"/>: copies the levels in, queues the whole batch on the GPU (the copies of
    /// the tokens back to pinned host memory included) and returns without waiting. Launching the next batch before
    /// collecting this one keeps the GPU busy while the host prepares and issues work. At most two batches may be in
    /// flight: the host staging buffers alternate between two.
    /// </summary>
    public PendingTokens Launch(ReadOnlySpan<byte> levels, int count, bool semantic)
    {
        var size = description.ImageSize;
        var perImage = 3 * size * size;
        if (count < 1 || levels.Length < count * perImage)
            throw new ArgumentException($"Expected {count} images of 3x{size}x{size} levels ({count * perImage} bytes), got {levels.Length} bytes");

        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var input = Upload(levels[..(count * perImage)], count, size);
        var images = (input.to(float32) / 255.0 - 0.5) / 0.5;
        var output = model.Tokenize(images);
        var pixelTokens = ToHost(output.Indices.to(int16));
        var semanticTokens = semantic && output.SemanticTokens is { } tokens ? ToHost(tokens.to(bfloat16)) : null;
        var done = device.type == DeviceType.CUDA ? CudaEvent.TryRecord() : null;
        var waitForDevice = device.type == DeviceType.CUDA && done is null; // no driver API: fall back to a full synchronize
        return new PendingTokens(count, pixelTokens.DetachFromDisposeScope(), semanticTokens?.DetachFromDisposeScope(), done, waitForDevice);
    }

    /// <summary>Waits for a launched batch and copies its tokens out of native memory.</summary>
    public TokenBatch Collect(PendingTokens pending)
    {
        using (pending)
        {
            pending.Wait();
            var pixelTokens = CopyOut(pending.PixelTokens, pending.Count * description.NumCodebooks * description.PixelTokens);
            var semanticTokens = pending.SemanticTokens is { } semantic
                ? CopyOut(semantic, pending.Count * description.SemanticTokens * description.SemanticWidth)
                : null;
            return new TokenBatch(pending.Count, description.NumCodebooks, description.PixelTokens, pixelTokens,
                description.SemanticTokens, description.SemanticWidth, semanticTokens);
        }
    }

    /// <summary>A device-to-host copy queued behind the batch (into pinned memory, so it does not block the host).</summary>
    private Tensor ToHost(Tensor values) =>
        device.type == DeviceType.CPU ? values.contiguous() : values.contiguous().to(CPU, non_blocking: true);

    private Tensor Upload(ReadOnlySpan<byte> levels, int count, int size)
    {
        var capacity = staging[next]?.shape[0] ?? 0;
        if (capacity < count)
        {
            staging[next]?.Dispose();
            using var outer = NewDisposeScope();
            var buffer = empty([count, 3, size, size], uint8);
            staging[next] = (device.type == DeviceType.CUDA ? buffer.pin_memory() : buffer).DetachFromDisposeScope();
        }
        var host = staging[next]!.narrow(0, 0, count);
        next = 1 - next; // the other buffer's copy to the device belongs to a batch already collected
        levels.CopyTo(host.bytes);
        return device.type == DeviceType.CPU ? host.clone() : host.to(device, non_blocking: true);
    }

    private static ushort[] CopyOut(Tensor host, int expected)
    {
        var result = new ushort[expected];
        MemoryMarshal.Cast<byte, ushort>(host.bytes).CopyTo(result);
        return result;
    }

    public void Dispose()
    {
        foreach (var buffer in staging) buffer?.Dispose();
    }
}

/// <summary>A launched batch: host tensors the GPU is still filling, and the event that says when it has.</summary>
public sealed class PendingTokens : IDisposable
{
    private readonly CudaEvent? done;
    private readonly bool waitForDevice;

    internal PendingTokens(int count, Tensor pixelTokens, Tensor? semanticTokens, CudaEvent? done, bool waitForDevice) =>
        (Count, PixelTokens, SemanticTokens, this.done, this.waitForDevice) = (count, pixelTokens, semanticTokens, done, waitForDevice);

    internal int Count { get; }
    internal Tensor PixelTokens { get; }
    internal Tensor? SemanticTokens { get; }

    /// <summary>Whether <see cref="Wait"/> would return at once (always, where no event could be recorded).</summary>
    public bool IsComplete => done?.IsComplete ?? true;

    /// <summary>Returns once the batch's tokens are in host memory.</summary>
    internal void Wait()
    {
        done?.Synchronize();
        if (waitForDevice) cuda.synchronize();
    }

    public void Dispose()
    {
        Wait(); // never free host memory a queued copy still writes to
        done?.Dispose();
        PixelTokens.Dispose();
        SemanticTokens?.Dispose();
    }
}
