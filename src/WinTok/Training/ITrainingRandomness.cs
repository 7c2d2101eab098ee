using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// Every random draw of a WinTok training step, in the reference's terms and order. Per discriminator call the
/// reference draws <see cref="AugmentationSwitches"/>, then <see cref="AugmentationUniforms"/> (DiffAug), then
/// <see cref="ResizeCoin"/>, then, only when the coin chose a crop, <see cref="CropOffset"/> (DinoDiscV2). Nothing else
/// in a step is random (all dropout and drop-path rates are 0). Tests replay recorded draws through this interface;
/// production uses <see cref="TorchRandomness"/>.
/// </summary>
public interface ITrainingRandomness
{
    /// <summary>DiffAug's <c>torch.rand(3)</c>: one uniform per augmentation (translation, colour, cutout), float32 (3).</summary>
    Tensor AugmentationSwitches();

    /// <summary>DiffAug's <c>torch.rand(7, B, 1, 1)</c> on <paramref name="device"/>: translation H and W, brightness,
    /// saturation, contrast, cutout centre H and W, each one uniform per sample.</summary>
    Tensor AugmentationUniforms(long batch, Device device);

    /// <summary>The discriminator's <c>random.random()</c>: at most 0.5 crops, otherwise resizes.</summary>
    double ResizeCoin();

    /// <summary>torchvision <c>RandomCrop.get_params</c>: the top row in [0, <paramref name="topRange"/>), then the left
    /// column in [0, <paramref name="leftRange"/>), one offset for the whole batch.</summary>
    (long Top, long Left) CropOffset(long topRange, long leftRange);
}

/// <summary>A random source whose position can be saved with a checkpoint and restored on resume.</summary>
public interface IRestorableRandomness
{
    Tensor CaptureState();

    void RestoreState(Tensor state);
}

/// <summary>
/// Production draws from one seeded torch CPU generator. The reference draws the per-sample uniforms on the GPU's
/// generator and the coin from Python's <c>random</c>; the distributions are the same, and one CPU generator makes a
/// run reproducible from its seed on any device and resumable from <see cref="CaptureState"/>.
/// </summary>
public sealed class TorchRandomness : ITrainingRandomness, IRestorableRandomness, IDisposable
{
    private readonly Generator generator;

    public TorchRandomness(ulong seed) => generator = new Generator(seed, CPU);

    public Tensor AugmentationSwitches() => rand([3], ScalarType.Float32, CPU, generator: generator);

    public Tensor AugmentationUniforms(long batch, Device device)
    {
        using var uniforms = rand([7, batch, 1, 1], ScalarType.Float32, CPU, generator: generator);
        if (device.type != DeviceType.CUDA) return uniforms.to(device);
        // From pinned memory without waiting: a pageable copy would make the host wait for the device at every
        // discriminator call (torch's allocator keeps the pinned block until the copy has run).
        using var pinned = uniforms.pin_memory();
        return pinned.to(device, non_blocking: true);
    }

    public double ResizeCoin()
    {
        using var coin = rand([1], ScalarType.Float64, CPU, generator: generator);
        return coin.item<double>();
    }

    public (long Top, long Left) CropOffset(long topRange, long leftRange)
    {
        using var top = randint(0, topRange, [1], ScalarType.Int64, CPU, generator: generator);
        using var left = randint(0, leftRange, [1], ScalarType.Int64, CPU, generator: generator);
        return (top.item<long>(), left.item<long>());
    }

    public Tensor CaptureState() => generator.get_state();

    public void RestoreState(Tensor state) => generator.set_state(state);

    public void Dispose() => generator.Dispose();
}
