using System.Text.Json.Nodes;
using Parquet;
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
    public async Task VerifyAsync_WhenTheManifestNamesAnotherModelKindThanTheShards_ReportsIt()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [3], 4, Token);
        var manifestPath = Path.Combine(dataset.Root, "_manifest.json");
        var json = JsonNode.Parse(await File.ReadAllTextAsync(manifestPath, Token))!;
        Assert.Equal("wintok", (string?)json["model_kind"]);
        json["model_kind"] = "unitok";
        await File.WriteAllTextAsync(manifestPath, json.ToJsonString(), Token);

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Contains("shards/part-000000.parquet: written by model kind wintok, manifest says unitok", result.Problems);
    }

    [Fact]
    public async Task VerifyAsync_ADatasetWrittenBeforeModelKindsWereRecorded_ReadsWithoutOneAndIsIntact()
    {
        using var dataset = new TempDataset();
        await TestDatasets.WriteAsync(dataset.Store, [3], 4, Token, TestDatasets.Metadata() with { ModelKind = null });
        var manifestPath = Path.Combine(dataset.Root, "_manifest.json");
        var json = JsonNode.Parse(await File.ReadAllTextAsync(manifestPath, Token))!.AsObject();
        Assert.True(json.Remove("model_kind"));
        await File.WriteAllTextAsync(manifestPath, json.ToJsonString(), Token);

        var manifest = await DatasetManifest.ReadAsync(dataset.Store, Token);
        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Null(manifest.ModelKind);
        Assert.Empty(result.Problems);
    }

    [Fact]
    public async Task VerifyAsync_WhenManifestIsMissing_SaysSo()
    {
        using var dataset = new TempDataset();

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        Assert.Contains("cannot read manifest", Assert.Single(result.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public async Task VerifyAsync_WhenATokenColumnDoesNotMatchTheLayoutShape_ReportsIt()
    {
        using var dataset = new TempDataset();
        var metadata = TestDatasets.Metadata(new TokenLayout(4, 4096, 16, "4x4"));
        // A shard whose metadata promises 64 pixel tokens per row while its rows hold 60: only a writer bug or a
        // foreign tool could produce it, so it is written here with Parquet.Net directly.
        var committed = await dataset.Store.CommitAsync("shards/part-000000.parquet", async (stream, ct) =>
        {
            var schema = ShardSchema.Build(metadata.Layout);
            var fields = schema.GetDataFields();
            await using var writer = await ParquetWriter.CreateAsync(schema, stream, cancellationToken: ct);
            writer.CustomMetadata = ShardSchema.FileMetadata(metadata, 0);
            using var rowGroup = writer.CreateRowGroup();
            await rowGroup.WriteAsync<long>(fields[0], new long[] { 0, 1 }, cancellationToken: ct);
            await rowGroup.WriteAsync(fields[1], new[] { "a", "b" });
            await rowGroup.WriteAsync(fields[2], new[] { "s", "s" });
            await rowGroup.WriteAsync(fields[3], new[] { new byte[32], new byte[32] });
            await rowGroup.WriteAsync<int>(fields[4], new[] { 1, 1 }, cancellationToken: ct);
            await rowGroup.WriteAsync<int>(fields[5], new[] { 1, 1 }, cancellationToken: ct);
            await rowGroup.WriteAsync<int>(fields[6], new int?[] { null, null }.AsMemory(), cancellationToken: ct);
            await rowGroup.WriteAsync(fields[7], new string?[] { null, null });
            var repetition = Enumerable.Range(0, 120).Select(i => i % 60 == 0 ? 0 : 1).ToArray();
            await rowGroup.WriteAllPartsAsync<ushort>(fields[8], new ushort[120], Enumerable.Repeat(2, 120).ToArray(), repetition, ct);
        }, Token);
        var errors = await dataset.Store.CommitAsync("_errors/part-000000.parquet",
            (stream, ct) => FailureFile.WriteAsync(stream, [], metadata, 0, ct), Token);
        await ManifestWriter.WriteAsync(dataset.Store, metadata,
            [new ShardInfo(0, committed.Path, 2, committed.Bytes, committed.Sha256, [2], errors.Path, 0, errors.Bytes, errors.Sha256)], Token);

        var result = await DatasetVerifier.VerifyAsync(dataset.Store, Token);

        var problem = Assert.Single(result.Problems);
        Assert.Contains("pixel_tokens holds 120 values for 2 rows, layout expects 64 per row", problem, StringComparison.Ordinal);
    }
}
