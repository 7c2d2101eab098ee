using Azure.Storage.Blobs;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;
using WinTok.Data.Tests.Shards;

namespace WinTok.Data.Tests.Corpus;

/// <summary>The same sources and writers over Azurite; see <see cref="Azurite"/> for when these skip or fail.</summary>
public sealed class BlobStoreTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static async Task UploadAsync(BlobContainerClient container, string name, byte[] bytes) =>
        await container.GetBlobClient(name).UploadAsync(new BinaryData(bytes), Token);

    [Fact]
    public async Task ReadAsync_WhenCorpusIsABlobPrefix_PlansAndReadsLikeALocalFolder()
    {
        var container = await Azurite.NewContainerAsync(Token);
        var jpg = TestCorpus.Jpeg();
        await UploadAsync(container, "corpus/cat/1.jpg", jpg);
        await UploadAsync(container, "corpus/dog/1.png", TestCorpus.Image());
        await UploadAsync(container, "corpus/dog/2.png", TestCorpus.Image());
        await UploadAsync(container, "other/x.jpg", jpg);
        var store = FileStores.Open($"az://{container.Name}/corpus", Azurite.Service);

        var partitions = await CorpusPlanner.PlanAsync(store, CorpusKind.ImageFolder, 2, Token);
        await container.DeleteBlobAsync("corpus/dog/2.png", cancellationToken: Token); // vanishes after planning
        var items = new List<CorpusItem>();
        foreach (var partition in partitions)
        {
            var reopened = FileStores.Open(partition.CorpusUri, Azurite.Service);
            await foreach (var item in CorpusReader.ReadAsync(partition, reopened, Token))
            {
                items.Add(item);
            }
        }

        Assert.Equal(["cat/1.jpg", "dog/1.png", "dog/2.png"], items.Select(i => i.Key));
        var first = Assert.IsType<CorpusSample>(items[0]);
        Assert.Equal(jpg, first.Bytes);
        Assert.Equal(0, first.Label);
        Assert.Equal(container.GetBlobClient("corpus/cat/1.jpg").Uri.ToString(), first.Source);
        var vanished = Assert.IsType<FailureRecord>(items[2]);
        Assert.Equal(typeof(FileNotFoundException).FullName, vanished.ExceptionType);
    }

    [Fact]
    public async Task ReadAsync_WhenWebDatasetTarIsABlob_StreamsItsSamples()
    {
        var container = await Azurite.NewContainerAsync(Token);
        // Larger than the blob read stream's buffer, so members arrive over several range requests.
        var big = TestCorpus.Image(SkiaSharp.SKEncodedImageFormat.Png, 900, 900);
        var members = Enumerable.Range(0, 6)
            .SelectMany(i => new[] { ($"s{i}.png", big), ($"s{i}.cls", TestCorpus.Text($"{i}")) })
            .Append(("s6.npy", new byte[] { 1 }))
            .ToArray();
        await UploadAsync(container, "wds/train-000.tar", TestCorpus.Tar(members));
        var store = FileStores.Open($"az://{container.Name}/wds", Azurite.Service);

        var items = new List<CorpusItem>();
        foreach (var partition in await CorpusPlanner.PlanAsync(store, CorpusKind.WebDataset, cancellationToken: Token))
        {
            await foreach (var item in CorpusReader.ReadAsync(partition, store, Token))
            {
                items.Add(item);
            }
        }

        var samples = items.OfType<CorpusSample>().ToList();
        Assert.Equal([0, 1, 2, 3, 4, 5], samples.Select(s => s.Label!.Value));
        Assert.All(samples, s => Assert.Equal(big, s.Bytes));
        Assert.Equal(2, items.OfType<FailureRecord>().Count()); // the .npy member, and its sample without image
    }

    [Fact]
    public async Task CommitAsync_WhenBlobExists_ReportsAlreadyCommittedForSameBytesAndConflictOtherwise()
    {
        var container = await Azurite.NewContainerAsync(Token);
        var store = new BlobFileStore(container, "tokens/v1");
        Func<Stream, CancellationToken, Task> Writes(byte[] bytes) => (stream, ct) => stream.WriteAsync(bytes, ct).AsTask();

        var created = await store.CommitAsync("shards/a.bin", Writes([1, 2, 3]), Token);
        var again = await store.CommitAsync("shards/a.bin", Writes([1, 2, 3]), Token);

        Assert.Equal((CommitOutcome.Created, 3L), (created.Outcome, created.Bytes));
        Assert.Equal((CommitOutcome.AlreadyCommitted, created.Sha256), (again.Outcome, again.Sha256));
        await Assert.ThrowsAsync<CommitConflictException>(() => store.CommitAsync("shards/a.bin", Writes([9]), Token));
        var content = await container.GetBlobClient("tokens/v1/shards/a.bin").DownloadContentAsync(Token);
        Assert.Equal([1, 2, 3], content.Value.Content.ToArray());
    }

    [Fact]
    public async Task VerifyAsync_WhenDatasetIsInBlobStorage_ReadsItBackAndFindsCorruption()
    {
        var container = await Azurite.NewContainerAsync(Token);
        var store = FileStores.Open($"{container.Uri}/tokens/v1", Azurite.Service);
        await TestDatasets.WriteAsync(store, [5, 4], 2, Token);

        var clean = await DatasetVerifier.VerifyAsync(store, Token);
        var reader = await TokenStreamReader.OpenAsync(store, new TokenStreamOptions { VerifyHashes = true }, Token);
        var rows = new List<TokenRow>();
        await foreach (var item in reader.ReadEpochAsync(0, null, Token))
        {
            rows.Add(item.Row);
        }

        await container.DeleteBlobAsync("tokens/v1/shards/part-000001.parquet", cancellationToken: Token);
        var broken = await DatasetVerifier.VerifyAsync(store, Token);

        Assert.Empty(clean.Problems);
        Assert.Equal(9, rows.Count);
        TestDatasets.AssertRowsEqual(TestDatasets.Row(1, 3), rows[^1]);
        Assert.Contains("shards/part-000001.parquet: listed in the manifest but missing", broken.Problems);
    }
}
