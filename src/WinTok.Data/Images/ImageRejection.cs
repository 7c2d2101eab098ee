namespace WinTok.Data.Images;

/// <summary>Why an input was not turned into pixels. Stable names: they are stored with each failure record.</summary>
public enum ImageRejectionReason
{
    /// <summary>Zero bytes.</summary>
    Empty,

    /// <summary>The bytes match no image signature we know (text, archives, random data).</summary>
    NotAnImage,

    /// <summary>A known image format our decoder does not read (TIFF, HEIF/AVIF, JPEG XL, JPEG 2000, PSD, ...).</summary>
    UnsupportedFormat,

    /// <summary>The header claims more pixels than <see cref="PreprocessOptions.MaxPixels"/>; nothing was decoded.</summary>
    TooManyPixels,

    /// <summary>The header or the compressed data is invalid.</summary>
    Corrupt,

    /// <summary>The data ends before the image does (a partial download or write).</summary>
    Truncated,
}

/// <summary>A typed, expected failure for one input: record <c>(key, Reason, Message)</c> and go on.</summary>
/// <param name="Reason">The category, for counting and filtering.</param>
/// <param name="Message">One human-readable sentence with the specifics (format, sizes, decoder result).</param>
public sealed record ImageRejection(ImageRejectionReason Reason, string Message);

/// <summary>
/// The outcome of preprocessing one image: either pixels were written (<see cref="Rejection"/> is null) or the
/// input was rejected and the destination left unspecified.
/// </summary>
/// <param name="Rejection">Why the input was rejected, or null on success.</param>
/// <param name="SourceWidth">Width stated by the image header (0 when the header could not be read).</param>
/// <param name="SourceHeight">Height stated by the image header (0 when the header could not be read).</param>
public readonly record struct PreprocessResult(ImageRejection? Rejection, int SourceWidth, int SourceHeight)
{
    /// <summary>Whether the destination now holds the preprocessed image.</summary>
    public bool Succeeded => Rejection is null;

    internal static PreprocessResult Reject(ImageRejectionReason reason, string message, int width = 0, int height = 0) =>
        new(new ImageRejection(reason, message), width, height);
}
