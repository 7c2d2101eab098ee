using System.Text.Json;
using System.Text.Json.Serialization;
using WinTok.Data.Corpus;

namespace WinTok.Data.Shards;

/// <summary>
/// One committed shard as the writer reports it and the manifest lists it.
/// </summary>
/// <param name="Partition">Partition index; the shard is <c>shards/part-{Partition:D6}.parquet</c>.</param>
/// <param name="Path">Shard path relative to the dataset root.</param>
/// <param name="Rows">Row count.</param>
/// <param name="Bytes">File size.</param>
/// <param name="Sha256">SHA-256 of the file, lower-case hex.</param>
/// <param name="RowGroups">Rows per row group, in file order; readers split work by row group without opening files.</param>
/// <param name="ErrorsPath">Failure records of this partition, relative to the dataset root.</param>
/// <param name="Failures">Failure record count.</param>
/// <param name="ErrorsBytes">Size of the failures file.</param>
/// <param name="ErrorsSha256">SHA-256 of the failures file.</param>
public sealed record ShardInfo(
    int Partition,
    string Path,
    long Rows,
    long Bytes,
    string Sha256,
    IReadOnlyList<int> RowGroups,
    string ErrorsPath,
    long Failures,
    long ErrorsBytes,
    string ErrorsSha256)
{
    /// <summary>Whether this commit created the shard or found the identical one of an earlier attempt; not in the manifest.</summary>
    [JsonIgnore]
    public CommitOutcome Outcome { get; init; }

}

/// <summary>
/// A committed shard and the metadata it was written with: a tokenize partition's commit record in the results
/// database, from which the manifest is written without reading shards back or loading the model.
/// </summary>
public sealed record CommittedShard(ShardInfo Shard, ShardMetadata Metadata)
{
    public string ToJson() => JsonSerializer.Serialize(this, ShardJsonContext.Default.CommittedShard);

    public static CommittedShard FromJson(string json) =>
        JsonSerializer.Deserialize(json, ShardJsonContext.Default.CommittedShard) ?? throw new JsonException("The shard record is empty");
}

/// <summary>Sums over all shards of a manifest.</summary>
public sealed record ManifestTotals(int Shards, long Rows, long Bytes, long Failures);

/// <summary>
/// <c>_manifest.json</c>: the commit point of a token dataset. Written last, create-only; readers use only the shards
/// it lists. Property names are snake_case for the Python reader. <see cref="ModelKind"/> is null in manifests written
/// before it was recorded (2026-11-30); their <see cref="ModelConfig"/> is WinTok's unless its <c>model</c> is a ViTamin name.
/// </summary>
public sealed record DatasetManifest(
    int SchemaVersion,
    string JobId,
    DateTimeOffset CreatedUtc,
    string CheckpointId,
    string CheckpointSha256,
    string? ModelKind,
    string ModelConfig,
    string Preprocessing,
    TokenLayout Layout,
    IReadOnlyList<ShardInfo> Shards,
    ManifestTotals Totals)
{
    /// <summary>File name of the manifest at the dataset root.</summary>
    public const string FileName = "_manifest.json";

    /// <summary>Reads and parses the manifest of <paramref name="dataset"/>.</summary>
    public static async Task<DatasetManifest> ReadAsync(IFileStore dataset, CancellationToken cancellationToken)
    {
        await using var stream = await dataset.OpenReadAsync(FileName, cancellationToken);
        return await JsonSerializer.DeserializeAsync(stream, ShardJsonContext.Default.DatasetManifest, cancellationToken)
            ?? throw new JsonException($"{dataset.Describe(FileName)} is null");
    }

    internal static DatasetManifest Create(ShardMetadata metadata, IEnumerable<ShardInfo> shards)
    {
        var ordered = shards.OrderBy(s => s.Partition).ToList();
        var duplicate = ordered.GroupBy(s => s.Partition).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"Partition {duplicate.Key} is listed {duplicate.Count()} times", nameof(shards));
        }

        var totals = new ManifestTotals(ordered.Count, ordered.Sum(s => s.Rows), ordered.Sum(s => s.Bytes), ordered.Sum(s => s.Failures));
        return new DatasetManifest(ShardSchema.SchemaVersion, metadata.JobId, metadata.CreatedUtc, metadata.CheckpointId,
            metadata.CheckpointSha256, metadata.ModelKind, metadata.ModelConfigJson, metadata.Preprocessing, metadata.Layout, ordered, totals);
    }

    /// <summary>Same shards, hashes and counts (the parts that decide what readers see).</summary>
    internal bool ListsSameShards(DatasetManifest other) =>
        Shards.Count == other.Shards.Count
        && Shards.Zip(other.Shards).All(p => p.First.Path == p.Second.Path && p.First.Sha256 == p.Second.Sha256 && p.First.Rows == p.Second.Rows);
}

/// <summary>Writes <c>_manifest.json</c> from the shards a job committed: the last step of a job.</summary>
public static class ManifestWriter
{
    /// <summary>
    /// Commits the manifest listing <paramref name="shards"/> (any order; listed by partition). Create-only: if a
    /// manifest listing the same shards is already there (a retried finalizer) it is returned; a different one throws
    /// <see cref="CommitConflictException"/> — a new dataset version belongs under a new prefix.
    /// </summary>
    public static async Task<DatasetManifest> WriteAsync(
        IFileStore dataset, ShardMetadata metadata, IEnumerable<ShardInfo> shards, CancellationToken cancellationToken)
    {
        var manifest = DatasetManifest.Create(metadata, shards);
        if (await dataset.GetInfoAsync(DatasetManifest.FileName, cancellationToken) is not null)
        {
            var existing = await DatasetManifest.ReadAsync(dataset, cancellationToken);
            return existing.ListsSameShards(manifest)
                ? existing
                : throw new CommitConflictException(DatasetManifest.FileName, "(existing manifest)", "(a manifest listing other shards)");
        }

        await dataset.CommitAsync(DatasetManifest.FileName,
            (stream, ct) => JsonSerializer.SerializeAsync(stream, manifest, ShardJsonContext.Default.DatasetManifest, ct),
            cancellationToken);
        return manifest;
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true, UseStringEnumConverter = true)]
[JsonSerializable(typeof(DatasetManifest))]
[JsonSerializable(typeof(CommittedShard))]
[JsonSerializable(typeof(TokenLayout))]
[JsonSerializable(typeof(ReaderPosition))]
internal sealed partial class ShardJsonContext : JsonSerializerContext;
