using System.ComponentModel.DataAnnotations;

namespace WinTok.Data.Images;

/// <summary>Settings of <see cref="ImagePreprocessor"/>, bound from the <c>Preprocess</c> configuration section.</summary>
public sealed class PreprocessOptions
{
    public const string SectionName = "Preprocess";

    /// <summary>Side of the square output: the shorter side is resized to it, then the centre is cropped.</summary>
    /// <value>256, the model's image size in the reference training and evaluation scripts.</value>
    [Range(8, 4096)]
    public int ImageSize { get; set; } = 256;

    /// <summary>
    /// Largest width x height the header may claim; larger images are rejected before any pixel is decoded
    /// (decompression bombs: a few KB of PNG can claim gigapixels).
    /// </summary>
    /// <value>89,478,485, Pillow's <c>MAX_IMAGE_PIXELS</c> (about 0.25 GiB as 24-bit RGB).</value>
    [Range(1, long.MaxValue)]
    public long MaxPixels { get; set; } = 89_478_485;

    /// <summary>
    /// Decode large JPEGs at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the shorter side stays at least
    /// twice <see cref="ImageSize"/>. Much faster for big photos but no longer bit-exact with the reference: see
    /// docs/preprocessing.md for the measured error.
    /// </summary>
    /// <value>false: bit-exact reference preprocessing.</value>
    public bool ReducedScaleJpegDecode { get; set; }

    /// <summary>
    /// Keep a JPEG whose every row decodes although libjpeg reports its data broken afterwards (a bit error that forms
    /// a stray marker in the entropy-coded data of a one-scan JPEG). Pillow, and so the reference, refuses such a file
    /// ("broken data stream when reading image file") unless <c>ImageFile.LOAD_TRUNCATED_IMAGES</c> is set; with this
    /// setting we decode it to the pixels Pillow then gives. Truncated files and a progressive JPEG whose scans libjpeg
    /// gave up on stay rejected either way.
    /// </summary>
    /// <value>false: reject what the reference's Pillow refuses.</value>
    public bool KeepDamagedImages { get; set; }

    internal void Validate()
    {
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(this, new ValidationContext(this), results, validateAllProperties: true))
        {
            throw new ArgumentException(string.Join("; ", results.Select(r => r.ErrorMessage)), nameof(PreprocessOptions));
        }
    }
}
