using WinTok.Data.Shards;

namespace WinTok.Data.Tests.Shards;

public sealed class TokenStreamReaderTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static async Task<List<TokenStreamItem>> ReadAsync(TempDataset dataset, TokenStreamOptions options, int epoch, ReaderPosition? from = null)
    {
        var reader = await TokenStreamReader.OpenAsync(dataset.Store, options, Token);
        var items = new List<TokenStreamItem>();
        await foreach (var item in reader.ReadEpochAsync(epoch, from, Token))
        {
            items.Add(item);
        }

        return items;
    }

    [Fact]
    public async Task ReadEpochAsync_WhenSplitAcrossRanksAndWorkers_IsDisjointAndComplete()
    {
        using var dataset = new TempDataset();
        var manifest = await TestDatasets.WriteAsync(dataset.Store, [10, 3, 0, 8], 3, Token);
        var seen = new List<long>();

        foreach (var shuffle in new[] { false, true })
        {
            seen.Clear();
            for (var rank = 0; rank < 2; rank++)
            {
                for (var worker = 0; worker < 3; worker++)
                {
                    var options = new TokenStreamOptions { Rank = rank, WorldSize = 2, Worker = worker, NumWorkers = 3, Shuffle = shuffle, Seed = 5 };
                    seen.AddRange((await ReadAsync(dataset, options, epoch: 1)).Select(i => i.Row.RowId));
                }
            }

            Assert.Equal(21, seen.Count);
            Assert.Equal(seen.Count, seen.Distinct().Count());
            Assert.Equal(manifest.Totals.Rows, seen.Count);
        }
    }

    [Fact]
    public async Task ReadEpochAsync_WhenResumedFromASavedPosition_YieldsExactlyTheRemainingRows()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [10, 7, 9], 4, Token);
        var options = new TokenStreamOptions { Shuffle = true, Seed = 11, ShuffleWindowRowGroups = 2, Columns = ShardColumns.None };
        var full = await ReadAsync(dataset, options, epoch: 3);

        foreach (var stopAfter in new[] { 1, 7, 8, 15, 25, full.Count })
        {
            var saved = ReaderPosition.FromJson(full[stopAfter - 1].Next.ToJson());
            var rest = await ReadAsync(dataset, options, epoch: 3, saved);

            Assert.Equal(full.Skip(stopAfter).Select(i => i.Row.RowId), rest.Select(i => i.Row.RowId));
        }
    }

    [Fact]
    public async Task ReadEpochAsync_WhenShuffled_IsDeterministicBySeedAndEpoch()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [12, 12, 12], 4, Token);
        TokenStreamOptions Options(int seed) => new() { Shuffle = true, Seed = seed, Columns = ShardColumns.None };
        async Task<List<long>> Order(int seed, int epoch) => [.. (await ReadAsync(dataset, Options(seed), epoch)).Select(i => i.Row.RowId)];

        var a = await Order(1, 0);

        Assert.Equal(a, await Order(1, 0));
        Assert.NotEqual(a, await Order(2, 0));
        Assert.NotEqual(a, await Order(1, 1));
        Assert.Equal(a.Order(), (await Order(2, 0)).Order());
        Assert.NotEqual(a, a.Order().ToList()); // actually shuffled
    }

    [Fact]
    public async Task ReadEpochAsync_WhenNotShuffled_YieldsRowsInManifestAndKeyOrderWithAllColumns()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [3, 2], 2, Token);

        var rows = (await ReadAsync(dataset, new TokenStreamOptions(), epoch: 0)).Select(i => i.Row).ToList();

        Assert.Equal(["p00/img0000", "p00/img0001", "p00/img0002", "p01/img0000", "p01/img0001"], rows.Select(r => r.Key));
        TestDatasets.AssertRowsEqual(TestDatasets.Row(1, 1), rows[4]);
    }

    [Fact]
    public async Task ReadEpochAsync_WhenVerifyingHashesAndAShardIsCorrupt_Throws()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [4], 4, Token);
        var path = Path.Combine(dataset.Root, "shards/part-000000.parquet");
        var bytes = await File.ReadAllBytesAsync(path, Token);
        bytes[100] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes, Token);

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => ReadAsync(dataset, new TokenStreamOptions { VerifyHashes = true }, 0));
        Assert.Contains("the manifest lists", error.Message, StringComparison.Ordinal);
    }
}
