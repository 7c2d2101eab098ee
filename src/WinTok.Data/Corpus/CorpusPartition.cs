using System.Text.Json;
using System.Text.Json.Serialization;

namespace WinTok.Data.Corpus;

/// <summary>How a corpus is laid out.</summary>
public enum CorpusKind
{
    /// <summary>A folder (or blob prefix) of images, recursively; no labels.</summary>
    Folder,

    /// <summary>torchvision ImageFolder: one subfolder per class; label = index of the class name in ordinal order.</summary>
    ImageFolder,

    /// <summary>WebDataset <c>.tar</c> shards: members grouped into samples by key.</summary>
    WebDataset,
}

/// <summary>
/// One unit of work: a small, self-contained description of which inputs to read, serialisable to JSON so a queue
/// message can carry it. A rerun of <see cref="CorpusPlanner.PlanAsync"/> on an unchanged corpus produces equal
/// partitions (same index, same files, same order).
/// </summary>
/// <param name="CorpusUri">The corpus root (<see cref="IFileStore.Location"/>); open it with <see cref="FileStores.Open"/>.</param>
/// <param name="Kind">Corpus layout.</param>
/// <param name="Index">Partition number, 0-based; names the output shard <c>shards/part-{Index:D6}.parquet</c>.</param>
/// <param name="Tar">WebDataset only: the tar's path relative to the corpus root.</param>
/// <param name="Files">Folder and ImageFolder only: the files' paths relative to the corpus root, in reading order.</param>
/// <param name="ClassNames">ImageFolder only: every class of the whole corpus in label order, so labels agree across partitions.</param>
public sealed record CorpusPartition(
    string CorpusUri,
    CorpusKind Kind,
    int Index,
    string? Tar = null,
    IReadOnlyList<string>? Files = null,
    IReadOnlyList<string>? ClassNames = null)
{
    /// <summary>The partition as compact JSON, e.g. for a queue message.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, CorpusJsonContext.Default.CorpusPartition);

    /// <summary>Parses JSON written by <see cref="ToJson"/>.</summary>
    public static CorpusPartition FromJson(string json) =>
        JsonSerializer.Deserialize(json, CorpusJsonContext.Default.CorpusPartition)
        ?? throw new JsonException("Partition JSON is null");

    /// <summary>Value equality including the lists (records compare lists by reference).</summary>
    public bool SameAs(CorpusPartition other) =>
        CorpusUri == other.CorpusUri && Kind == other.Kind && Index == other.Index && Tar == other.Tar
        && (Files ?? []).SequenceEqual(other.Files ?? [])
        && (ClassNames ?? []).SequenceEqual(other.ClassNames ?? []);
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CorpusPartition))]
[JsonSerializable(typeof(List<CorpusPartition>))]
internal sealed partial class CorpusJsonContext : JsonSerializerContext;
