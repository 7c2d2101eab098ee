namespace WinTok.Data.Images;

/// <summary>
/// Where the reference evaluation transform puts the pixels: torchvision's <c>Resize(size)</c> (shorter side to
/// <c>size</c>) followed by <c>CenterCrop(size)</c>, with torchvision 0.26's rounding.
/// </summary>
/// <param name="ResizedWidth">Width after the resize (the whole resized image, before cropping).</param>
/// <param name="ResizedHeight">Height after the resize.</param>
/// <param name="CropLeft">First resized column kept by the crop.</param>
/// <param name="CropTop">First resized row kept by the crop.</param>
internal readonly record struct ReferenceGeometry(int ResizedWidth, int ResizedHeight, int CropLeft, int CropTop)
{
    /// <summary>Computes the resize and crop for a <paramref name="width"/> x <paramref name="height"/> image.</summary>
    public static ReferenceGeometry For(int width, int height, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);

        // torchvision _compute_resized_output_size: new_long = int(size * long / short), a Python true division
        // (correctly rounded, like an IEEE double division of these exact integers) truncated towards zero.
        var (shortSide, longSide) = width <= height ? (width, height) : (height, width);
        var newLong = (int)((double)size * longSide / shortSide);
        var (resizedWidth, resizedHeight) = width <= height ? (size, newLong) : (newLong, size);

        // torchvision center_crop: int(round((h - crop) / 2.0)); Python's round() rounds halves to even, which
        // is .NET's default MidpointRounding.ToEven (a 409-wide image starts its crop at 76, not 77).
        var top = (int)Math.Round((resizedHeight - size) / 2.0, MidpointRounding.ToEven);
        var left = (int)Math.Round((resizedWidth - size) / 2.0, MidpointRounding.ToEven);
        return new ReferenceGeometry(resizedWidth, resizedHeight, left, top);
    }
}
