using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Evaluation;

// PSNR and SSIM exactly as WinTok's evaluation computes them (examples/eval_tokenizer/eval_metrics_ddp.py @ eb0452e):
// images in [-1, 1] become uint8 HWC through ((x + 1) / 2) * 255 and a truncating cast, then per image
// skimage.metrics.peak_signal_noise_ratio(a, b) and structural_similarity(a, b, data_range=255, channel_axis=-1).
// The skimage code followed is scikit-image's metrics/simple_metrics.py and metrics/_structural_similarity.py: uint8 is
// computed in float64; SSIM uses scipy.ndimage.uniform_filter (7x7 box, mode 'reflect'), sample covariances (x 49/48),
// K1 0.01, K2 0.03, crops (7 - 1) / 2 = 3 pixels off every border before its float64 mean, and averages the channels.
// After that crop every remaining 7x7 window lies inside the image, so the border mode never matters and the box
// filter is a 7x7 average pool without padding. Box sums of uint8 values and products are integers below 2^53,
// hence exact in float64 in any order, on any device.

/// <summary>Per-image PSNR and SSIM of reconstructions, as scikit-image computes them on the reference's uint8 images.</summary>
public static class ImageQuality
{
    /// <summary>The uint8 data range skimage infers (and the evaluation passes to SSIM).</summary>
    public const double DataRange = 255;

    /// <summary>skimage's default SSIM window side.</summary>
    public const int WindowSize = 7;

    private const double K1 = 0.01;
    private const double K2 = 0.03;

    /// <summary>
    /// The reference's uint8 conversion: <c>((x + 1) / 2) * 255</c> in float32, then truncated (not rounded), so a
    /// level k stored as <c>k/255·2 − 1</c> can come back as k − 1. (B, 3, H, W) in [-1, 1] → (B, 3, H, W) uint8.
    /// </summary>
    public static Tensor ToLevels(Tensor images)
    {
        using var scope = NewDisposeScope();
        return images.to(float32).add(1).div(2).mul(255).to(uint8).MoveToOuterDisposeScope();
    }

    /// <summary>PSNR in dB per image: 10·log10(255² / MSE), MSE over all channels and pixels; +∞ for identical images.</summary>
    /// <param name="images">(B, 3, H, W) in [-1, 1].</param>
    /// <param name="reconstructions">(B, 3, H, W) in [-1, 1] (the evaluation clamps them first).</param>
    /// <returns>(B) float64 on the inputs' device.</returns>
    public static Tensor Psnr(Tensor images, Tensor reconstructions)
    {
        CheckShapes(images, reconstructions);
        using var scope = NewDisposeScope();
        return PsnrOfLevels(ToLevels(images), ToLevels(reconstructions)).MoveToOuterDisposeScope();
    }

    /// <summary>Mean SSIM per image (7×7 uniform window, sample covariance, border crop, mean over channels).</summary>
    /// <param name="images">(B, C, H, W) in [-1, 1]; H and W at least 7.</param>
    /// <param name="reconstructions">(B, C, H, W) in [-1, 1].</param>
    /// <returns>(B) float64 on the inputs' device.</returns>
    public static Tensor Ssim(Tensor images, Tensor reconstructions)
    {
        CheckShapes(images, reconstructions);
        using var scope = NewDisposeScope();
        return SsimOfLevels(ToLevels(images), ToLevels(reconstructions)).MoveToOuterDisposeScope();
    }

    /// <summary>PSNR of uint8 levels (B, C, H, W) → (B) float64.</summary>
    internal static Tensor PsnrOfLevels(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var mse = (a.to(float64) - b.to(float64)).square().mean([1, 2, 3]);        // (B)
        // One division, as numpy's (data_range ** 2) / err; a zero error gives +inf, as there.
        return full_like(mse, DataRange * DataRange).div(mse).log10().mul(10).MoveToOuterDisposeScope();
    }

    /// <summary>SSIM of uint8 levels (B, C, H, W) → (B) float64.</summary>
    internal static Tensor SsimOfLevels(Tensor a, Tensor b)
    {
        if (a.shape[2] < WindowSize || a.shape[3] < WindowSize)
        {
            throw new ArgumentException($"SSIM needs images of at least {WindowSize}x{WindowSize} pixels (skimage's window), got {a.shape[2]}x{a.shape[3]}");
        }
        using var scope = NewDisposeScope();
        var x = a.to(float64);
        var y = b.to(float64);
        Tensor Mean(Tensor t) => F.avg_pool2d(t, WindowSize, stride: 1);        // (B, C, H-6, W-6): the valid windows
        var ux = Mean(x);
        var uy = Mean(y);
        var uxx = Mean(x * x);
        var uyy = Mean(y * y);
        var uxy = Mean(x * y);
        const double points = WindowSize * WindowSize;
        const double covarianceNorm = points / (points - 1);                     // use_sample_covariance=True
        var vx = (uxx - ux * ux).mul(covarianceNorm);
        var vy = (uyy - uy * uy).mul(covarianceNorm);
        var vxy = (uxy - ux * uy).mul(covarianceNorm);
        double c1 = Math.Pow(K1 * DataRange, 2);
        double c2 = Math.Pow(K2 * DataRange, 2);
        var a1 = ux.mul(2).mul(uy).add(c1);                                      // 2·ux·uy + C1
        var a2 = vxy.mul(2).add(c2);                                             // 2·vxy + C2
        var b1 = (ux.square() + uy.square()).add(c1);                            // ux² + uy² + C1
        var b2 = (vx + vy).add(c2);                                              // vx + vy + C2
        var s = (a1 * a2) / (b1 * b2);                                           // (B, C, H-6, W-6)
        return s.mean([2, 3]).mean([1]).MoveToOuterDisposeScope();               // per channel, then over channels
    }

    private static void CheckShapes(Tensor images, Tensor reconstructions)
    {
        if (images.dim() != 4 || !images.shape.SequenceEqual(reconstructions.shape))
        {
            throw new ArgumentException(
                $"Images and reconstructions must both be (B, C, H, W) of one shape, got [{string.Join(", ", images.shape)}] and [{string.Join(", ", reconstructions.shape)}]");
        }
    }
}
