using System.Buffers.Binary;
using SkiaSharp;

namespace WinTok.Data.Tests.Images;

/// <summary>Small encoded images made at run time from the real fixture photos.</summary>
internal static class TestImages
{
    /// <summary>A fixture photo scaled to <paramref name="width"/> x <paramref name="height"/> and encoded again.</summary>
    public static byte[] Encode(string fixtureFile, int width, int height, SKEncodedImageFormat format, int quality = 90, bool withAlpha = false)
    {
        using var original = SKBitmap.Decode(Path.Combine(PreprocessFixtures.Folder, fixtureFile));
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

    /// <summary>A fixture photo scaled down and written as a bottom-up 24-bit BMP (Skia has no BMP encoder).</summary>
    public static byte[] Bmp(string fixtureFile, int width, int height)
    {
        var rgba = Encode(fixtureFile, width, height, SKEncodedImageFormat.Png);
        using var bitmap = SKBitmap.Decode(rgba, new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rowBytes = (width * 3 + 3) & ~3;
        var bmp = new byte[54 + rowBytes * height];
        "BM"u8.CopyTo(bmp);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(2), bmp.Length);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(22), height);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(26), 1);
        BinaryPrimitives.WriteInt16LittleEndian(bmp.AsSpan(28), 24);
        BinaryPrimitives.WriteInt32LittleEndian(bmp.AsSpan(34), rowBytes * height);
        for (var y = 0; y < height; y++)
        {
            var row = 54 + (height - 1 - y) * rowBytes;
            for (var x = 0; x < width; x++)
            {
                var c = bitmap.GetPixel(x, y);
                (bmp[row + x * 3], bmp[row + x * 3 + 1], bmp[row + x * 3 + 2]) = (c.Blue, c.Green, c.Red);
            }
        }
        return bmp;
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
