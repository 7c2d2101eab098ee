using SkiaSharp;

namespace WinTok.Data.Images;

/// <summary>
/// The checks every preprocessor makes before it decodes pixels, each failing with the reason a user reads: bytes
/// present, a known signature that our decoder reads, a header that opens and states a positive size within the pixel
/// limit. Shared by the evaluation transform (<see cref="ImagePreprocessor"/>) and the training one
/// (<see cref="TrainingPreprocessor"/>).
/// </summary>
internal static class EncodedImageChecks
{
    /// <summary>The rejection of input that is no image we decode, or null with its <paramref name="format"/>.</summary>
    public static PreprocessResult? Format(ReadOnlySpan<byte> encoded, out SourceFormat format)
    {
        format = default;
        if (encoded.IsEmpty) return PreprocessResult.Reject(ImageRejectionReason.Empty, "The input has no bytes");
        format = SourceFormat.Sniff(encoded);
        if (format.Name is null)
            return PreprocessResult.Reject(ImageRejectionReason.NotAnImage,
                $"No known image signature (first bytes {Convert.ToHexString(encoded[..Math.Min(8, encoded.Length)])})");
        if (!format.DecodableBySkia)
            return PreprocessResult.Reject(ImageRejectionReason.UnsupportedFormat, $"The {format.Name} format is not supported");
        return null;
    }

    /// <summary>
    /// The rejection of a header that did not open (<paramref name="codec"/> null) or states an impossible or too large
    /// size, or null with the image's <paramref name="width"/> and <paramref name="height"/>.
    /// </summary>
    public static PreprocessResult? Header(SKCodec? codec, SourceFormat format, long maxPixels, out int width, out int height)
    {
        (width, height) = (0, 0);
        if (codec is null) return PreprocessResult.Reject(ImageRejectionReason.Corrupt, $"The {format.Name} header could not be read");
        (width, height) = (codec.Info.Width, codec.Info.Height);
        if (width <= 0 || height <= 0)
            return PreprocessResult.Reject(ImageRejectionReason.Corrupt, $"The {format.Name} header states a {width}x{height} image");
        if ((long)width * height > maxPixels)
            return PreprocessResult.Reject(ImageRejectionReason.TooManyPixels,
                $"The {format.Name} header states {width}x{height} = {(long)width * height} pixels, the limit is {maxPixels}", width, height);
        return null;
    }
}
