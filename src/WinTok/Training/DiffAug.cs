using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Training;

/// <summary>
/// Differentiable augmentation of the discriminator's inputs (reference utils/diffaug.py, taken from StyleGAN-T,
/// Sauer et al. 2023, after Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", 2020):
/// an optional warm-up blur, then translation, colour and cutout, each switched on with probability
/// <c>prob</c>. Everything is written op by op as the reference writes it, so the same draws give the same pixels.
/// </summary>
/// <remarks>
/// The blur kernel is cached by radius, as in the reference: it is rebuilt only when the radius changes, so a
/// schedule whose sigma moves within one radius keeps the first sigma's kernel. The cached kernel outlives every
/// dispose scope; <see cref="Dispose"/> releases it.
/// </remarks>
internal sealed class DiffAug(double probability, double cutout) : IDisposable
{
    private const double TranslationRatio = 0.125;
    private readonly bool usingCutout = probability > 0; // the reference keys cutout on the signed probability
    private int cachedRadius = -1;
    private Tensor? cachedKernel; // (2r+1) normalised base-2 Gaussian, built for cachedRadius

    public double Probability { get; } = Math.Abs(probability);

    public double Cutout { get; } = cutout;

    /// <summary>The radius the cached kernel was built for (-1 before any blur).</summary>
    public int CachedBlurRadius => cachedRadius;

    /// <summary>The cached 1-D kernel (2r+1), or null before any blur; owned by this object.</summary>
    public Tensor? CachedBlurKernel => cachedKernel;

    /// <summary>Puts back a cache captured earlier, so a resumed run blurs with the same kernel as the stopped one.</summary>
    public void RestoreBlurCache(int radius, Tensor? kernel)
    {
        if ((radius >= 1) != (kernel is not null) || (kernel is not null && (kernel.dim() != 1 || kernel.shape[0] != 2L * radius + 1)))
            throw new ArgumentException($"A blur cache needs a kernel of 2r+1 taps for radius r >= 1, or radius -1 and none; got radius {radius} and {(kernel is null ? "no kernel" : $"({string.Join(", ", kernel.shape)})")}");
        cachedKernel?.Dispose();
        cachedKernel = kernel?.detach().clone().DetachFromDisposeScope();
        cachedRadius = kernel is null ? -1 : radius;
    }

    /// <summary>Images (B, C, H, W) to augmented float32 images; <paramref name="blurSchedule"/> in [0, 1] scales the blur.</summary>
    public Tensor Augment(Tensor images, double blurSchedule, ITrainingRandomness random)
    {
        using var scope = NewDisposeScope();
        var x = images.dtype == ScalarType.Float32 ? images : images.to(ScalarType.Float32);
        if (blurSchedule > 0) x = Blur(x, blurSchedule);
        if (Probability < 1e-6) return Owned(x, images);

        using var switches = random.AugmentationSwitches().le(Probability);
        var (translate, color, cut) = (switches[0].item<bool>(), switches[1].item<bool>(), switches[2].item<bool>());
        var (b, device) = (x.shape[0], x.device);
        var uniforms = translate || color || cut ? random.AugmentationUniforms(b, device) : null; // (7, B, 1, 1)
        var (h, w) = (x.shape[2], x.shape[3]);

        if (translate)
        {
            var deltaH = (long)Math.Round(h * TranslationRatio, MidpointRounding.ToEven); // Python's round()
            var deltaW = (long)Math.Round(w * TranslationRatio, MidpointRounding.ToEven);
            var shiftH = uniforms![0].mul(deltaH + deltaH + 1).floor().to(ScalarType.Int64) - deltaH; // (B, 1, 1)
            var shiftW = uniforms[1].mul(deltaW + deltaW + 1).floor().to(ScalarType.Int64) - deltaW;
            var (gridB, gridH, gridW) = Grids(b, h, w, device);
            gridH = (gridH + shiftH).add_(1).clamp_(0, h + 1);
            gridW = (gridW + shiftW).add_(1).clamp_(0, w + 1);
            // A one-pixel zero border and a clamped gather: pixels shifted in from outside are zero.
            var padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0]);
            x = padded.permute(0, 2, 3, 1).contiguous()[gridB, gridH, gridW].permute(0, 3, 1, 2).contiguous();
        }

        if (color)
        {
            x = x.add(uniforms![2].unsqueeze(-1).sub(0.5));                                   // brightness
            var channelMean = x.mean([1], keepdim: true);
            x = x.sub(channelMean).mul(uniforms[3].unsqueeze(-1).mul(2)).add_(channelMean); // saturation
            var imageMean = x.mean([1, 2, 3], keepdim: true);
            x = x.sub(imageMean).mul(uniforms[4].unsqueeze(-1).add(0.5)).add_(imageMean);   // contrast
        }

        if (usingCutout && cut)
        {
            var cutH = (long)Math.Round(h * Cutout, MidpointRounding.ToEven);
            var cutW = (long)Math.Round(w * Cutout, MidpointRounding.ToEven);
            var offsetH = uniforms![5].mul(h + (1 - cutH % 2)).floor().to(ScalarType.Int64);
            var offsetW = uniforms[6].mul(w + (1 - cutW % 2)).floor().to(ScalarType.Int64);
            var (gridB, gridH, gridW) = Grids(b, cutH, cutW, device);
            gridH = (gridH + offsetH).sub_(cutH / 2).clamp(0, h - 1);
            gridW = (gridW + offsetW).sub_(cutW / 2).clamp(0, w - 1);
            var mask = ones([b, h, w], x.dtype, device);
            mask[gridB, gridH, gridW] = zeros([], x.dtype, device);
            x = x.mul(mask.unsqueeze(1));
        }
        return Owned(x, images);
    }

    public void Dispose() => cachedKernel?.Dispose();

    /// <summary>Separable blur with a base-2 Gaussian, sigma = sqrt(H/2) * schedule, radius floor(3 sigma), reflect padding.</summary>
    private Tensor Blur(Tensor x, double schedule)
    {
        var channels = x.shape[1];
        var sigma = Math.Pow(x.shape[2] * 0.5, 0.5) * schedule;
        var radius = (int)Math.Floor(sigma * 3);
        if (radius < 1) return x;
        if (cachedRadius != radius || cachedKernel is null)
        {
            cachedKernel?.Dispose();
            using var kernelScope = NewDisposeScope();
            var gaussian = arange(-radius, radius + 1, ScalarType.Float32, x.device);
            gaussian = gaussian.mul_(1 / sigma).pow_(2).neg_().exp2_(); // square_ is pow 2 in ATen
            gaussian.div_(gaussian.sum());
            cachedKernel = gaussian.DetachFromDisposeScope();
            cachedRadius = radius;
        }
        var kernel = cachedKernel.to(x.device);
        var taps = 2 * radius + 1;
        x = F.pad(x, [radius, radius, radius, radius], PaddingModes.Reflect);
        x = F.conv2d(x, kernel.view(1, 1, taps, 1).repeat(channels, 1, 1, 1).contiguous(), groups: channels);
        return F.conv2d(x, kernel.view(1, 1, 1, taps).repeat(channels, 1, 1, 1).contiguous(), groups: channels);
    }

    /// <summary>The result moved out of this call's scope; a fresh handle when it is the caller's own input tensor.</summary>
    private static Tensor Owned(Tensor x, Tensor input) => (ReferenceEquals(x, input) ? x.alias() : x).MoveToOuterDisposeScope();

    private static (Tensor B, Tensor H, Tensor W) Grids(long batch, long height, long width, Device device)
    {
        var grids = meshgrid([arange(batch, ScalarType.Int64, device), arange(height, ScalarType.Int64, device), arange(width, ScalarType.Int64, device)], "ij");
        return (grids[0], grids[1], grids[2]);
    }
}
