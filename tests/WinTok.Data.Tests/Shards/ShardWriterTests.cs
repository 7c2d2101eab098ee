using WinTok.Data.Corpus;
using WinTok.Data.Shards;

namespace WinTok.Data.Tests.Shards;

public sealed class ShardWriterTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CommitAsync_ThenReadBack_GivesTheSameRowsSortedByKeyWithTheirShapes()
    {
        using var dataset = new TempDataset();
        var writer = new ShardWriter(dataset.Store, 3, TestDatasets.Metadata(), new ShardWriterOptions { RowGroupSize = 4 });
        var rows = Enumerable.Range(0, 10).Select(i => TestDatasets.Row(3, i)).ToList();
        foreach (var row in rows.AsEnumerable().Reverse())
        {
            writer.Add(row);
        }

        var info = await writer.CommitAsync(Token);

        Assert.Equal(("shards/part-000003.parquet", 10L, CommitOutcome.Created), (info.Path, info.Rows, info.Outcome));
        Assert.Equal([4, 4, 2], info.RowGroups);
        Assert.Equal(new FileInfo(Path.Combine(dataset.Root, info.Path)).Length, info.Bytes);
        await using var reader = await TokenShardReader.OpenAsync(dataset.Store, info.Path, Token);
        var read = new List<TokenRow>();
        await foreach (var row in reader.ReadAllAsync(ShardColumns.All, Token))
        {
            read.Add(row);
        }

        Assert.Equal(10, read.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            TestDatasets.AssertRowsEqual(rows[i], read[i]);
            Assert.Equal((3L << 32) + i, read[i].RowId);
            Assert.Equal(4 * 16, read[i].PixelTokens.Length);
            Assert.Equal(2 * 8, read[i].SemanticTokens!.Length);
        }

        Assert.Equal("1", reader.Metadata["wintok.schema_version"]);
        Assert.Equal("3", reader.Metadata["wintok.partition"]);
        Assert.Equal("4x4", reader.Metadata["wintok.grid"]);
        Assert.Equal("[2,8]", reader.Metadata["wintok.semantic_tokens.shape"]);
        Assert.Equal("wintok", reader.Metadata["wintok.model_kind"]);
        Assert.Equal(TestDatasets.Layout, reader.Layout);
    }

    [Fact]
    public async Task ReadRowGroupAsync_WhenOnlyPixelColumnIsRequested_LeavesTheOthersEmpty()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [3], 8, Token);
        await using var reader = await TokenShardReader.OpenAsync(dataset.Store, "shards/part-000000.parquet", Token);

        var rows = await reader.ReadRowGroupAsync(0, ShardColumns.Pixel, Token);

        Assert.Equal(TestDatasets.Row(0, 1).PixelTokens, rows[1].PixelTokens);
        Assert.Null(rows[1].SemanticTokens);
        Assert.Equal("", rows[1].SourceUri);
    }

    [Fact]
    public async Task CommitAsync_WhenPartitionIsRetriedWithTheSameRows_WritesIdenticalBytesAndReportsAlreadyCommitted()
    {
        using var dataset = new TempDataset();
        ShardInfo Commit(IEnumerable<int> order)
        {
            var writer = new ShardWriter(dataset.Store, 0, TestDatasets.Metadata());
            foreach (var i in order)
            {
                writer.Add(TestDatasets.Row(0, i));
            }

            writer.AddFailure(new FailureRecord("k", "s", "r"));
            return writer.CommitAsync(Token).GetAwaiter().GetResult();
        }

        var first = Commit(Enumerable.Range(0, 5));
        var retry = Commit([4, 2, 0, 1, 3]); // another GPU batch order

        Assert.Equal(CommitOutcome.Created, first.Outcome);
        Assert.Equal(CommitOutcome.AlreadyCommitted, retry.Outcome);
        Assert.Equal(first.Sha256, retry.Sha256);
        Assert.Equal(first.ErrorsSha256, retry.ErrorsSha256);
        Assert.Empty(Directory.GetFiles(Path.Combine(dataset.Root, "shards"), ".*"));
    }

    [Fact]
    public async Task CommitAsync_WhenARetryProducesDifferentRows_ThrowsAndKeepsTheCommittedShard()
    {
        using var dataset = new TempDataset();
        var first = new ShardWriter(dataset.Store, 0, TestDatasets.Metadata());
        first.Add(TestDatasets.Row(0, 0));
        var committed = await first.CommitAsync(Token);
        var second = new ShardWriter(dataset.Store, 0, TestDatasets.Metadata());
        second.Add(TestDatasets.Row(0, 1));

        await Assert.ThrowsAsync<CommitConflictException>(() => second.CommitAsync(Token));

        await using var reader = await TokenShardReader.OpenAsync(dataset.Store, committed.Path, Token);
        Assert.Equal([1L], reader.RowGroupRows);
    }

    [Fact]
    public async Task CommitAsync_WhenAKeyIsAddedTwice_KeepsOneRowAndRecordsTheOtherAsAFailure()
    {
        using var dataset = new TempDataset();
        var writer = new ShardWriter(dataset.Store, 1, TestDatasets.Metadata());
        writer.Add(TestDatasets.Row(1, 0) with { SourceUri = "b.tar#k.jpg" });
        writer.Add(TestDatasets.Row(1, 0) with { SourceUri = "a.tar#k.jpg" });
        writer.AddFailure(new FailureRecord("zz", "c.tar#zz.npy", "tar member is not an image (.npy)", null, new string('1', 64)));

        var info = await writer.CommitAsync(Token);
        var failures = await FailureFile.ReadAsync(dataset.Store, info.ErrorsPath, Token);

        Assert.Equal((1L, 2L), (info.Rows, info.Failures));
        Assert.Equal("_errors/part-000001.parquet", info.ErrorsPath);
        Assert.Equal(["b.tar#k.jpg", "c.tar#zz.npy"], failures.Select(f => f.Source));
        Assert.Contains("a.tar#k.jpg was kept", failures[0].Reason, StringComparison.Ordinal);
        Assert.Equal(new string('1', 64), failures[1].BytesSha256);
    }

    [Fact]
    public void Add_WhenPixelTokenCountDiffersFromTheLayout_ThrowsStatingBoth()
    {
        using var dataset = new TempDataset();
        var writer = new ShardWriter(dataset.Store, 0, TestDatasets.Metadata());

        var error = Assert.Throws<ArgumentException>(() => writer.Add(TestDatasets.Row(0, 0) with { PixelTokens = new ushort[63] }));
        Assert.Contains("63 pixel tokens, layout expects 64", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => writer.Add(TestDatasets.Row(0, 0) with { PixelTokens = Enumerable.Repeat((ushort)4096, 64).ToArray() }));
    }

    [Fact]
    public async Task CommitAsync_WhenLayoutHasNoSemanticTokens_WritesOnlyPixelTokens()
    {
        using var dataset = new TempDataset();
        var layout = new TokenLayout(4, 4096, 256, "16x16");
        var writer = new ShardWriter(dataset.Store, 0, TestDatasets.Metadata(layout));
        writer.Add(TestDatasets.Row(0, 0, layout));

        var info = await writer.CommitAsync(Token);
        await using var reader = await TokenShardReader.OpenAsync(dataset.Store, info.Path, Token);
        var row = Assert.Single(await reader.ReadRowGroupAsync(0, ShardColumns.All, Token));

        Assert.Equal(1024, row.PixelTokens.Length);
        Assert.Null(row.SemanticTokens);
        Assert.False(reader.Metadata.ContainsKey("wintok.semantic.dtype"));
    }

    [Theory]
    [InlineData(1.0f, 0x3F80)]
    [InlineData(-2.5f, unchecked((short)0xC020))]
    [InlineData(1.00390625f, 0x3F80)] // halfway between two bf16 values: rounds to even
    [InlineData(1.01171875f, 0x3F82)] // 1 + 3/256, halfway: rounds up to even
    public void BFloat16Bits_RoundToNearestEvenAndBack(float value, short bits)
    {
        Assert.Equal(bits, BFloat16Bits.FromSingle(value));
        Assert.Equal(BitConverter.UInt32BitsToSingle((uint)(ushort)bits << 16), BFloat16Bits.ToSingle(bits));
    }
}
