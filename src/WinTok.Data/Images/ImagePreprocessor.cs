using System.Buffers;
using SkiaSharp;

namespace WinTok.Data.Images;

/// <summary>
/// Turns encoded image bytes into the reference evaluation transform's output: Pillow decode,
/// <c>Resize(size)</c> of the shorter side with antialiased bicubic, <c>CenterCrop(size)</c>, <c>convert('RGB')</c>,
/// <c>ToTensor</c>, <c>Normalize(0.5, 0.5)</c> (WinTok reference §3; docs/preprocessing.md).
/// </summary>
/// <remarks>
/// Thread-safe and allocation-free per image apart from pooled scratch buffers and Skia's codec objects: one
/// instance serves every decode thread, each writing into its own slice of a batch buffer. Bad input never throws:
/// it comes back as a <see cref="PreprocessResult"/> with an <see cref="ImageRejection"/>. Exceptions are left for
/// caller bugs (a destination of the wrong size).
/// </remarks>
public sealed class ImagePreprocessor
{
    // torch: ToTensor divides by 255 in float32, Normalize subtracts 0.5 and divides by 0.5 in float32.
    private static readonly float[] LevelValues = Enumerable.Range(0, 256).Select(k => ((float)k / 255f - 0.5f) / 0.5f).ToArray();

    private readonly PreprocessOptions options;

    public ImagePreprocessor(PreprocessOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.options = options;
    }

    /// <summary>Side of the square output.</summary>
    public int ImageSize => options.ImageSize;

    /// <summary>Values per image in CHW order: 3 x <see cref="ImageSize"/> x <see cref="ImageSize"/>.</summary>
    public int ValuesPerImage => 3 * options.ImageSize * options.ImageSize;

    /// <summary>
    /// What this preprocessing is, for shard metadata and preprocessing hashes: it names everything that can change
    /// the output pixels or which inputs are rejected (transform version, size, decoder version, exact or
    /// reduced-scale decoding, pixel limit, whether damaged JPEGs are kept).
    /// </summary>
    public string Description =>
        $"wintok-reference-eval/1 size={options.ImageSize} resize=shorter-side,pillow-bicubic-antialias crop=center " +
        $"output=rgb-chw decoder=skiasharp-{typeof(SKCodec).Assembly.GetName().Version} " +
        $"jpeg={(options.ReducedScaleJpegDecode ? $"reduced-scale-{ReducedScaleMargin}x" : "exact")} max-pixels={options.MaxPixels}" +
        $"{(options.KeepDamagedImages ? " damaged=keep" : "")}";

    /// <summary>The model input value of 8-bit level <paramref name="level"/>: <c>(level / 255 - 0.5) / 0.5</c> in float32.</summary>
    public static float LevelToValue(byte level) => LevelValues[level];

    /// <summary>
    /// Decodes and preprocesses one image into <paramref name="levels"/>: uint8 levels, RGB, CHW,
    /// <see cref="ValuesPerImage"/> long.
    /// </summary>
    public PreprocessResult Preprocess(ReadOnlySpan<byte> encoded, Span<byte> levels)
    {
        if (levels.Length != ValuesPerImage)
        {
            throw new ArgumentException($"Destination holds {levels.Length} values, one image needs {ValuesPerImage}", nameof(levels));
        }
        return Run(encoded, levels);
    }

    /// <summary>
    /// Decodes and preprocesses one image into <paramref name="values"/>: float32 in [-1, 1], RGB, CHW,
    /// <see cref="ValuesPerImage"/> long, bit-identical to torchvision's <c>ToTensor</c> + <c>Normalize(0.5, 0.5)</c>
    /// of the same levels.
    /// </summary>
    public PreprocessResult Preprocess(ReadOnlySpan<byte> encoded, Span<float> values)
    {
        if (values.Length != ValuesPerImage)
        {
            throw new ArgumentException($"Destination holds {values.Length} values, one image needs {ValuesPerImage}", nameof(values));
        }
        var levels = ArrayPool<byte>.Shared.Rent(ValuesPerImage);
        try
        {
            var result = Run(encoded, levels.AsSpan(0, ValuesPerImage));
            if (result.Succeeded)
            {
                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = LevelValues[levels[i]];
                }
            }
            return result;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(levels);
        }
    }

    private unsafe PreprocessResult Run(ReadOnlySpan<byte> encoded, Span<byte> levels)
    {
        if (EncodedImageChecks.Format(encoded, out var format) is { } rejected)
        {
            return rejected;
        }

        fixed (byte* bytes = encoded)
        {
            // Wraps the caller's bytes without copying; both objects die before the span is unpinned.
            using var data = SKData.Create((IntPtr)bytes, encoded.Length);
            using var codec = data is null ? null : SKCodec.Create(data);
            if (EncodedImageChecks.Header(codec, format, options.MaxPixels, out var width, out var height) is { } badHeader)
            {
                return badHeader;
            }
            if (EncodedImageChecks.DamagedJpeg(encoded, format, width, height, options.KeepDamagedImages) is { } damaged)
            {
                return damaged;
            }
            return DecodeAndTransform(codec!, format, encoded, width, height, levels);
        }
    }

    private unsafe PreprocessResult DecodeAndTransform(SKCodec codec, SourceFormat format, ReadOnlySpan<byte> encoded, int width, int height, Span<byte> levels)
    {
        var header = codec.Info;
        var gray = header.ColorType == SKColorType.Gray8 && format.ResizeMode != PillowResizeMode.BicubicPremultiplied;
        var geometry = ReferenceGeometry.For(width, height, options.ImageSize);
        // Pillow premultiplies only RGBA/LA images, and only when it resizes: torchvision skips the resize of an
        // image whose shorter side already has the size. A PNG's colour type says which images are RGBA/LA; for
        // other formats Skia's alpha decides (Pillow opens a WebP as RGBA exactly when it has alpha).
        var resized = geometry.ResizedWidth != width || geometry.ResizedHeight != height;
        var premultiply = !gray && resized && (format.ResizeMode == PillowResizeMode.BicubicPremultiplied
            || (format.Name is not "png" && format.ResizeMode == PillowResizeMode.Bicubic && header.AlphaType != SKAlphaType.Opaque));
        var pixelBytes = gray ? 1 : 4;

        var (decodedWidth, decodedHeight) = DecodeSize(codec, format, width, height);
        var decodeInfo = new SKImageInfo(decodedWidth, decodedHeight,
            gray ? SKColorType.Gray8 : SKColorType.Rgba8888,
            gray || header.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var stride = decodedWidth * pixelBytes;
        var pixelCount = (long)stride * decodedHeight;
        if (pixelCount > Array.MaxLength)
        {
            // Only reachable when MaxPixels is raised above about 500 million: one .NET array holds the decode.
            return PreprocessResult.Reject(ImageRejectionReason.TooManyPixels,
                $"The {width}x{height} image needs {pixelCount} bytes decoded, more than one buffer can hold", width, height);
        }
        var size = options.ImageSize;
        var decoded = ArrayPool<byte>.Shared.Rent((int)pixelCount);
        var cropped = ArrayPool<byte>.Shared.Rent(size * size * pixelBytes);
        try
        {
            SKCodecResult result;
            fixed (byte* pixels = decoded)
            {
                // No colour space on the destination: Skia applies no ICC or gamma conversion, like Pillow.
                result = codec.GetPixels(decodeInfo, (IntPtr)pixels, stride, SKCodecOptions.Default);
            }
            if (result != SKCodecResult.Success)
            {
                // Skia fills what it could not decode with grey and still returns the image; for training data a
                // partial image is worse than none, so both partial outcomes are rejections.
                return EncodedImageChecks.Undecoded(result, format, encoded, width, height);
            }

            var source = decoded.AsSpan(0, (int)pixelCount);
            if (premultiply)
            {
                Premultiply(source);
            }
            var window = cropped.AsSpan(0, size * size * pixelBytes);
            if (format.ResizeMode == PillowResizeMode.Nearest)
            {
                PillowResampler.ResizeNearest(source, decodedWidth, decodedHeight, stride, pixelBytes,
                    geometry.ResizedWidth, geometry.ResizedHeight, geometry.CropLeft, geometry.CropTop, size, size, window);
            }
            else
            {
                PillowResampler.ResizeBicubic(source, decodedWidth, decodedHeight, stride, pixelBytes,
                    geometry.ResizedWidth, geometry.ResizedHeight, geometry.CropLeft, geometry.CropTop, size, size, window);
            }
            WritePlanes(window, pixelBytes, premultiply, levels);
            return new PreprocessResult(null, width, height);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(decoded);
            ArrayPool<byte>.Shared.Return(cropped);
        }
    }

    /// <summary>
    /// How many times the output size the shorter side of a reduced-scale decode must keep: the bicubic filter then
    /// still antialiases at least a 3x downscale, which hides most of the difference between libjpeg's DCT-domain
    /// scaling and Pillow's filter. Measured on 80 photos (docs/preprocessing.md): with 2 the worst photo had 70% of
    /// values within one level (MAE 1.46, max 40), with 3 it has 92% (MAE 0.60, max 14), for about the same speed,
    /// since entropy decoding, which DCT scaling does not shorten, dominates the decode time of large JPEGs.
    /// </summary>
    internal const int ReducedScaleMargin = 3;

    /// <summary>
    /// The size to decode at: the full image, or with <see cref="PreprocessOptions.ReducedScaleJpegDecode"/> the
    /// smallest libjpeg DCT scale (1/8, 1/4, 1/2) whose shorter side is still at least <see cref="ReducedScaleMargin"/>
    /// times the output size.
    /// </summary>
    private (int Width, int Height) DecodeSize(SKCodec codec, SourceFormat format, int width, int height)
    {
        if (!options.ReducedScaleJpegDecode || format.Name != "jpeg")
        {
            return (width, height);
        }
        foreach (var scale in (ReadOnlySpan<float>)[0.125f, 0.25f, 0.5f])
        {
            var scaled = codec.GetScaledDimensions(scale);
            if (Math.Min(scaled.Width, scaled.Height) >= ReducedScaleMargin * options.ImageSize && scaled.Width < width)
            {
                return (scaled.Width, scaled.Height);
            }
        }
        return (width, height);
    }

    /// <summary>Pillow's RGBA to RGBa conversion: colour x alpha / 255 with its MULDIV255 rounding.</summary>
    private static void Premultiply(Span<byte> rgba)
    {
        for (var i = 0; i < rgba.Length; i += 4)
        {
            uint alpha = rgba[i + 3];
            rgba[i] = MulDiv255(rgba[i], alpha);
            rgba[i + 1] = MulDiv255(rgba[i + 1], alpha);
            rgba[i + 2] = MulDiv255(rgba[i + 2], alpha);
        }
    }

    private static byte MulDiv255(uint value, uint alpha)
    {
        var t = value * alpha + 128;
        return (byte)(((t >> 8) + t) >> 8);
    }

    /// <summary>Interleaved crop to RGB planes; premultiplied pixels are first un-premultiplied as Pillow's RGBa to RGBA does.</summary>
    private static void WritePlanes(ReadOnlySpan<byte> window, int pixelBytes, bool premultiplied, Span<byte> levels)
    {
        var plane = levels.Length / 3;
        var red = levels[..plane];
        var green = levels.Slice(plane, plane);
        var blue = levels.Slice(2 * plane, plane);
        if (pixelBytes == 1)
        {
            window[..plane].CopyTo(red);
            window[..plane].CopyTo(green);
            window[..plane].CopyTo(blue);
            return;
        }
        for (var i = 0; i < plane; i++)
        {
            var pixel = window.Slice(i * 4, 4);
            int alpha = pixel[3];
            if (!premultiplied || alpha is 255 or 0)
            {
                red[i] = pixel[0];
                green[i] = pixel[1];
                blue[i] = pixel[2];
            }
            else
            {
                red[i] = (byte)Math.Min(255 * pixel[0] / alpha, 255);
                green[i] = (byte)Math.Min(255 * pixel[1] / alpha, 255);
                blue[i] = (byte)Math.Min(255 * pixel[2] / alpha, 255);
            }
        }
    }
}
