using System.Buffers;
using SkiaSharp;

namespace WinTok.Data.Images;

/// <summary>
/// The reference's training transform (WinTok reference §3; data/dataset.py with open_clip's
/// <c>image_transform(is_train=True)</c>): Pillow decode converted to RGB first (webdataset's <c>pilrgb</c>, or
/// <c>Image.open(f).convert('RGB')</c>), torchvision <c>RandomResizedCrop(size, scale, ratio=(3/4, 4/3), BICUBIC)</c>, i.e.
/// <c>img.crop(box).resize((size, size), BICUBIC)</c> with Pillow's antialiased bicubic, then <c>ToTensor</c> and
/// <c>Normalize(0.5, 0.5)</c>. The crop box comes from the draws the caller passes (<see cref="ICropDraws"/>), so
/// given the same draws the pixels are the reference's.
/// </summary>
/// <remarks>
/// Thread-safe: one instance serves every decode thread. Bad input never throws; it comes back as a rejection, as from
/// <see cref="ImagePreprocessor"/>. Unlike the evaluation transform, the image is RGB before it is resized, so
/// alpha is dropped rather than premultiplied and palette images are resized bicubic like any other.
/// </remarks>
public sealed class TrainingPreprocessor
{
    private readonly CropRanges ranges;
    private readonly long maxPixels;

    /// <param name="imageSize">Side of the square output (the model's image size).</param>
    /// <param name="ranges">The crop's scale and aspect ranges.</param>
    /// <param name="maxPixels">Largest width x height a header may claim (decompression bombs); Pillow's default limit by default.</param>
    public TrainingPreprocessor(int imageSize, CropRanges ranges, long maxPixels = 89_478_485)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentOutOfRangeException.ThrowIfLessThan(imageSize, 8);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPixels, 1);
        var problems = ranges.Problems().ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(ranges));
        (ImageSize, this.ranges, this.maxPixels) = (imageSize, ranges, maxPixels);
    }

    public int ImageSize { get; }

    /// <summary>Values per image in CHW order: 3 x <see cref="ImageSize"/> x <see cref="ImageSize"/>.</summary>
    public int ValuesPerImage => 3 * ImageSize * ImageSize;

    /// <summary>What this transform is, for the run's records: everything that changes the pixels or which inputs are rejected.</summary>
    public string Description => FormattableString.Invariant(
        $"wintok-reference-train/1 size={ImageSize} rgb-first random-resized-crop scale=({ranges.ScaleMin},{ranges.ScaleMax}) ") +
        FormattableString.Invariant($"ratio=({ranges.RatioMin:G6},{ranges.RatioMax:G6}) resize=pillow-bicubic-antialias ") +
        $"decoder=skiasharp-{typeof(SKCodec).Assembly.GetName().Version} max-pixels={maxPixels}";

    /// <summary>Decodes, crops at the box the draws pick and resizes into <paramref name="values"/>: float32 in [-1, 1], RGB, CHW.</summary>
    public PreprocessResult Preprocess(ReadOnlySpan<byte> encoded, ICropDraws draws, Span<float> values)
    {
        if (values.Length != ValuesPerImage)
            throw new ArgumentException($"Destination holds {values.Length} values, one image needs {ValuesPerImage}", nameof(values));
        var levels = ArrayPool<byte>.Shared.Rent(ValuesPerImage);
        try
        {
            var result = Preprocess(encoded, draws, levels.AsSpan(0, ValuesPerImage), out _);
            if (result.Succeeded)
                for (var i = 0; i < values.Length; i++) values[i] = ImagePreprocessor.LevelToValue(levels[i]);
            return result;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(levels);
        }
    }

    /// <summary>As the float overload, into uint8 levels; <paramref name="box"/> is the crop taken (default when rejected).</summary>
    public unsafe PreprocessResult Preprocess(ReadOnlySpan<byte> encoded, ICropDraws draws, Span<byte> levels, out CropBox box)
    {
        ArgumentNullException.ThrowIfNull(draws);
        if (levels.Length != ValuesPerImage)
            throw new ArgumentException($"Destination holds {levels.Length} values, one image needs {ValuesPerImage}", nameof(levels));
        box = default;
        if (EncodedImageChecks.Format(encoded, out var format) is { } rejected) return rejected;

        fixed (byte* bytes = encoded)
        {
            using var data = SKData.Create((IntPtr)bytes, encoded.Length);
            using var codec = data is null ? null : SKCodec.Create(data);
            if (EncodedImageChecks.Header(codec, format, maxPixels, out var width, out var height) is { } badHeader) return badHeader;
            // As tokenize and evaluation: a JPEG Pillow refuses (the reference's loader skips it) is not trained on.
            if (EncodedImageChecks.DamagedJpeg(encoded, format, width, height, keepDamaged: false) is { } damaged) return damaged;
            var header = codec!.Info;
            var gray = header.ColorType == SKColorType.Gray8;
            var pixelBytes = gray ? 1 : 4;
            var stride = width * pixelBytes;
            if ((long)stride * height > Array.MaxLength)
                return PreprocessResult.Reject(ImageRejectionReason.TooManyPixels,
                    $"The {width}x{height} image needs {(long)stride * height} bytes decoded, more than one buffer can hold", width, height);
            var decoded = ArrayPool<byte>.Shared.Rent(stride * height);
            var window = ArrayPool<byte>.Shared.Rent(ImageSize * ImageSize * pixelBytes);
            try
            {
                // No colour space on the destination: no ICC or gamma conversion, as in Pillow. Alpha, if any, is
                // decoded unpremultiplied and then ignored: Pillow's convert('RGB') drops it.
                var info = new SKImageInfo(width, height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888,
                    gray || header.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
                SKCodecResult result;
                fixed (byte* pixels = decoded) result = codec.GetPixels(info, (IntPtr)pixels, stride, SKCodecOptions.Default);
                if (result != SKCodecResult.Success) return EncodedImageChecks.Undecoded(result, format, encoded, width, height);

                box = RandomResizedCrop.Sample(width, height, ranges, draws);
                var cropped = decoded.AsSpan(box.Top * stride + box.Left * pixelBytes);
                PillowResampler.ResizeBicubic(cropped, box.Width, box.Height, stride, pixelBytes,
                    ImageSize, ImageSize, 0, 0, ImageSize, ImageSize, window);
                WritePlanes(window.AsSpan(0, ImageSize * ImageSize * pixelBytes), pixelBytes, levels);
                return new PreprocessResult(null, width, height);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(decoded);
                ArrayPool<byte>.Shared.Return(window);
            }
        }
    }

    private static void WritePlanes(ReadOnlySpan<byte> window, int pixelBytes, Span<byte> levels)
    {
        var plane = levels.Length / 3;
        if (pixelBytes == 1)
        {
            window[..plane].CopyTo(levels[..plane]);
            window[..plane].CopyTo(levels.Slice(plane, plane));
            window[..plane].CopyTo(levels.Slice(2 * plane, plane));
            return;
        }
        for (var i = 0; i < plane; i++)
        {
            levels[i] = window[i * 4];
            levels[plane + i] = window[i * 4 + 1];
            levels[2 * plane + i] = window[i * 4 + 2];
        }
    }
}
