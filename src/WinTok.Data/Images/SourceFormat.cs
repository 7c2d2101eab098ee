using System.Buffers.Binary;

namespace WinTok.Data.Images;

/// <summary>How Pillow would resize an image, decided from its header before Skia decodes it.</summary>
internal enum PillowResizeMode
{
    /// <summary>Antialiased bicubic on the colour (or grey) channels; any alpha is dropped afterwards.</summary>
    Bicubic,

    /// <summary>Pillow mode RGBA or LA: bicubic on premultiplied colour, then un-premultiplied, then alpha dropped.</summary>
    BicubicPremultiplied,

    /// <summary>Pillow mode P or 1 (palette, 1-bit): Pillow forces nearest neighbour for these.</summary>
    Nearest,
}

/// <summary>What the first bytes of a file say, enough to explain rejections and to mirror Pillow's image modes.</summary>
/// <param name="Name">Short format name for reasons and logs ("jpeg", "png", "tiff", ...), or null when unknown.</param>
/// <param name="DecodableBySkia">Whether our decoder (SkiaSharp) reads this format.</param>
/// <param name="ResizeMode">How Pillow would resize it.</param>
internal readonly record struct SourceFormat(string? Name, bool DecodableBySkia, PillowResizeMode ResizeMode)
{
    private static readonly SourceFormat Unknown = new(null, false, PillowResizeMode.Bicubic);

    public static SourceFormat Sniff(ReadOnlySpan<byte> data)
    {
        if (StartsWith(data, [0xFF, 0xD8, 0xFF]))
        {
            return Decodable("jpeg");
        }
        if (StartsWith(data, [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return Png(data);
        }
        if (data.StartsWith("GIF87a"u8) || data.StartsWith("GIF89a"u8))
        {
            // Pillow opens a GIF's first frame in mode P (nearest-neighbour resize).
            return new SourceFormat("gif", true, PillowResizeMode.Nearest);
        }
        if (data.Length >= 12 && data.StartsWith("RIFF"u8) && data.Slice(8, 4).SequenceEqual("WEBP"u8))
        {
            // Pillow opens a WebP with alpha as RGBA; whether it has alpha is Skia's call (see the decoder).
            return Decodable("webp");
        }
        if (data.StartsWith("BM"u8))
        {
            return Bmp(data);
        }
        if (StartsWith(data, [0x00, 0x00, 0x01, 0x00]))
        {
            return Decodable("ico");
        }
        if (data.StartsWith("II*\0"u8) || data.StartsWith("MM\0*"u8))
        {
            return Undecodable("tiff");
        }
        if (data.Length >= 12 && data.Slice(4, 4).SequenceEqual("ftyp"u8))
        {
            return Undecodable(data.Slice(8, 4).SequenceEqual("avif"u8) ? "avif" : "heif/isobmff");
        }
        if (StartsWith(data, [0xFF, 0x0A]) || StartsWith(data, [0, 0, 0, 0x0C, (byte)'J', (byte)'X', (byte)'L', (byte)' ']))
        {
            return Undecodable("jpeg-xl");
        }
        if (StartsWith(data, [0, 0, 0, 0x0C, (byte)'j', (byte)'P', (byte)' ', (byte)' ']) || StartsWith(data, [0xFF, 0x4F, 0xFF, 0x51]))
        {
            return Undecodable("jpeg-2000");
        }
        if (data.StartsWith("8BPS"u8))
        {
            return Undecodable("psd");
        }
        if (data.StartsWith("%PDF"u8))
        {
            return Undecodable("pdf");
        }
        if (data.StartsWith("qoif"u8))
        {
            return Undecodable("qoi");
        }
        return Unknown;
    }

    private static bool StartsWith(ReadOnlySpan<byte> data, ReadOnlySpan<byte> prefix) => data.StartsWith(prefix);

    private static SourceFormat Decodable(string name) => new(name, true, PillowResizeMode.Bicubic);

    private static SourceFormat Undecodable(string name) => new(name, false, PillowResizeMode.Bicubic);

    private static SourceFormat Png(ReadOnlySpan<byte> data)
    {
        // IHDR is the first chunk: length(4) "IHDR" width(4) height(4) bit depth(1) colour type(1).
        if (data.Length < 26 || !data.Slice(12, 4).SequenceEqual("IHDR"u8))
        {
            return Decodable("png");
        }
        var bitDepth = data[24];
        var colorType = data[25];
        return colorType switch
        {
            3 => new SourceFormat("png", true, PillowResizeMode.Nearest),
            0 when bitDepth == 1 => new SourceFormat("png", true, PillowResizeMode.Nearest),
            4 or 6 => new SourceFormat("png", true, PillowResizeMode.BicubicPremultiplied),
            // Grey or RGB with a tRNS chunk stay L/RGB in Pillow: no premultiplication.
            _ => Decodable("png"),
        };
    }

    private static SourceFormat Bmp(ReadOnlySpan<byte> data)
    {
        if (data.Length < 30)
        {
            return Decodable("bmp");
        }
        // BITMAPCOREHEADER (12 bytes) keeps the bit count at 24, the later headers at 28.
        var headerSize = BinaryPrimitives.ReadInt32LittleEndian(data.Slice(14, 4));
        var bitCount = headerSize == 12
            ? BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(24, 2))
            : BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(28, 2));
        return bitCount <= 8
            ? new SourceFormat("bmp", true, PillowResizeMode.Nearest)
            : Decodable("bmp");
    }
}
