using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using Parquet;
using Parquet.Schema;

namespace WinTok.Data.Shards;

/// <summary>Column names, file metadata keys and Parquet settings of the token shard format (docs/token-shards.md).</summary>
internal static class ShardSchema
{
    public const int SchemaVersion = 1;

    public const string RowId = "row_id";
    public const string Key = "key";
    public const string SourceUri = "source_uri";
    public const string SourceSha256 = "source_sha256";
    public const string OrigWidth = "orig_width";
    public const string OrigHeight = "orig_height";
    public const string Label = "label";
    public const string Caption = "caption";
    public const string PixelTokens = "pixel_tokens";
    public const string SemanticTokens = "semantic_tokens";
    public const string SemanticPooled = "semantic_pooled";

    public const string MetaSchemaVersion = "wintok.schema_version";
    public const string MetaJobId = "wintok.job_id";
    public const string MetaPartition = "wintok.partition";
    public const string MetaCreatedUtc = "wintok.created_utc";
    public const string MetaCheckpointId = "wintok.checkpoint_id";
    public const string MetaCheckpointSha256 = "wintok.checkpoint_sha256";
    public const string MetaModelKind = "wintok.model_kind";
    public const string MetaModelConfig = "wintok.model_config";
    public const string MetaPreprocessing = "wintok.preprocessing";
    public const string MetaLayout = "wintok.layout";
    public const string MetaNumCodebooks = "wintok.num_codebooks";
    public const string MetaCodebookSize = "wintok.codebook_size";
    public const string MetaPositions = "wintok.positions";
    public const string MetaGrid = "wintok.grid";
    public const string MetaPixelOrder = "wintok.pixel_tokens.order";
    public const string MetaSemanticDtype = "wintok.semantic.dtype";
    public const string MetaSemanticShape = "wintok.semantic_tokens.shape";
    public const string MetaPooledShape = "wintok.semantic_pooled.shape";

    // The manifest is indented for people; metadata values stay on one line for tools that print them.
    private static readonly JsonSerializerOptions CompactJson = new(ShardJsonContext.Default.Options) { WriteIndented = false };

    public static string ShardPath(int partition) => $"shards/part-{partition:D6}.parquet";

    /// <summary>
    /// The failure records go under <c>_errors/</c>: Hive, Spark and pyarrow datasets skip every path component that
    /// starts with <c>_</c> or <c>.</c>, so a reader pointed at the dataset root finds the token rows only, not the
    /// errors files (whose schema differs) nor <c>_manifest.json</c> (docs/token-shards.md §1).
    /// </summary>
    public static string ErrorsPath(int partition) => $"_errors/part-{partition:D6}.parquet";

    public static ParquetSchema Build(TokenLayout layout)
    {
        var fields = new List<Field>
        {
            new DataField<long>(RowId),
            new DataField<string>(Key, nullable: false),
            new DataField<string>(SourceUri, nullable: false),
            new DataField<byte[]>(SourceSha256, nullable: false),
            new DataField<int>(OrigWidth),
            new DataField<int>(OrigHeight),
            new DataField<int?>(Label),
            new DataField<string>(Caption, nullable: true),
            new ListField(PixelTokens, new DataField<ushort>(ListField.ElementName)),
        };
        if (layout.SemanticTokens > 0)
        {
            fields.Add(new ListField(SemanticTokens, new DataField<short>(ListField.ElementName)));
        }

        if (layout.HasPooled)
        {
            fields.Add(new ListField(SemanticPooled, new DataField<short>(ListField.ElementName)));
        }

        return new ParquetSchema(fields);
    }

    // ZSTD at its fastest level: near-uniform token ids barely compress, so spending CPU on them buys little
    // (product notes §4.3); keys and URIs compress well even so.
    public static ParquetOptions WriterOptions() => new()
    {
        CompressionMethod = CompressionMethod.Zstd,
        CompressionLevel = CompressionLevel.Fastest,
    };

    public static Dictionary<string, string> FileMetadata(ShardMetadata metadata, int partition)
    {
        var layout = metadata.Layout;
        var result = new Dictionary<string, string>
        {
            [MetaSchemaVersion] = SchemaVersion.ToString(CultureInfo.InvariantCulture),
            [MetaJobId] = metadata.JobId,
            [MetaPartition] = partition.ToString(CultureInfo.InvariantCulture),
            [MetaCreatedUtc] = metadata.CreatedUtc.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
            [MetaCheckpointId] = metadata.CheckpointId,
            [MetaCheckpointSha256] = metadata.CheckpointSha256,
            [MetaModelConfig] = metadata.ModelConfigJson,
            [MetaPreprocessing] = metadata.Preprocessing,
            [MetaLayout] = JsonSerializer.Serialize(layout, CompactJson.GetTypeInfo(typeof(TokenLayout))),
            [MetaNumCodebooks] = layout.NumCodebooks.ToString(CultureInfo.InvariantCulture),
            [MetaCodebookSize] = layout.CodebookSize.ToString(CultureInfo.InvariantCulture),
            [MetaPositions] = layout.Positions.ToString(CultureInfo.InvariantCulture),
            [MetaGrid] = layout.Grid,
            [MetaPixelOrder] = "codebook_major",
        };
        if (metadata.ModelKind is { } kind)
        {
            result[MetaModelKind] = kind;
        }

        if (layout.SemanticTokens > 0 || layout.HasPooled)
        {
            result[MetaSemanticDtype] = "bfloat16_bits_in_int16";
        }

        if (layout.SemanticTokens > 0)
        {
            result[MetaSemanticShape] = $"[{layout.SemanticTokens},{layout.SemanticDim}]";
        }

        if (layout.HasPooled)
        {
            result[MetaPooledShape] = $"[{layout.SemanticDim}]";
        }

        return result;
    }
}
