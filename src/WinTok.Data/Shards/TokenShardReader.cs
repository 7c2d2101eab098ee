using System.Runtime.CompilerServices;
using System.Text.Json;
using Parquet;
using Parquet.Schema;
using WinTok.Data.Corpus;

namespace WinTok.Data.Shards;

/// <summary>Which columns to read; <c>row_id</c> and <c>key</c> are always read. Unread fields are left empty.</summary>
[Flags]
public enum ShardColumns
{
    /// <summary>Only row_id and key.</summary>
    None = 0,

    /// <summary>pixel_tokens.</summary>
    Pixel = 1,

    /// <summary>semantic_tokens.</summary>
    Semantic = 2,

    /// <summary>semantic_pooled.</summary>
    Pooled = 4,

    /// <summary>source_uri, source_sha256, orig_width, orig_height, label, caption.</summary>
    Info = 8,

    /// <summary>Everything.</summary>
    All = Pixel | Semantic | Pooled | Info,
}

/// <summary>Reads one token shard, row group by row group, checking that token columns have the layout's shapes.</summary>
public sealed class TokenShardReader : IAsyncDisposable
{
    private readonly Stream stream;
    private readonly ParquetReader reader;
    private readonly DataField[] fields;

    private TokenShardReader(Stream stream, ParquetReader reader, TokenLayout layout)
    {
        this.stream = stream;
        this.reader = reader;
        Layout = layout;
        fields = reader.Schema.GetDataFields();
    }

    /// <summary>The shard's key-value metadata (<c>wintok.*</c>).</summary>
    public IReadOnlyDictionary<string, string> Metadata => reader.CustomMetadata;

    /// <summary>Token column shapes, from the metadata.</summary>
    public TokenLayout Layout { get; }

    /// <summary>Rows per row group, in file order.</summary>
    public IReadOnlyList<long> RowGroupRows => [.. Enumerable.Range(0, reader.RowGroupCount).Select(g => reader.OpenRowGroupReader(g).RowCount)];

    /// <summary>Opens <paramref name="path"/> of <paramref name="dataset"/>; the stream fetches on demand.</summary>
    public static async Task<TokenShardReader> OpenAsync(IFileStore dataset, string path, CancellationToken cancellationToken) =>
        await OpenAsync(await dataset.OpenReadAsync(path, cancellationToken), cancellationToken);

    /// <summary>Opens a shard from a readable, seekable stream, which the reader then owns.</summary>
    public static async Task<TokenShardReader> OpenAsync(Stream stream, CancellationToken cancellationToken)
    {
        try
        {
            var reader = await ParquetReader.CreateAsync(stream, leaveStreamOpen: false, cancellationToken: cancellationToken);
            var layoutJson = reader.CustomMetadata.GetValueOrDefault(ShardSchema.MetaLayout)
                ?? throw new InvalidDataException($"Shard has no {ShardSchema.MetaLayout} metadata; not a WinTok token shard");
            var layout = JsonSerializer.Deserialize(layoutJson, ShardJsonContext.Default.TokenLayout)
                ?? throw new InvalidDataException($"{ShardSchema.MetaLayout} is null");
            return new TokenShardReader(stream, reader, layout);
        }
        catch
        {
            await stream.DisposeAsync();
            throw;
        }
    }

    /// <summary>All rows, in file order (key order).</summary>
    public async IAsyncEnumerable<TokenRow> ReadAllAsync(ShardColumns columns, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            foreach (var row in await ReadRowGroupAsync(g, columns, cancellationToken))
            {
                yield return row;
            }
        }
    }

    /// <summary>
    /// Reads one row group. Throws <see cref="InvalidDataException"/> when a token column does not hold exactly the
    /// layout's number of values per row.
    /// </summary>
    public async Task<IReadOnlyList<TokenRow>> ReadRowGroupAsync(int index, ShardColumns columns, CancellationToken cancellationToken)
    {
        var rowGroup = reader.OpenRowGroupReader(index);
        var rows = checked((int)rowGroup.RowCount);
        var rowIds = new long[rows];
        await rowGroup.ReadAsync<long>(Field(ShardSchema.RowId), rowIds, cancellationToken: cancellationToken);
        var keys = await ReadStringsAsync(rowGroup, ShardSchema.Key, rows, cancellationToken);

        var info = columns.HasFlag(ShardColumns.Info);
        var sources = info ? await ReadStringsAsync(rowGroup, ShardSchema.SourceUri, rows, cancellationToken) : null;
        var captions = info ? await ReadStringsAsync(rowGroup, ShardSchema.Caption, rows, cancellationToken) : null;
        var hashes = info ? new byte[]?[rows] : null;
        var widths = info ? new int[rows] : null;
        var heights = info ? new int[rows] : null;
        var labels = info ? new int?[rows] : null;
        if (info)
        {
            await rowGroup.ReadAsync(Field(ShardSchema.SourceSha256), hashes.AsMemory(), cancellationToken: cancellationToken);
            await rowGroup.ReadAsync<int>(Field(ShardSchema.OrigWidth), widths, cancellationToken: cancellationToken);
            await rowGroup.ReadAsync<int>(Field(ShardSchema.OrigHeight), heights, cancellationToken: cancellationToken);
            await rowGroup.ReadAsync<int>(Field(ShardSchema.Label), labels.AsMemory(), cancellationToken: cancellationToken);
        }

        var pixel = columns.HasFlag(ShardColumns.Pixel)
            ? await ReadFixedListAsync<ushort>(rowGroup, ShardSchema.PixelTokens, rows, Layout.PixelLength, cancellationToken)
            : null;
        var semantic = columns.HasFlag(ShardColumns.Semantic) && Layout.SemanticTokens > 0
            ? await ReadFixedListAsync<short>(rowGroup, ShardSchema.SemanticTokens, rows, Layout.SemanticLength, cancellationToken)
            : null;
        var pooled = columns.HasFlag(ShardColumns.Pooled) && Layout.HasPooled
            ? await ReadFixedListAsync<short>(rowGroup, ShardSchema.SemanticPooled, rows, Layout.SemanticDim, cancellationToken)
            : null;

        var result = new TokenRow[rows];
        for (var i = 0; i < rows; i++)
        {
            result[i] = new TokenRow(
                keys[i] ?? "",
                sources?[i] ?? "",
                hashes?[i] ?? [],
                widths?[i] ?? 0,
                heights?[i] ?? 0,
                labels?[i],
                captions?[i],
                pixel is null ? [] : pixel.AsSpan(i * Layout.PixelLength, Layout.PixelLength).ToArray(),
                semantic?.AsSpan(i * Layout.SemanticLength, Layout.SemanticLength).ToArray(),
                pooled?.AsSpan(i * Layout.SemanticDim, Layout.SemanticDim).ToArray())
            {
                RowId = rowIds[i],
            };
        }

        return result;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await reader.DisposeAsync();
        await stream.DisposeAsync();
    }

    /// <summary>
    /// Reads a list column that must hold exactly <paramref name="length"/> values in every row, flattened row-major.
    /// </summary>
    internal async Task<T[]> ReadFixedListAsync<T>(ParquetRowGroupReader rowGroup, string name, int rows, int length, CancellationToken cancellationToken)
        where T : struct
    {
        var field = Field(name);
        var count = rowGroup.GetMetadata(field)?.MetaData?.NumValues
            ?? throw new InvalidDataException($"Column {name} has no metadata");
        if (count != (long)rows * length)
        {
            throw new InvalidDataException($"Column {name} holds {count} values for {rows} rows, layout expects {length} per row ({(long)rows * length})");
        }

        var values = new T[count];
        var definition = new int[count];
        var repetition = new int[count];
        await rowGroup.ReadRawAsync<T>(field, values, definition, repetition, cancellationToken);
        for (var i = 0; i < values.Length; i++)
        {
            // Repetition level 0 starts a new row; with fixed-length rows it must fall exactly on multiples of length.
            if ((repetition[i] == 0) != (i % length == 0) || definition[i] != field.MaxDefinitionLevel)
            {
                throw new InvalidDataException($"Column {name}: row {i / length} does not hold exactly {length} non-null values");
            }
        }

        return values;
    }

    private static async Task<string?[]> ReadStringsAsync(ParquetRowGroupReader rowGroup, DataField field, int rows, CancellationToken cancellationToken)
    {
        var values = new string?[rows];
        await rowGroup.ReadAsync(field, values.AsMemory(), cancellationToken: cancellationToken);
        return values;
    }

    private Task<string?[]> ReadStringsAsync(ParquetRowGroupReader rowGroup, string name, int rows, CancellationToken cancellationToken) =>
        ReadStringsAsync(rowGroup, Field(name), rows, cancellationToken);

    private DataField Field(string name) =>
        fields.FirstOrDefault(f => f.Path.ToList()[0] == name)
        ?? throw new InvalidDataException($"Shard has no column {name}");
}
