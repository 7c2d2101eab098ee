using System.Formats.Tar;
using SkiaSharp;

namespace WinTok.Data.Tests.Corpus;

/// <summary>A throwaway folder for one test, with tiny real images and tars written at test time.</summary>
internal sealed class TestCorpus : IDisposable
{
    public TestCorpus()
    {
        Root = Path.Combine(Path.GetTempPath(), "wintok-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public static byte[] Image(SKEncodedImageFormat format = SKEncodedImageFormat.Png, int width = 8, int height = 6, byte shade = 200)
    {
        using var bitmap = new SKBitmap(width, height);
        bitmap.Erase(new SKColor(shade, 40, 90));
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }

    public static byte[] Jpeg(byte shade = 200) => Image(SKEncodedImageFormat.Jpeg, shade: shade);

    public static byte[] Tar(params (string Name, byte[] Bytes)[] members)
    {
        using var buffer = new MemoryStream();
        using (var writer = new TarWriter(buffer, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (name, bytes) in members)
            {
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(bytes) });
            }
        }

        return buffer.ToArray();
    }

    public static byte[] Text(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    public string Write(string relativePath, byte[] bytes)
    {
        var path = Path.Combine(Root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder must not fail a test.
        }
    }
}
