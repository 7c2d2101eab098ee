using System.Security.Cryptography;
using System.Text;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;

namespace WinTok.Data.Tests.Shards;

/// <summary>Small token datasets with deterministic, distinguishable values.</summary>
internal static class TestDatasets
{
    // Small but with every column: K = 4 codebooks over a 4x4 grid, N = 2 semantic tokens of D = 8.
    public static readonly TokenLayout Layout = new(4, 4096, 16, "4x4", SemanticTokens: 2, SemanticDim: 8, HasPooled: true);

    public static ShardMetadata Metadata(TokenLayout? layout = null) => new(
        "job-test",
        "wintok-test@00000000",
        new string('a', 64),
        "wintok",
        "{\"num_codebooks\":4}",
        "resize_shorter:256:bicubic:antialias|center_crop:256|rgb|scale:-1..1",
        layout ?? Layout,
        new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));

    public static TokenRow Row(int partition, int index, TokenLayout? layout = null)
    {
        layout ??= Layout;
        var key = $"p{partition:D2}/img{index:D4}";
        var random = new Random(partition * 100_000 + index);
        var pixel = new ushort[layout.PixelLength];
        for (var i = 0; i < pixel.Length; i++)
        {
            pixel[i] = (ushort)random.Next(layout.CodebookSize);
        }

        short[] Bf16(int n) => [.. Enumerable.Range(0, n).Select(_ => BFloat16Bits.FromSingle((float)(random.NextDouble() * 4 - 2)))];
        return new TokenRow(
            key,
            $"file:///corpus/{key}.jpg",
            SHA256.HashData(Encoding.UTF8.GetBytes(key)),
            100 + index,
            50 + index,
            index % 3 == 0 ? null : index % 10,
            index % 2 == 0 ? $"caption {index}" : null,
            pixel,
            layout.SemanticTokens > 0 ? Bf16(layout.SemanticLength) : null,
            layout.HasPooled ? Bf16(layout.SemanticDim) : null);
    }

    /// <summary>Writes <paramref name="rowsPerPartition"/>[p] rows per partition, then the manifest.</summary>
    public static async Task<DatasetManifest> WriteAsync(IFileStore store, int[] rowsPerPartition, int rowGroupSize, CancellationToken cancellationToken,
        ShardMetadata? metadata = null)
    {
        metadata ??= Metadata();
        var shards = new List<ShardInfo>();
        for (var p = 0; p < rowsPerPartition.Length; p++)
        {
            var writer = new ShardWriter(store, p, metadata, new ShardWriterOptions { RowGroupSize = rowGroupSize });
            // Reverse order: the writer must sort by key.
            for (var i = rowsPerPartition[p] - 1; i >= 0; i--)
            {
                writer.Add(Row(p, i));
            }

            writer.AddFailure(new FailureRecord($"p{p:D2}/bad", $"file:///corpus/p{p:D2}/bad.jpg", "not an image", "System.FormatException", new string('0', 64)));
            shards.Add(await writer.CommitAsync(cancellationToken));
        }

        return await ManifestWriter.WriteAsync(store, metadata, shards, cancellationToken);
    }

    public static void AssertRowsEqual(TokenRow expected, TokenRow actual)
    {
        Assert.Equal(expected.Key, actual.Key);
        Assert.Equal(expected.SourceUri, actual.SourceUri);
        Assert.Equal(expected.SourceSha256, actual.SourceSha256);
        Assert.Equal((expected.OrigWidth, expected.OrigHeight), (actual.OrigWidth, actual.OrigHeight));
        Assert.Equal(expected.Label, actual.Label);
        Assert.Equal(expected.Caption, actual.Caption);
        Assert.Equal(expected.PixelTokens, actual.PixelTokens);
        Assert.Equal(expected.SemanticTokens, actual.SemanticTokens);
        Assert.Equal(expected.SemanticPooled, actual.SemanticPooled);
    }
}

/// <summary>A temp folder as a dataset store.</summary>
internal sealed class TempDataset : IDisposable
{
    public TempDataset()
    {
        Root = Path.Combine(Path.GetTempPath(), "wintok-tests", Guid.NewGuid().ToString("N"));
        Store = new LocalFileStore(Root);
    }

    public string Root { get; }

    public LocalFileStore Store { get; }

    public void Dispose()
    {
        if (Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}
