using System.Text.Json.Nodes;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;

namespace WinTok.Data.Tests.Shards;

public sealed class DatasetVerifierTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WriteAsync_ListsEveryShardByPartitionWithTotals()
    {
        using var dataset = new TempDataset();

        var manifest = await TestDatasets.WriteAsync(dataset.Store, [5, 0, 7], 4, Token);
        var read = await DatasetManifest.ReadAsync(dataset.Store, Token);

        Assert.Equal([0, 1, 2], read.Shards.Select(s => s.Partition));
        Assert.Equal([5L, 0L, 7L], read.Shards.Select(s => s.Rows));
        Assert.Equal(new ManifestTotals(3, 12, manifest.Shards.Sum(s => s.Bytes), 3), read.Totals);
        Assert.Equal(TestDatasets.Layout, read.Layout);
        var json = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(dataset.Root, "_manifest.json"), Token))!;
        Assert.Equal(16, (int)json["layout"]!["positions"]!);
        Assert.Equal("bfloat16", (string)json["layout"]!["semantic_dtype"]!);
        Assert.Equal(64, ((string)json["shards"]![0]!["sha256"]!).Length);
    }

    [Fact]
    public async Task WriteAsync_WhenTheSameManifestIsWrittenAgain_ReturnsItAndRejectsADifferentOne()
    {
        using var dataset = new TempDataset();
        var manifest = await TestDatasets.WriteAsync(dataset.Store, [2, 2], 4, Token);

        var again = await ManifestWriter.WriteAsync(dataset.Store, TestDatasets.Metadata(), manifest.Shards.Reverse(), Token);

        Assert.Equal(manifest.Totals, again.Totals);
        await Assert.ThrowsAsync<CommitConflictException>(() => ManifestWriter.WriteAsync(dataset.Store, TestDatasets.Metadata(), manifest.Shards.Take(1), Token));
    }

    [Fact]
    public async Task VerifyAsync_WhenDatasetIsIntact_ReportsNoProblems()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [9, 4], 4, Token);

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Empty(result.Problems);
        Assert.Equal((2, 13L), (result.ShardsChecked, result.RowsChecked));
    }

    [Fact]
    public async Task VerifyAsync_WhenOneByteIsCorrupted_ReportsTheHashMismatch()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [9], 4, Token);
        var path = Path.Combine(dataset.Root, "shards/part-000000.parquet");
        var bytes = await File.ReadAllBytesAsync(path, Token);
        bytes[bytes.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(path, bytes, Token);

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Contains(result.Problems, p => p.StartsWith("shards/part-000000.parquet: sha256 is", StringComparison.Ordinal));
    }

    [Fact]
    public async Task VerifyAsync_WhenAShardIsMissingAndAnotherCorrupt_ReportsBoth()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [3, 3, 3], 4, Token);
        File.Delete(Path.Combine(dataset.Root, "shards/part-000001.parquet"));
        await File.WriteAllTextAsync(Path.Combine(dataset.Root, "shards/part-000002.parquet"), "garbage", Token);

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.False(result.IsValid);
        Assert.Contains("shards/part-000001.parquet: listed in the manifest but missing", result.Problems);
        Assert.Contains(result.Problems, p => p.StartsWith("shards/part-000002.parquet: is 7 bytes", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.StartsWith("shards/part-000002.parquet: sha256", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Problems, p => p.StartsWith("shards/part-000000", StringComparison.Ordinal));
    }

    [Fact]
    public async Task VerifyAsync_WhenManifestRowCountIsWrong_ReportsTheMismatch()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [6], 4, Token);
        var manifestPath = Path.Combine(dataset.Root, "_manifest.json");
        var json = JsonNode.Parse(await File.ReadAllTextAsync(manifestPath, Token))!;
        json["shards"]![0]!["rows"] = 7;
        json["totals"]!["rows"] = 7;
        await File.WriteAllTextAsync(manifestPath, json.ToJsonString(), Token);

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Contains("shards/part-000000.parquet: has 6 rows, manifest lists 7", result.Problems);
        Assert.Contains("_manifest.json: shards/part-000000.parquet lists 7 rows but row groups of 6", result.Problems);
    }

    [Fact]
    public async Task VerifyAsync_WhenManifestIsMissing_SaysSo()
    {
        using var dataset = new TempDataset();

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Contains("cannot read manifest", Assert.Single(result.Problems), StringComparison.Ordinal);
    }
}
