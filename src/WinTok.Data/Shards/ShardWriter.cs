using Parquet;
using Parquet.Schema;
using WinTok.Data.Corpus;

namespace WinTok.Data.Shards;

/// <summary>Settings of <see cref="ShardWriter"/>.</summary>
public sealed record ShardWriterOptions
{
    /// <summary>Rows per Parquet row group, the unit of reader splits and shuffles.</summary>
    /// <value>4096: product notes §4.3 suggest 2k–8k.</value>
    public int RowGroupSize { get; init; } = 4096;
}

/// <summary>
/// Collects the rows and failures of one partition as the pipeline produces them, in any order and from any thread,
/// then writes <c>shards/part-{partition:D6}.parquet</c> and <c>_errors/part-{partition:D6}.parquet</c> in one go.
/// Rows are sorted by key, so the output depends only on the set of rows, not on GPU batch order; a retried partition
/// writes identical bytes, and its create-only commit reports <see cref="CommitOutcome.AlreadyCommitted"/>.
/// </summary>
/// <remarks>
/// Rows are held in memory until <see cref="CommitAsync"/>: about 2 KB per row for 4 × 256 pixel tokens, plus
/// 2 · N · D bytes with semantic tokens (73 KB for N = 32, D = 1152), so partitions with semantic tokens should be
/// planned smaller.
/// </remarks>
public sealed class ShardWriter
{
    private readonly IFileStore dataset;
    private readonly int partition;
    private readonly ShardMetadata metadata;
    private readonly ShardWriterOptions options;
    private readonly Lock gate = new();
    private readonly List<TokenRow> rows = [];
    private readonly List<FailureRecord> failures = [];
    private bool committed;

    /// <summary>Creates a writer for <paramref name="partition"/> of the dataset rooted at <paramref name="dataset"/>.</summary>
    public ShardWriter(IFileStore dataset, int partition, ShardMetadata metadata, ShardWriterOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        metadata.Layout.Validate();
        this.dataset = dataset;
        this.partition = partition;
        this.metadata = metadata;
        this.options = options ?? new ShardWriterOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(this.options.RowGroupSize, 1);
    }

    /// <summary>Rows added so far.</summary>
    public int RowCount
    {
        get
        {
            lock (gate)
            {
                return rows.Count;
            }
        }
    }

    /// <summary>
    /// Every failure record of the shard once it is committed (inputs rejected while reading or decoding, and duplicate
    /// keys found at the commit), exactly as its errors file holds them; empty before.
    /// </summary>
    public IReadOnlyList<FailureRecord> Failures { get; private set; } = [];

    /// <summary>Failures added so far.</summary>
    public int FailureCount
    {
        get
        {
            lock (gate)
            {
                return failures.Count;
            }
        }
    }

    /// <summary>Adds one tokenized image. Throws <see cref="ArgumentException"/> when its arrays do not match the layout.</summary>
    public void Add(TokenRow row)
    {
        var layout = metadata.Layout;
        Check(row.PixelTokens.Length == layout.PixelLength, $"Row {row.Key} has {row.PixelTokens.Length} pixel tokens, layout expects {layout.PixelLength}");
        Check(row.SourceSha256.Length == 32, $"Row {row.Key} has a {row.SourceSha256.Length}-byte source_sha256, expected 32");
        Check((row.SemanticTokens?.Length ?? 0) == layout.SemanticLength,
            $"Row {row.Key} has {row.SemanticTokens?.Length ?? 0} semantic values, layout expects {layout.SemanticLength}");
        Check((row.SemanticPooled?.Length ?? 0) == (layout.HasPooled ? layout.SemanticDim : 0),
            $"Row {row.Key} has {row.SemanticPooled?.Length ?? 0} pooled values, layout expects {(layout.HasPooled ? layout.SemanticDim : 0)}");
        foreach (var id in row.PixelTokens)
        {
            Check(id < layout.CodebookSize, $"Row {row.Key} has pixel token {id}, codebook size is {layout.CodebookSize}");
        }

        lock (gate)
        {
            ThrowIfCommitted();
            rows.Add(row);
        }
    }

    /// <summary>Adds the record of an input that produced no row: unreadable, undecodable, rejected.</summary>
    public void AddFailure(FailureRecord failure)
    {
        lock (gate)
        {
            ThrowIfCommitted();
            failures.Add(failure);
        }
    }

    /// <summary>
    /// Writes and commits the failures file, then the shard (so a visible shard implies its failures are there too),
    /// and returns what the manifest needs. A key added twice keeps the row with the smaller source URI; the others
    /// become failures. The writer cannot be used afterwards.
    /// </summary>
    public async Task<ShardInfo> CommitAsync(CancellationToken cancellationToken)
    {
        List<TokenRow> sorted;
        List<FailureRecord> allFailures;
        lock (gate)
        {
            ThrowIfCommitted();
            committed = true;
            sorted = [.. rows.OrderBy(r => r.Key, StringComparer.Ordinal).ThenBy(r => r.SourceUri, StringComparer.Ordinal)];
            allFailures = [.. failures];
        }

        var unique = new List<TokenRow>(sorted.Count);
        foreach (var row in sorted)
        {
            if (unique.Count > 0 && unique[^1].Key == row.Key)
            {
                allFailures.Add(new FailureRecord(row.Key, row.SourceUri, $"duplicate key; the row from {unique[^1].SourceUri} was kept"));
                continue;
            }

            // Row ids follow key order within the partition: stable for a committed shard, and disjoint across
            // partitions as long as a partition holds fewer than 2^32 rows.
            unique.Add(row with { RowId = ((long)partition << 32) + unique.Count });
        }

        Failures = allFailures;
        var errors = await dataset.CommitAsync(ShardSchema.ErrorsPath(partition),
            (stream, ct) => FailureFile.WriteAsync(stream, allFailures, metadata, partition, ct), cancellationToken);

        var rowGroups = unique.Chunk(options.RowGroupSize).Select(g => g.Length).ToList();
        var shard = await dataset.CommitAsync(ShardSchema.ShardPath(partition),
            (stream, ct) => WriteShardAsync(stream, unique, ct), cancellationToken);

        return new ShardInfo(partition, shard.Path, unique.Count, shard.Bytes, shard.Sha256, rowGroups,
            errors.Path, allFailures.Count, errors.Bytes, errors.Sha256) { Outcome = shard.Outcome };
    }

    private async Task WriteShardAsync(Stream stream, List<TokenRow> all, CancellationToken cancellationToken)
    {
        var layout = metadata.Layout;
        var schema = ShardSchema.Build(layout);
        var fields = schema.GetDataFields();
        await using var writer = await ParquetWriter.CreateAsync(schema, stream, ShardSchema.WriterOptions(), cancellationToken: cancellationToken);
        writer.CustomMetadata = ShardSchema.FileMetadata(metadata, partition);
        foreach (var group in all.Chunk(options.RowGroupSize))
        {
            using var rowGroup = writer.CreateRowGroup();
            var column = 0;
            await rowGroup.WriteAsync<long>(fields[column++], group.Select(r => r.RowId).ToArray(), cancellationToken: cancellationToken);
            await rowGroup.WriteAsync(fields[column++], group.Select(r => r.Key).ToArray());
            await rowGroup.WriteAsync(fields[column++], group.Select(r => r.SourceUri).ToArray());
            await rowGroup.WriteAsync(fields[column++], group.Select(r => r.SourceSha256).ToArray());
            await rowGroup.WriteAsync<int>(fields[column++], group.Select(r => r.OrigWidth).ToArray(), cancellationToken: cancellationToken);
            await rowGroup.WriteAsync<int>(fields[column++], group.Select(r => r.OrigHeight).ToArray(), cancellationToken: cancellationToken);
            await rowGroup.WriteAsync<int>(fields[column++], group.Select(r => r.Label).ToArray().AsMemory(), cancellationToken: cancellationToken);
            await rowGroup.WriteAsync(fields[column++], group.Select(r => r.Caption).ToArray());
            await WriteListAsync(rowGroup, fields[column++], group, r => r.PixelTokens, layout.PixelLength, cancellationToken);
            if (layout.SemanticTokens > 0)
            {
                await WriteListAsync(rowGroup, fields[column++], group, r => r.SemanticTokens!, layout.SemanticLength, cancellationToken);
            }

            if (layout.HasPooled)
            {
                await WriteListAsync(rowGroup, fields[column++], group, r => r.SemanticPooled!, layout.SemanticDim, cancellationToken);
            }

            rowGroup.CompleteValidate();
        }
    }

    /// <summary>
    /// Writes a non-null list column of fixed length per row as Parquet's flat values plus levels: repetition 0 starts
    /// a row, 1 continues it; every value is defined (level 2: list present, element present).
    /// </summary>
    private static async Task WriteListAsync<T>(
        ParquetRowGroupWriter rowGroup, DataField field, TokenRow[] group, Func<TokenRow, T[]> values, int length, CancellationToken cancellationToken)
        where T : struct
    {
        var flat = new T[group.Length * length];
        for (var i = 0; i < group.Length; i++)
        {
            values(group[i]).CopyTo(flat, i * length);
        }

        var definition = new int[flat.Length];
        Array.Fill(definition, field.MaxDefinitionLevel);
        var repetition = new int[flat.Length];
        for (var i = 0; i < flat.Length; i++)
        {
            repetition[i] = i % length == 0 ? 0 : 1;
        }

        await rowGroup.WriteAllPartsAsync<T>(field, flat, definition, repetition, cancellationToken);
    }

    private void ThrowIfCommitted()
    {
        if (committed)
        {
            throw new InvalidOperationException($"Shard {partition} is already committed");
        }
    }

    private static void Check(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message, "row");
        }
    }
}
