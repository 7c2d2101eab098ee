namespace WinTok.Data.Images;

/// <summary>
/// The random numbers one <see cref="RandomResizedCrop"/> consumes, in the order torchvision draws them: per attempt a
/// scale and a log aspect ratio (<c>torch.empty(1).uniform_(lo, hi)</c>, float32), then for the accepted box its top
/// row and its left column (<c>torch.randint(0, n, (1,))</c>).
/// </summary>
public interface ICropDraws
{
    /// <summary>A float32 uniform in [<paramref name="low"/>, <paramref name="high"/>).</summary>
    float Uniform(float low, float high);

    /// <summary>An integer uniform in [0, <paramref name="exclusiveMax"/>).</summary>
    int Integer(int exclusiveMax);
}

/// <summary>Where a random crop is cut from the decoded image, in its pixels.</summary>
public readonly record struct CropBox(int Top, int Left, int Height, int Width);

/// <summary>
/// The reference's training crop (open_clip <c>image_transform(is_train=True)</c>: torchvision
/// <c>RandomResizedCrop(size, scale, ratio=(3/4, 4/3), BICUBIC)</c>): the area fraction and aspect ratio ranges.
/// </summary>
/// <param name="ScaleMin">Smallest area fraction: 0.9, or 0.64 with the reference's <c>--use_aug</c>.</param>
/// <param name="ScaleMax">Largest area fraction: 1.</param>
/// <param name="RatioMin">Smallest aspect ratio (width / height): 3/4.</param>
/// <param name="RatioMax">Largest aspect ratio: 4/3.</param>
public sealed record CropRanges(double ScaleMin = 0.9, double ScaleMax = 1.0, double RatioMin = 3.0 / 4.0, double RatioMax = 4.0 / 3.0)
{
    /// <summary>The reference's default (scale 0.9 to 1).</summary>
    public static CropRanges Reference { get; } = new();

    /// <summary>The reference with <c>--use_aug</c> (scale 0.64 to 1).</summary>
    public static CropRanges Augmented { get; } = new(ScaleMin: 0.64);

    /// <summary>Every reason these ranges cannot crop, empty when they can.</summary>
    public IEnumerable<string> Problems()
    {
        if (!(ScaleMin > 0 && ScaleMin <= ScaleMax && ScaleMax <= 1))
            yield return $"the crop scale range must satisfy 0 < min <= max <= 1, got ({ScaleMin}, {ScaleMax})";
        if (!(RatioMin > 0 && RatioMin <= RatioMax && double.IsFinite(RatioMax)))
            yield return $"the crop aspect ratio range must satisfy 0 < min <= max, got ({RatioMin}, {RatioMax})";
    }
}

/// <summary>
/// torchvision's <c>RandomResizedCrop.get_params</c> (torchvision 0.14 to 0.26, unchanged): up to ten attempts at a box
/// of a random area fraction and log-uniform aspect ratio that fits the image, else a centred box of the closest
/// allowed aspect ratio. Given the same draws, the same box, with Python's arithmetic: products and square roots in
/// double, <c>round()</c> to even, the float32 draws and the float32 <c>exp</c> of the log ratio.
/// </summary>
public static class RandomResizedCrop
{
    /// <summary>How many boxes torchvision tries before it falls back to the centre.</summary>
    public const int Attempts = 10;

    public static CropBox Sample(int width, int height, CropRanges ranges, ICropDraws draws)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentNullException.ThrowIfNull(draws);
        double area = (double)height * width;
        // torch.log(torch.tensor(ratio)): float32 values, float32 logs.
        var logLow = MathF.Log((float)ranges.RatioMin);
        var logHigh = MathF.Log((float)ranges.RatioMax);
        for (var attempt = 0; attempt < Attempts; attempt++)
        {
            double targetArea = area * draws.Uniform((float)ranges.ScaleMin, (float)ranges.ScaleMax);
            double aspectRatio = MathF.Exp(draws.Uniform(logLow, logHigh));
            var w = RoundHalfEven(Math.Sqrt(targetArea * aspectRatio));
            var h = RoundHalfEven(Math.Sqrt(targetArea / aspectRatio));
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                var top = draws.Integer(height - h + 1);
                var left = draws.Integer(width - w + 1);
                return new CropBox(top, left, h, w);
            }
        }
        return Centre(width, height, ranges);
    }

    /// <summary>torchvision's fallback: the whole image, narrowed to the nearest allowed aspect ratio, centred.</summary>
    internal static CropBox Centre(int width, int height, CropRanges ranges)
    {
        var inRatio = (double)width / height;
        int w, h;
        if (inRatio < ranges.RatioMin)
        {
            w = width;
            h = RoundHalfEven(w / ranges.RatioMin);
        }
        else if (inRatio > ranges.RatioMax)
        {
            h = height;
            w = RoundHalfEven(h * ranges.RatioMax);
        }
        else
        {
            (w, h) = (width, height);
        }
        return new CropBox((height - h) / 2, (width - w) / 2, h, w);
    }

    private static int RoundHalfEven(double value) => (int)Math.Round(value, MidpointRounding.ToEven);
}
