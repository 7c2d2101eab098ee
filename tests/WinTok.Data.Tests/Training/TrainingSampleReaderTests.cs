using SkiaSharp;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Tests.Corpus;
using WinTok.Data.Training;

namespace WinTok.Data.Tests.Training;

/// <summary>The training stream: seeded orders, per-rank shares, resuming from a position, batches on decode threads.</summary>
public sealed class TrainingSampleReaderTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ReadAsync_EachDataEpoch_ReadsEveryItemOnceInAnotherOrder()
    {
        using var corpus = new TestCorpus();
        var reader = Reader(Folder(corpus, images: 12, filesPerPartition: 4));

        var stream = await TakeAsync(reader, TrainingDataPosition.Start, 36);

        var epochs = stream.GroupBy(s => s.Position.Epoch).Select(g => g.Select(s => s.Item.Key).ToList()).ToList();
        Assert.Equal(3, epochs.Count);
        Assert.All(epochs, keys => Assert.Equal(12, keys.Distinct().Count()));
        Assert.NotEqual(epochs[0], epochs[1]);
        Assert.NotEqual(epochs[1], epochs[2]);
    }

    [Fact]
    public async Task ReadAsync_WithTheSameSeed_IsTheSameStreamAndWithAnotherSeedAnother()
    {
        using var corpus = new TestCorpus();
        var partitions = Folder(corpus, images: 12);

        var first = await TakeAsync(Reader(partitions, seed: 7), TrainingDataPosition.Start, 20);
        var again = await TakeAsync(Reader(partitions, seed: 7), TrainingDataPosition.Start, 20);
        var other = await TakeAsync(Reader(partitions, seed: 8), TrainingDataPosition.Start, 20);

        Assert.Equal(first.Select(Describe), again.Select(Describe));
        Assert.NotEqual(first.Select(s => s.Item.Key), other.Select(s => s.Item.Key));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ReadAsync_FromEveryPositionItProduced_ContinuesAsTheUninterruptedStream(bool tars)
    {
        using var corpus = new TestCorpus();
        var partitions = tars ? Tars(corpus, tars: 3, samplesPerTar: 5) : Folder(corpus, images: 15);
        var reader = Reader(partitions, shuffleBuffer: 3);
        var uninterrupted = await TakeAsync(reader, TrainingDataPosition.Start, 40);

        foreach (var stop in new[] { 1, 4, 5, 7, 14, 15, 22 })
        {
            var resumed = await TakeAsync(reader, uninterrupted[stop - 1].Next, 40 - stop);
            Assert.Equal(uninterrupted.Skip(stop).Select(Describe), resumed.Select(Describe));
        }
    }

    [Fact]
    public async Task Order_WithSeveralRanks_SharesEachEpochsPartitionsDisjointlyAndCompletely()
    {
        using var corpus = new TestCorpus();
        var partitions = Folder(corpus, images: 14);
        var ranks = Enumerable.Range(0, 3).Select(rank => new TrainingSampleReader(partitions,
            new TrainingDataOptions(Seed: 5, Rank: rank, WorldSize: 3), FileStore)).ToList();

        foreach (var epoch in new[] { 0L, 1L, 2L })
        {
            var shares = ranks.Select(r => r.Order(epoch)).ToList();
            Assert.Equal(Enumerable.Range(0, partitions.Count), shares.SelectMany(s => s).Order());
        }
        var keys = await TakeAsync(ranks[1], TrainingDataPosition.Start, 4);
        Assert.All(keys, sample => Assert.Contains(ranks[1].Order(0)[sample.Position.Partition], Enumerable.Range(0, partitions.Count)));
    }

    [Fact]
    public void Constructor_WithFewerPartitionsThanProcesses_SaysSo()
    {
        var partitions = new[] { new CorpusPartition("/x", CorpusKind.Folder, 0, Files: ["a.png"]) };

        var error = Assert.Throws<ArgumentException>(() => new TrainingSampleReader(partitions, new TrainingDataOptions(1, Rank: 0, WorldSize: 2), FileStore));

        Assert.Contains("1 partitions, fewer than the 2 processes", error.Message);
    }

    [Fact]
    public async Task Batches_AreTheSameWhateverTheDecodeThreadsAndResumeFromTheirPosition()
    {
        using var corpus = new TestCorpus();
        var partitions = Folder(corpus, images: 10, width: 40, height: 30, filesPerPartition: 3);
        var preprocessor = new TrainingPreprocessor(16, CropRanges.Augmented);
        var reader = Reader(partitions);

        var oneThread = await TakeBatchesAsync(new TrainingBatches(reader, preprocessor, 4, decodeThreads: 1, readAhead: 1), TrainingDataPosition.Start, 6);
        var fourThreads = await TakeBatchesAsync(new TrainingBatches(reader, preprocessor, 4, decodeThreads: 4, readAhead: 16), TrainingDataPosition.Start, 6);
        var resumed = await TakeBatchesAsync(new TrainingBatches(reader, preprocessor, 4, decodeThreads: 2, readAhead: 8), oneThread[2].Next, 3);

        Assert.Equal(oneThread.Select(b => b.Values), fourThreads.Select(b => b.Values));
        Assert.Equal(oneThread.Select(b => b.Next), fourThreads.Select(b => b.Next));
        Assert.Equal(oneThread.Skip(3).Select(b => b.Values), resumed.Select(b => b.Values));
        Assert.All(oneThread, b => Assert.Equal(4 * preprocessor.ValuesPerImage, b.Values.Length));
    }

    [Fact]
    public async Task Batches_SkipUndecodableInputsAndReportThem()
    {
        using var corpus = new TestCorpus();
        var partitions = Folder(corpus, images: 6, width: 40, height: 30);
        corpus.Write("bad/broken.png", "definitely not a png"u8.ToArray());
        corpus.Write("bad/empty.jpg", []);
        partitions = CorpusPlanner.Plan(corpus.Root, CorpusKind.Folder, Directory.EnumerateFiles(corpus.Root, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(corpus.Root, f).Replace('\\', '/')), 4);
        var batches = new TrainingBatches(Reader(partitions), new TrainingPreprocessor(16, CropRanges.Reference), 3, 2, 6);

        var epoch = await TakeBatchesAsync(batches, TrainingDataPosition.Start, 2);

        Assert.Equal(["bad/broken.png", "bad/empty.jpg"], epoch.SelectMany(b => b.Failures).Select(f => f.Key).Order());
        Assert.All(epoch, b => Assert.Equal(3, b.Count));
    }

    [Fact]
    public async Task Batches_OfDataWithoutOneDecodableImage_FailSayingSo()
    {
        using var corpus = new TestCorpus();
        corpus.Write("a.png", "nope"u8.ToArray());
        corpus.Write("b.png", "nope"u8.ToArray());
        var partitions = CorpusPlanner.Plan(corpus.Root, CorpusKind.Folder, ["a.png", "b.png"], 1);
        var batches = new TrainingBatches(Reader(partitions), new TrainingPreprocessor(16, CropRanges.Reference), 2, 1, 2);

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => TakeBatchesAsync(batches, TrainingDataPosition.Start, 1));

        Assert.Contains("no decodable image", error.Message);
    }

    private static string Describe(TrainingSample sample) => $"{sample.Item.Key}@{sample.Position}#{sample.CropSeed}";

    private static IFileStore FileStore(string location) => new LocalFileStore(location);

    private static TrainingSampleReader Reader(IReadOnlyList<CorpusPartition> partitions, ulong seed = 3, int shuffleBuffer = 4) =>
        new(partitions, new TrainingDataOptions(seed, ShuffleBuffer: shuffleBuffer), FileStore);

    private static IReadOnlyList<CorpusPartition> Folder(TestCorpus corpus, int images, int width = 8, int height = 6, int filesPerPartition = 5)
    {
        for (var i = 0; i < images; i++)
            corpus.Write($"img{i:D2}.png", TestCorpus.Image(SKEncodedImageFormat.Png, width, height, (byte)(10 + 17 * i)));
        return CorpusPlanner.Plan(corpus.Root, CorpusKind.Folder, Enumerable.Range(0, images).Select(i => $"img{i:D2}.png"), filesPerPartition);
    }

    private static IReadOnlyList<CorpusPartition> Tars(TestCorpus corpus, int tars, int samplesPerTar)
    {
        for (var t = 0; t < tars; t++)
        {
            var members = Enumerable.Range(0, samplesPerTar).SelectMany(s => new[]
            {
                ($"s{t}_{s:D2}.png", TestCorpus.Image(shade: (byte)(t * 40 + s))),
                ($"s{t}_{s:D2}.txt", TestCorpus.Text($"caption {t} {s}")),
            }).ToArray();
            corpus.Write($"shard-{t}.tar", TestCorpus.Tar(members));
        }
        return CorpusPlanner.Plan(corpus.Root, CorpusKind.WebDataset, Enumerable.Range(0, tars).Select(t => $"shard-{t}.tar"), 1);
    }

    private static async Task<List<TrainingSample>> TakeAsync(TrainingSampleReader reader, TrainingDataPosition start, int count)
    {
        var taken = new List<TrainingSample>();
        await foreach (var sample in reader.ReadAsync(start, Token))
        {
            taken.Add(sample);
            if (taken.Count == count) break;
        }
        return taken;
    }

    private static async Task<List<TrainingBatch>> TakeBatchesAsync(TrainingBatches batches, TrainingDataPosition start, int count)
    {
        var taken = new List<TrainingBatch>();
        await foreach (var batch in batches.ReadAsync(start, Token))
        {
            taken.Add(batch);
            if (taken.Count == count) break;
        }
        return taken;
    }
}
