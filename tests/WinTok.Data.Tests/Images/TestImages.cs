using System.Buffers.Binary;
using SkiaSharp;

namespace WinTok.Data.Tests.Images;

/// <summary>Small encoded images made at run time from the real fixture photos.</summary>
internal static class TestImages
{
    /// <summary>A fixture photo scaled to <paramref name="width"/> x <paramref name="height"/> and encoded again.</summary>
    public static byte[] Encode(string fixtureFile, int width, int height, SKEncodedImageFormat format, int quality = 90, bool withAlpha = false)
    {
        using var original = SKBitmap.Decode(Path.Combine(PreprocessFixtures.SharedFolder, fixtureFile));
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, withAlpha ? SKAlphaType.Unpremul : SKAlphaType.Opaque);
        using var scaled = original.Resize(info, new SKSamplingOptions(SKCubicResampler.CatmullRom));
        if (withAlpha)
        {
            for (var y = 0; y < height; y++)
            {
                for (var x = 0; x < width; x++)
                {
                    var c = scaled.GetPixel(x, y);
                    scaled.SetPixel(x, y, c.WithAlpha((byte)(255 * x / Math.Max(1, width - 1))));
                }
            }
        }
        using var image = SKImage.FromBitmap(scaled);
        using var data = image.Encode(format, quality);
        return data.ToArray();
    }

    /// <summary>A valid PNG whose IHDR claims <paramref name="width"/> x <paramref name="height"/> (CRC fixed up).</summary>
    public static byte[] PngClaiming(int width, int height)
    {
        var png = Encode("path_small.jpg", 16, 10, SKEncodedImageFormat.Png);
        // Signature (8) + IHDR length (4) + "IHDR" (4), then width and height; the chunk CRC covers type and data.
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16, 4), width);
        BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20, 4), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29, 4), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    /// <summary>The CRC-32 PNG chunks carry (ISO-HDLC polynomial, reflected).</summary>
    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }
        return ~crc;
    }
}
