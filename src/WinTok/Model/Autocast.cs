using static TorchSharp.torch;

namespace WinTok.Model;

/// <summary>
/// What <c>torch.autocast</c> does for the reference's bf16 training, done by hand (TorchSharp has no autocast,
/// torchsharp.md §1): inside a region, matrix products and convolutions cast their input, weight and bias to the
/// region's low precision and return it; layer and group norms take float32 inputs and return float32; everything
/// else runs in the precision it is given, so residual sums of a float32 stream and a bf16 branch stay float32, as
/// under autocast. Weights stay float32 masters: the casts are part of the graph, so gradients reach them in float32.
/// </summary>
/// <remarks>
/// The region is per thread, as PyTorch's is, and tensor code runs on one thread (torchsharp.md §3). The layers that
/// consult it are <see cref="Dense"/>, <see cref="Norm"/> and <see cref="Conv"/>; the reference turns autocast off
/// around the attention projections and the quantizer, which <see cref="Suspend"/> reproduces.
/// </remarks>
public static class Autocast
{
    [ThreadStatic] private static ScalarType? current;

    /// <summary>The region's low precision, or null outside a region (float32 everywhere).</summary>
    public static ScalarType? LowPrecision => current;

    /// <summary>Opens a region running matrix products in <paramref name="dtype"/>; float32 (or null) means none.</summary>
    public static Region Enter(ScalarType? dtype) => new(dtype is ScalarType.Float32 ? null : dtype);

    /// <summary>Leaves any region until disposed (the reference's <c>autocast(enabled=False)</c> blocks).</summary>
    public static Region Suspend() => new(null);

    /// <summary><paramref name="tensor"/> in the region's low precision (unchanged outside a region or when null).</summary>
    internal static Tensor? Low(Tensor? tensor) =>
        current is { } low && tensor is not null && tensor.dtype != low && tensor.is_floating_point() ? tensor.to(low) : tensor;

    /// <summary><paramref name="tensor"/> in float32 inside a region (what autocast does for norms); unchanged outside.</summary>
    internal static Tensor Full(Tensor tensor) =>
        current is not null && tensor.dtype != ScalarType.Float32 && tensor.is_floating_point() ? tensor.to(ScalarType.Float32) : tensor;

    /// <summary>Restores the enclosing region's precision when disposed; dispose on the thread that opened it.</summary>
    public readonly struct Region : IDisposable
    {
        private readonly ScalarType? previous;

        internal Region(ScalarType? dtype)
        {
            previous = current;
            current = dtype;
        }

        public void Dispose() => current = previous;
    }
}
