using Parquet;
using Parquet.Schema;
using WinTok.Data.Corpus;

namespace WinTok.Data.Shards;

/// <summary>
/// <c>_errors/part-{partition:D6}.parquet</c>: one row per rejected input (key, source, reason, exception_type,
/// bytes_sha256), sorted, with the same job metadata as the shard. Parquet rather than JSONL so that the same tools
/// read rows and rejects.
/// </summary>
public static class FailureFile
{
    private static readonly ParquetSchema Schema = new(
        new DataField<string>("key", nullable: false),
        new DataField<string>("source", nullable: false),
        new DataField<string>("reason", nullable: false),
        new DataField<string>("exception_type", nullable: true),
        new DataField<string>("bytes_sha256", nullable: true));

    /// <summary>Reads the failure records of one partition.</summary>
    public static async Task<IReadOnlyList<FailureRecord>> ReadAsync(IFileStore dataset, string path, CancellationToken cancellationToken)
    {
        await using var stream = await dataset.OpenReadAsync(path, cancellationToken);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
        var fields = reader.Schema.GetDataFields();
        var result = new List<FailureRecord>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            var rowGroup = reader.OpenRowGroupReader(g);
            var columns = new string?[fields.Length][];
            for (var c = 0; c < fields.Length; c++)
            {
                columns[c] = new string?[rowGroup.RowCount];
                await rowGroup.ReadAsync(fields[c], columns[c].AsMemory(), cancellationToken: cancellationToken);
            }

            for (var i = 0; i < rowGroup.RowCount; i++)
            {
                result.Add(new FailureRecord(columns[0][i]!, columns[1][i]!, columns[2][i]!, columns[3][i], columns[4][i]));
            }
        }

        return result;
    }

    internal static async Task WriteAsync(
        Stream stream, List<FailureRecord> failures, ShardMetadata metadata, int partition, CancellationToken cancellationToken)
    {
        var sorted = failures
            .OrderBy(f => f.Key, StringComparer.Ordinal)
            .ThenBy(f => f.Source, StringComparer.Ordinal)
            .ThenBy(f => f.Reason, StringComparer.Ordinal)
            .ToList();
        var fields = Schema.GetDataFields();
        await using var writer = await ParquetWriter.CreateAsync(Schema, stream, ShardSchema.WriterOptions(), cancellationToken: cancellationToken);
        writer.CustomMetadata = ShardSchema.FileMetadata(metadata, partition);
        using var rowGroup = writer.CreateRowGroup();
        await rowGroup.WriteAsync(fields[0], sorted.Select(f => f.Key).ToArray());
        await rowGroup.WriteAsync(fields[1], sorted.Select(f => f.Source).ToArray());
        await rowGroup.WriteAsync(fields[2], sorted.Select(f => f.Reason).ToArray());
        await rowGroup.WriteAsync(fields[3], sorted.Select(f => f.ExceptionType).ToArray());
        await rowGroup.WriteAsync(fields[4], sorted.Select(f => f.BytesSha256).ToArray());
        rowGroup.CompleteValidate();
    }
}
