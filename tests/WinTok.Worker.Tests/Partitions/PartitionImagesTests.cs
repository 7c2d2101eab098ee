using System.Buffers;
using System.Collections.Concurrent;
using SkiaSharp;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Worker.Partitions;

namespace WinTok.Worker.Tests.Partitions;

public sealed class PartitionImagesTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("wintok-partition-images-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task RunAsync_InReadOrderWithFourDecodeThreads_HandsImagesOnInTheOrderTheyWereReadAndReportsTheCorruptOne()
    {
        // Every third image is large, so its decode thread finishes after the threads that took the next small ones:
        // taken as they come, the images would overtake each other.
        var names = Enumerable.Range(0, 30).Select(i => $"image-{i:D3}.png").ToList();
        for (var i = 0; i < names.Count; i++)
        {
            var bytes = i == 17 ? [0x89, 0x50, 0x4e, 0x47, 1, 2, 3] : Png(i, large: i % 3 == 0);
            await File.WriteAllBytesAsync(Path.Combine(folder, names[i]), bytes, TestContext.Current.CancellationToken);
        }
        var store = FileStores.Open(folder, null);
        var partition = Assert.Single(CorpusPlanner.Plan(store.Location, CorpusKind.Folder, names, filesPerPartition: 100));
        var failures = new ConcurrentQueue<FailureRecord>();
        var images = new PartitionImages(partition, store, new ImagePreprocessor(new PreprocessOptions { ImageSize = 64 }), decodeThreads: 4,
            capacity: 8, failures.Enqueue, inReadOrder: true);
        var channel = PartitionImages.CreateChannel(8);

        var running = images.RunAsync(channel.Writer, TestContext.Current.CancellationToken);
        var handed = new List<string>();
        await foreach (var image in channel.Reader.ReadAllAsync(TestContext.Current.CancellationToken))
        {
            handed.Add(Path.GetFileName(image.Sample.Source));
            ArrayPool<byte>.Shared.Return(image.Levels);
        }
        await running;

        Assert.Equal(names.Where((_, i) => i != 17), handed);
        Assert.Equal("image-017.png", Path.GetFileName(Assert.Single(failures).Source));
    }

    private static byte[] Png(int index, bool large)
    {
        var (width, height) = large ? (1600, 1200) : (48, 40);
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColor.FromHsv(index * 37 % 360, 60, 80));
            using var paint = new SKPaint { Color = SKColor.FromHsv((index * 37 + 180) % 360, 80, 60) };
            canvas.DrawCircle(width / 3f, height / 2f, height / 4f, paint);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
