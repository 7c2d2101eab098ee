using SkiaSharp;
using WinTok.Data.Images;

namespace WinTok.Data.Tests.Images;

/// <summary>Bad input comes back as a typed rejection, never as an exception.</summary>
public sealed class PreprocessRejectionTests
{
    private readonly ImagePreprocessor preprocessor = new(new PreprocessOptions());

    [Fact]
    public void Preprocess_WhenInputIsEmpty_RejectsAsEmpty() =>
        AssertRejected([], ImageRejectionReason.Empty);

    [Fact]
    public void Preprocess_WhenInputIsText_RejectsAsNotAnImage() =>
        AssertRejected("{\"caption\": \"a cat on a mat\"}"u8.ToArray(), ImageRejectionReason.NotAnImage);

    [Theory]
    [InlineData(new byte[] { (byte)'I', (byte)'I', 42, 0, 8, 0, 0, 0 }, "tiff")]
    [InlineData(new byte[] { 0, 0, 0, 0x1C, (byte)'f', (byte)'t', (byte)'y', (byte)'p', (byte)'a', (byte)'v', (byte)'i', (byte)'f' }, "avif")]
    [InlineData(new byte[] { 0xFF, 0x0A, 0xFA, 0x7F }, "jpeg-xl")]
    public void Preprocess_WhenFormatIsKnownButNotDecodable_RejectsAsUnsupportedFormat(byte[] header, string format)
    {
        var rejection = AssertRejected(header, ImageRejectionReason.UnsupportedFormat);

        Assert.Contains(format, rejection.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Preprocess_WhenJpegIsTruncated_RejectsAsTruncated()
    {
        var jpeg = File.ReadAllBytes(Path.Combine(PreprocessFixtures.Folder, "path_small.jpg"));

        AssertRejected(jpeg[..(jpeg.Length / 2)], ImageRejectionReason.Truncated);
    }

    [Fact]
    public void Preprocess_WhenPngIsTruncated_RejectsAsTruncated()
    {
        var png = File.ReadAllBytes(Path.Combine(PreprocessFixtures.Folder, "kokkini_small.png"));

        AssertRejected(png[..(png.Length / 2)], ImageRejectionReason.Truncated);
    }

    [Fact]
    public void Preprocess_WhenJpegHeaderIsGarbage_RejectsAsCorrupt()
    {
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        bytes[0] = 0xFF;
        bytes[1] = 0xD8;
        bytes[2] = 0xFF;

        AssertRejected(bytes, ImageRejectionReason.Corrupt);
    }

    [Fact]
    public void Preprocess_WhenHeaderClaimsGigapixels_RejectsBeforeDecoding()
    {
        // 100000 x 100000 RGBA would need 40 GB; a decode attempt could not even size its buffer.
        var rejection = AssertRejected(TestImages.PngClaiming(100_000, 100_000), ImageRejectionReason.TooManyPixels);

        Assert.Contains("100000x100000", rejection.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Preprocess_WhenImageExceedsConfiguredPixelLimit_RejectsWithItsSize()
    {
        var strict = new ImagePreprocessor(new PreprocessOptions { MaxPixels = 400 * 250 - 1 });
        var jpeg = File.ReadAllBytes(Path.Combine(PreprocessFixtures.Folder, "path_small.jpg"));

        var result = strict.Preprocess(jpeg, new byte[strict.ValuesPerImage]);

        Assert.Equal(ImageRejectionReason.TooManyPixels, result.Rejection?.Reason);
        Assert.Equal((400, 250), (result.SourceWidth, result.SourceHeight));
    }

    [Fact]
    public void Preprocess_WhenImageIsValid_ReportsItsHeaderSize()
    {
        var jpeg = File.ReadAllBytes(Path.Combine(PreprocessFixtures.Folder, "path_small.jpg"));

        var result = preprocessor.Preprocess(jpeg, new float[preprocessor.ValuesPerImage]);

        Assert.True(result.Succeeded, result.Rejection?.Message);
        Assert.Equal((400, 250), (result.SourceWidth, result.SourceHeight));
    }

    [Fact]
    public void Preprocess_WhenDestinationHasWrongLength_ThrowsBecauseThatIsACallerBug() =>
        Assert.Throws<ArgumentException>(() => preprocessor.Preprocess([0xFF, 0xD8, 0xFF], new byte[10]));

    [Fact]
    public void Preprocess_WhenWritingFloats_UsesTorchvisionNormalisation()
    {
        var jpeg = File.ReadAllBytes(Path.Combine(PreprocessFixtures.Folder, "path_small.jpg"));
        var levels = new byte[preprocessor.ValuesPerImage];
        var values = new float[preprocessor.ValuesPerImage];

        preprocessor.Preprocess(jpeg, levels);
        preprocessor.Preprocess(jpeg, values);

        for (var i = 0; i < levels.Length; i++)
        {
            Assert.Equal(((float)levels[i] / 255f - 0.5f) / 0.5f, values[i]);
        }
        Assert.Equal(-1f, ImagePreprocessor.LevelToValue(0));
        Assert.Equal(1f, ImagePreprocessor.LevelToValue(255));
    }

    [Fact]
    public void Preprocess_WhenImageIsSmallerThanOutput_UpscalesLikeTheReference()
    {
        var png = TestImages.Encode("path_small.jpg", 20, 12, SKEncodedImageFormat.Png);

        var result = preprocessor.Preprocess(png, new byte[preprocessor.ValuesPerImage]);

        Assert.True(result.Succeeded, result.Rejection?.Message);
    }

    [Fact]
    public void Preprocess_WhenRgbaShorterSideIsAlreadyTheSize_CropsWithoutPremultiplying()
    {
        // torchvision skips Resize here, so Pillow never premultiplies: colour under partial alpha passes unchanged.
        var png = TestImages.Encode("kite_2560x1600.jpg", 256, 300, SKEncodedImageFormat.Png, withAlpha: true);
        using var decoded = SKBitmap.Decode(png, new SKImageInfo(256, 300, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var levels = new byte[preprocessor.ValuesPerImage];

        var result = preprocessor.Preprocess(png, levels);

        Assert.True(result.Succeeded, result.Rejection?.Message);
        const int top = 22; // round((300 - 256) / 2)
        for (var y = 0; y < 256; y++)
        {
            for (var x = 0; x < 256; x++)
            {
                var pixel = decoded.GetPixel(x, y + top);
                Assert.Equal((pixel.Red, pixel.Green, pixel.Blue), (levels[y * 256 + x], levels[65536 + y * 256 + x], levels[131072 + y * 256 + x]));
            }
        }
    }

    [Fact]
    public void Preprocess_WhenImageIsBmp_MatchesThePngOfTheSamePixels()
    {
        var png = TestImages.Encode("kite_2560x1600.jpg", 300, 200, SKEncodedImageFormat.Png);
        var bmp = TestImages.Bmp("kite_2560x1600.jpg", 300, 200);
        var fromPng = new byte[preprocessor.ValuesPerImage];
        var fromBmp = new byte[preprocessor.ValuesPerImage];

        Assert.True(preprocessor.Preprocess(png, fromPng).Succeeded);
        Assert.True(preprocessor.Preprocess(bmp, fromBmp).Succeeded);

        Assert.Equal(fromPng, fromBmp);
    }

    private ImageRejection AssertRejected(byte[] input, ImageRejectionReason expected)
    {
        var result = preprocessor.Preprocess(input, new byte[preprocessor.ValuesPerImage]);

        Assert.False(result.Succeeded, "The input was accepted");
        Assert.Equal(expected, result.Rejection!.Reason);
        Assert.False(string.IsNullOrWhiteSpace(result.Rejection.Message));
        return result.Rejection;
    }
}
