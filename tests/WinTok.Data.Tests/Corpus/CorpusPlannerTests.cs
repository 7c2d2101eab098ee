using WinTok.Data.Corpus;

namespace WinTok.Data.Tests.Corpus;

public sealed class CorpusPlannerTests
{
    [Fact]
    public async Task PlanAsync_WhenRunTwice_ProducesIdenticalPartitions()
    {
        using var corpus = new TestCorpus();
        foreach (var name in new[] { "b/2.jpg", "a/1.png", "c.webp", "a/z/9.JPEG", "d.bmp", "notes.txt" })
        {
            corpus.Write(name, TestCorpus.Jpeg());
        }

        var store = new LocalFileStore(corpus.Root);
        var first = await CorpusPlanner.PlanAsync(store, CorpusKind.Folder, 2, TestContext.Current.CancellationToken);
        var second = await CorpusPlanner.PlanAsync(store, CorpusKind.Folder, 2, TestContext.Current.CancellationToken);

        Assert.Equal(first.Select(p => p.ToJson()), second.Select(p => p.ToJson()));
        Assert.Equal(
            ["a/1.png", "a/z/9.JPEG", "b/2.jpg", "c.webp", "d.bmp"],
            first.SelectMany(p => p.Files!));
        Assert.Equal([0, 1, 2], first.Select(p => p.Index));
        Assert.Equal([2, 2, 1], first.Select(p => p.Files!.Count));
    }

    [Fact]
    public void Plan_WhenListingOrderDiffers_ProducesTheSamePartitions()
    {
        var paths = Enumerable.Range(0, 25).Select(i => $"img/{i:D3}.jpg").ToList();
        var shuffled = paths.OrderBy(p => p.GetHashCode(StringComparison.Ordinal)).ToList();

        var sorted = CorpusPlanner.Plan("corpus", CorpusKind.Folder, paths, 10);
        var fromShuffled = CorpusPlanner.Plan("corpus", CorpusKind.Folder, shuffled, 10);

        Assert.Equal(sorted.Select(p => p.ToJson()), fromShuffled.Select(p => p.ToJson()));
    }

    [Fact]
    public void Plan_WhenImageFolder_CarriesAllSortedClassNamesInEveryPartition()
    {
        var paths = new[] { "zebra/1.jpg", "cat/1.jpg", "cat/2.jpg", "dog/x/1.png", "root.jpg", "dog/readme.txt", ".hidden/1.jpg" };

        var partitions = CorpusPlanner.Plan("corpus", CorpusKind.ImageFolder, paths, 2);

        Assert.All(partitions, p => Assert.Equal(["cat", "dog", "zebra"], p.ClassNames!));
        Assert.Equal(["cat/1.jpg", "cat/2.jpg", "dog/x/1.png", "zebra/1.jpg"], partitions.SelectMany(p => p.Files!));
    }

    [Fact]
    public void Plan_WhenWebDataset_MakesOnePartitionPerTarInPathOrder()
    {
        var partitions = CorpusPlanner.Plan("corpus", CorpusKind.WebDataset, ["train-0002.tar", "train-0001.tar", "index.json", "train-0010.tar"], 10);

        Assert.Equal(["train-0001.tar", "train-0002.tar", "train-0010.tar"], partitions.Select(p => p.Tar));
        Assert.Equal([0, 1, 2], partitions.Select(p => p.Index));
        Assert.All(partitions, p => Assert.Null(p.Files));
    }

    [Fact]
    public void ToJson_WhenParsedBack_GivesAnEqualPartition()
    {
        var partition = new CorpusPartition("az://images/imagenet/train", CorpusKind.ImageFolder, 7, Files: ["cat/1.jpg", "dog/2.jpg"], ClassNames: ["cat", "dog"]);

        var json = partition.ToJson();
        var parsed = CorpusPartition.FromJson(json);

        Assert.True(parsed.SameAs(partition));
        Assert.Contains("\"kind\":\"ImageFolder\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("tar", json, StringComparison.Ordinal);
    }
}
