using WinTok.Data.Corpus;

namespace WinTok.Data.Tests.Corpus;

public sealed class CorpusReaderTests
{
    private static async Task<List<CorpusItem>> ReadAllAsync(IFileStore store, CorpusKind kind, int filesPerPartition = 100)
    {
        var items = new List<CorpusItem>();
        foreach (var partition in await CorpusPlanner.PlanAsync(store, kind, filesPerPartition, TestContext.Current.CancellationToken))
        {
            await foreach (var item in CorpusReader.ReadAsync(CorpusPartition.FromJson(partition.ToJson()), store, TestContext.Current.CancellationToken))
            {
                items.Add(item);
            }
        }

        return items;
    }

    [Fact]
    public async Task ReadAsync_WhenFolder_YieldsEveryImageRecursivelyInSortedOrder()
    {
        using var corpus = new TestCorpus();
        var png = TestCorpus.Image();
        corpus.Write("b.png", png);
        corpus.Write("a/deep/c.jpg", TestCorpus.Jpeg());
        corpus.Write("a/readme.md", TestCorpus.Text("not an image"));
        var store = new LocalFileStore(corpus.Root);

        var items = await ReadAllAsync(store, CorpusKind.Folder, filesPerPartition: 1);

        var samples = items.Cast<CorpusSample>().ToList();
        Assert.Equal(["a/deep/c.jpg", "b.png"], samples.Select(s => s.Key));
        Assert.Equal(png, samples[1].Bytes);
        Assert.Equal(Path.Combine(corpus.Root, "b.png"), samples[1].Source);
        Assert.All(samples, s => Assert.Null(s.Label));
    }

    [Fact]
    public async Task ReadAsync_WhenImageFolder_LabelsAreTheIndexOfTheSortedClassName()
    {
        using var corpus = new TestCorpus();
        corpus.Write("zebra/1.jpg", TestCorpus.Jpeg());
        corpus.Write("cat/1.jpg", TestCorpus.Jpeg());
        corpus.Write("dog/1.png", TestCorpus.Image());
        corpus.Write("dog/2.png", TestCorpus.Image());
        var store = new LocalFileStore(corpus.Root);

        var samples = (await ReadAllAsync(store, CorpusKind.ImageFolder, filesPerPartition: 3)).Cast<CorpusSample>().ToList();

        Assert.Equal(
            [("cat/1.jpg", 0, "cat"), ("dog/1.png", 1, "dog"), ("dog/2.png", 1, "dog"), ("zebra/1.jpg", 2, "zebra")],
            samples.Select(s => (s.Key, s.Label!.Value, s.ClassName!)));
    }

    [Fact]
    public async Task ReadAsync_WhenWebDataset_GroupsMembersByKeyAndKeepsMetadata()
    {
        using var corpus = new TestCorpus();
        var jpg = TestCorpus.Jpeg();
        corpus.Write("shard-000.tar", TestCorpus.Tar(
            ("dir/s1.jpg", jpg),
            ("dir/s1.cls", TestCorpus.Text("7\n")),
            ("dir/s1.txt", TestCorpus.Text("a red square")),
            ("dir/s1.json", TestCorpus.Text("{\"w\":8}")),
            ("dir/s2.png", TestCorpus.Image()),
            ("dir/s2.jpg", jpg),
            ("s3.webp", TestCorpus.Image(SkiaSharp.SKEncodedImageFormat.Webp))));
        var store = new LocalFileStore(corpus.Root);

        var samples = (await ReadAllAsync(store, CorpusKind.WebDataset)).Cast<CorpusSample>().ToList();

        Assert.Equal(["dir/s1", "dir/s2", "s3"], samples.Select(s => s.Key));
        Assert.Equal((7, "a red square", "{\"w\":8}"), (samples[0].Label!.Value, samples[0].Caption!, samples[0].Json!));
        Assert.Equal(jpg, samples[0].Bytes);
        Assert.EndsWith("shard-000.tar#dir/s1.jpg", samples[0].Source, StringComparison.Ordinal);
        Assert.EndsWith("#dir/s2.jpg", samples[1].Source, StringComparison.Ordinal); // jpg preferred over png
        Assert.Null(samples[1].Label);
    }

    [Fact]
    public async Task ReadAsync_WhenTarHasNonImageMember_RecordsFailureAndYieldsTheRest()
    {
        using var corpus = new TestCorpus();
        corpus.Write("a.tar", TestCorpus.Tar(
            ("s1.jpg", TestCorpus.Jpeg()),
            ("s1.npy", [1, 2, 3]),
            ("s2.cls", TestCorpus.Text("3")),
            ("s3.jpg", TestCorpus.Jpeg()),
            ("s4.jpg", [])));
        var store = new LocalFileStore(corpus.Root);

        var items = await ReadAllAsync(store, CorpusKind.WebDataset);

        Assert.Equal(["s1", "s3"], items.OfType<CorpusSample>().Select(s => s.Key));
        var failures = items.OfType<FailureRecord>().ToList();
        Assert.Equal(["s1", "s2", "s4"], failures.Select(f => f.Key));
        Assert.Contains("not an image (.npy)", failures[0].Reason, StringComparison.Ordinal);
        Assert.Equal(FailureRecord.Sha256Hex([1, 2, 3]), failures[0].BytesSha256);
        Assert.EndsWith("a.tar#s1.npy", failures[0].Source, StringComparison.Ordinal);
        Assert.Contains("no image member", failures[1].Reason, StringComparison.Ordinal);
        Assert.Contains("empty", failures[2].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadAsync_WhenTarIsTruncated_RecordsFailureAndKeepsEarlierSamples()
    {
        using var corpus = new TestCorpus();
        var s1 = ("s1.jpg", TestCorpus.Jpeg());
        var tar = TestCorpus.Tar(s1, ("s2.jpg", new byte[5000]), ("s3.jpg", TestCorpus.Jpeg()));
        // TarWriter ends an archive with two 512-byte zero blocks; s2's headers start there, its data ~1.5 KB later.
        var cut = TestCorpus.Tar(s1).Length - 1024 + 2500;
        corpus.Write("cut.tar", tar[..cut]);
        corpus.Write("whole.tar", tar);
        var store = new LocalFileStore(corpus.Root);

        var items = await ReadAllAsync(store, CorpusKind.WebDataset);

        // cut.tar: s1 survives, then one failure for the truncated member; whole.tar is unaffected.
        Assert.Equal(["s1", "s1", "s2", "s3"], items.OfType<CorpusSample>().Select(s => s.Key));
        var failure = Assert.Single(items.OfType<FailureRecord>());
        Assert.Contains("cut.tar", failure.Source, StringComparison.Ordinal);
        Assert.Contains("truncated", failure.Reason, StringComparison.Ordinal);
        Assert.NotNull(failure.ExceptionType);
    }

    [Fact]
    public async Task ReadAsync_WhenFilesVanishOrCannotBeRead_RecordsFailuresAndYieldsTheRest()
    {
        using var corpus = new TestCorpus();
        corpus.Write("a.jpg", TestCorpus.Jpeg());
        var vanished = corpus.Write("b.jpg", TestCorpus.Jpeg());
        Directory.CreateDirectory(Path.Combine(corpus.Root, "c.jpg")); // listed as a file by the plan below, unreadable
        corpus.Write("d.jpg", []);
        corpus.Write("e.jpg", TestCorpus.Jpeg());
        var store = new LocalFileStore(corpus.Root);
        var partition = new CorpusPartition(store.Location, CorpusKind.Folder, 0, Files: ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]);
        File.Delete(vanished);

        var items = new List<CorpusItem>();
        await foreach (var item in CorpusReader.ReadAsync(partition, store, TestContext.Current.CancellationToken))
        {
            items.Add(item);
        }

        Assert.Equal(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"], items.Select(i => i.Key));
        Assert.Equal([false, true, true, true, false], items.Select(i => i is FailureRecord));
        Assert.Equal(typeof(FileNotFoundException).FullName, ((FailureRecord)items[1]).ExceptionType);
        Assert.Equal(typeof(UnauthorizedAccessException).FullName, ((FailureRecord)items[2]).ExceptionType);
    }

    [Theory]
    [InlineData("a/b.jpg", "a/b", "jpg")]
    [InlineData("a.b/c.seg.PNG", "a.b/c", "seg.png")]
    [InlineData("noext", "noext", "")]
    public void SplitMemberName_FollowsWebDatasetKeyRule(string name, string key, string extension)
    {
        Assert.Equal((key, extension), CorpusReader.SplitMemberName(name));
    }
}
