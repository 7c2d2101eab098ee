using System.Text.Json;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;

namespace WinTok.Worker.Tokenize;

/// <summary>
/// Receipts and the manifest. A partition's receipt (its <see cref="ShardInfo"/>) is committed after its shard, so
/// whichever worker finishes the job can list every shard without reading them; the manifest is written last and is
/// the dataset's commit point (docs/token-shards.md).
/// </summary>
internal static class DatasetFinalizer
{
    private const string ReceiptFolder = "receipts";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string ReceiptPath(int partition) => $"{ReceiptFolder}/part-{partition:D6}.json";

    /// <summary>Create-only and deterministic: a retried partition finds its identical receipt already there.</summary>
    public static Task<CommittedFile> WriteReceiptAsync(IFileStore dataset, ShardInfo shard, CancellationToken cancellationToken) =>
        dataset.CommitAsync(ReceiptPath(shard.Partition),
            (stream, token) => JsonSerializer.SerializeAsync(stream, shard with { Outcome = default }, Json, token), cancellationToken);

    /// <summary>Writes the manifest from every receipt; the caller has made sure all partitions are committed.</summary>
    public static async Task<DatasetManifest> WriteManifestAsync(IFileStore dataset, ShardMetadata metadata, int partitions,
        CancellationToken cancellationToken)
    {
        var shards = new List<ShardInfo>(partitions);
        for (var partition = 0; partition < partitions; partition++)
        {
            await using var stream = await dataset.OpenReadAsync(ReceiptPath(partition), cancellationToken);
            shards.Add(await JsonSerializer.DeserializeAsync<ShardInfo>(stream, Json, cancellationToken)
                ?? throw new InvalidDataException($"{dataset.Describe(ReceiptPath(partition))} is empty"));
        }
        return await ManifestWriter.WriteAsync(dataset, metadata, shards, cancellationToken);
    }
}
