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
    // What Pillow's OSError says for the same input: the reference's failure records carry these words.
    internal const string PillowBroken = "Pillow: broken data stream when reading image file";
    internal const string PillowTruncated = "Pillow: image file is truncated";

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

    /// <summary>
    /// The rejection of a JPEG that Skia would decode whole but Pillow refuses, or null (also for any other format). A
    /// one-scan JPEG: Skia never reads past the last row, where libjpeg (in Pillow's <c>jpeg_finish_decompress</c>)
    /// meets the marker a corrupt byte made of the data; data that merely ends there is no error to Pillow, which
    /// ignores a suspension once every row is decoded. A JPEG of several scans: libjpeg reads them all before the first
    /// row, so Skia sees every error, but where the data ends early Skia shows the scans it has and Pillow reports the
    /// file truncated.
    /// </summary>
    /// <remarks>
    /// <paramref name="keepDamaged"/> (<see cref="PreprocessOptions.KeepDamagedImages"/>) keeps the broken one-scan JPEG,
    /// whose rows are all decoded (Pillow's pixels with <c>LOAD_TRUNCATED_IMAGES</c>). A multi-scan JPEG cut short stays
    /// rejected either way: Skia ends its interrupted scan differently from libjpeg's finish in Pillow, so its pixels
    /// would not be Pillow's.
    /// </remarks>
    public static PreprocessResult? DamagedJpeg(ReadOnlySpan<byte> encoded, SourceFormat format, int width, int height, bool keepDamaged) =>
        format.Name != "jpeg" ? null : JpegStreamCheck.Check(encoded) switch
        {
            { SingleScan: true, Verdict: JpegStreamVerdict.Broken } stream when !keepDamaged =>
                PreprocessResult.Reject(ImageRejectionReason.Corrupt,
                    $"The jpeg data is broken: {stream.Detail}, which libjpeg reads after the {width}x{height} image's last row ({PillowBroken})",
                    width, height),
            { SingleScan: false, Verdict: JpegStreamVerdict.Truncated } stream =>
                PreprocessResult.Reject(ImageRejectionReason.Truncated,
                    $"The jpeg {stream.Detail}, before libjpeg has read every scan of the {width}x{height} image ({PillowTruncated})",
                    width, height),
            _ => null,
        };

    /// <summary>
    /// The rejection of an image Skia could not decode whole (<paramref name="result"/> not Success): truncated or
    /// corrupt. For a JPEG, libjpeg's errors stop Skia as they stop Pillow; what Skia cannot say is whether the data
    /// was cut short, which the marker check tells, so the reason names what Pillow would report.
    /// </summary>
    public static PreprocessResult Undecoded(SKCodecResult result, SourceFormat format, ReadOnlySpan<byte> encoded, int width, int height)
    {
        if (format.Name != "jpeg")
            return result == SKCodecResult.IncompleteInput
                ? PreprocessResult.Reject(ImageRejectionReason.Truncated, $"The {format.Name} data ends before the {width}x{height} image does", width, height)
                : PreprocessResult.Reject(ImageRejectionReason.Corrupt, $"The {format.Name} decoder reported {result} for the {width}x{height} image", width, height);
        if (result == SKCodecResult.IncompleteInput)
            return PreprocessResult.Reject(ImageRejectionReason.Truncated,
                $"The jpeg data ends before the {width}x{height} image does ({PillowTruncated})", width, height);
        var stream = JpegStreamCheck.Check(encoded);
        return stream.Verdict == JpegStreamVerdict.Truncated
            ? PreprocessResult.Reject(ImageRejectionReason.Truncated,
                $"The jpeg decoder reported {result} for the {width}x{height} image: {stream.Detail} ({PillowTruncated})", width, height)
            : PreprocessResult.Reject(ImageRejectionReason.Corrupt,
                $"The jpeg decoder reported {result} for the {width}x{height} image{(stream.Verdict == JpegStreamVerdict.Broken ? $": {stream.Detail}" : "")} ({PillowBroken})",
                width, height);
    }
}
