using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using WinTok.Data.Corpus;

namespace WinTok.Data.Training;

/// <summary>
/// Where a training run stands in its data: the data epoch, which of this rank's partitions of that epoch (in the
/// epoch's order) and how many items of it were read. A checkpoint stores the position of the next item, and a
/// resumed run starting there reads exactly the items an uninterrupted run would have read next.
/// </summary>
/// <param name="Epoch">Passes over the data so far (not the schedule's epochs, which count iterations).</param>
/// <param name="Partition">Ordinal of the partition among this rank's partitions of <paramref name="Epoch"/>.</param>
/// <param name="Index">Items of that partition already read, in its shuffled order.</param>
public sealed record TrainingDataPosition(long Epoch, int Partition, long Index)
{
    public static TrainingDataPosition Start { get; } = new(0, 0, 0);

    public string ToJson() => JsonSerializer.Serialize(this, TrainingDataJsonContext.Default.TrainingDataPosition);

    public static TrainingDataPosition FromJson(string json) =>
        JsonSerializer.Deserialize(json, TrainingDataJsonContext.Default.TrainingDataPosition) ?? throw new JsonException("The data position is null");

    public override string ToString() => $"epoch {Epoch}, partition {Partition}, item {Index}";
}

/// <summary>How a run reads its data: the seed of every order and crop, this process's share, and the tar shuffle.</summary>
/// <param name="Seed">The run's seed: partition orders, sample orders and crops all derive from it.</param>
/// <param name="Rank">This process's rank among <paramref name="WorldSize"/> data-parallel processes.</param>
/// <param name="WorldSize">How many processes share the data, each reading every WorldSize-th partition of an epoch.</param>
/// <param name="ShuffleBuffer">Samples a WebDataset tar is shuffled through (webdataset's sample shuffle); folder partitions are shuffled whole.</param>
public sealed record TrainingDataOptions(ulong Seed, int Rank = 0, int WorldSize = 1, int ShuffleBuffer = 1000)
{
    public IEnumerable<string> Problems()
    {
        if (WorldSize < 1) yield return $"the world size must be at least 1, got {WorldSize}";
        else if (Rank < 0 || Rank >= WorldSize) yield return $"the rank must be in [0, {WorldSize}), got {Rank}";
        if (ShuffleBuffer < 1) yield return $"the shuffle buffer must hold at least 1 sample, got {ShuffleBuffer}";
    }
}

/// <summary>One item of the training stream with where it stands and the seed of its random crop.</summary>
/// <param name="Item">The sample, or the failure record of an input that could not be read.</param>
/// <param name="Position">This item's position.</param>
/// <param name="Next">The position after it: where a run that has consumed this item resumes.</param>
/// <param name="CropSeed">The seed of this item's crop draws, a function of the run's seed and the position alone.</param>
public sealed record TrainingSample(CorpusItem Item, TrainingDataPosition Position, TrainingDataPosition Next, ulong CropSeed);

/// <summary>
/// The training data as an endless, deterministic, resumable stream over a corpus's partitions (folders, ImageFolder or
/// WebDataset tars, local or blob: whatever <see cref="CorpusReader"/> reads). Each data epoch shuffles the partitions
/// with the run's seed and gives this rank every <c>WorldSize</c>-th one; each partition is read in a seeded order
/// (a folder partition's file list shuffled whole, a tar through a seeded shuffle buffer, as webdataset's sample
/// shuffle does). Nothing depends on timing or threads, so the stream is a function of the seed and the partitions,
/// and reading from a <see cref="TrainingDataPosition"/> continues it exactly: a folder partition skips its first
/// items without reading them, a tar replays its shuffle up to the position.
/// </summary>
public sealed class TrainingSampleReader
{
    private const long OrderDomain = 1;
    private const long SampleOrderDomain = 2;
    private const long CropDomain = 3;

    private readonly IReadOnlyList<CorpusPartition> partitions;
    private readonly TrainingDataOptions options;
    private readonly Func<string, IFileStore> openStore;

    /// <param name="partitions">Every partition of the training data, in a fixed order (a partition's identity is its index here).</param>
    /// <param name="openStore">Opens a partition's corpus root (<see cref="CorpusPartition.CorpusUri"/>).</param>
    public TrainingSampleReader(IReadOnlyList<CorpusPartition> partitions, TrainingDataOptions options, Func<string, IFileStore> openStore)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(openStore);
        var problems = options.Problems().ToList();
        if (partitions.Count < options.WorldSize)
            problems.Add($"the training data has {partitions.Count} partitions, fewer than the {options.WorldSize} processes that share it");
        if (problems.Count > 0) throw new ArgumentException("Cannot read the training data: " + string.Join("; ", problems));
        (this.partitions, this.options, this.openStore) = (partitions, options, openStore);
    }

    /// <summary>This rank's partitions of data epoch <paramref name="epoch"/>, as indices into the partition list, in reading order.</summary>
    public IReadOnlyList<int> Order(long epoch)
    {
        var all = Enumerable.Range(0, partitions.Count).ToArray();
        new SampleRandom(SampleRandom.Derive(options.Seed, OrderDomain, epoch)).Shuffle(all);
        return all.Where((_, k) => k % options.WorldSize == options.Rank).ToList();
    }

    /// <summary>
    /// Reads from <paramref name="start"/> on, epoch after epoch, until the caller stops. Failure records of unreadable
    /// inputs are part of the stream (and of its positions); throws <see cref="InvalidDataException"/> when a whole
    /// epoch holds no item at all.
    /// </summary>
    public async IAsyncEnumerable<TrainingSample> ReadAsync(TrainingDataPosition start, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(start);
        for (var epoch = start.Epoch; ; epoch++)
        {
            var order = Order(epoch);
            var items = 0L;
            var first = epoch == start.Epoch ? start.Partition : 0;
            for (var ordinal = first; ordinal < order.Count; ordinal++)
            {
                var skip = epoch == start.Epoch && ordinal == start.Partition ? start.Index : 0;
                var index = skip;
                await foreach (var item in ReadPartitionAsync(epoch, order[ordinal], skip, cancellationToken))
                {
                    var position = new TrainingDataPosition(epoch, ordinal, index);
                    index++;
                    items++;
                    yield return new TrainingSample(item, position, position with { Index = index },
                        SampleRandom.Derive(options.Seed, CropDomain, epoch, order[ordinal], position.Index));
                }
            }
            var wholeEpoch = epoch != start.Epoch || (start.Partition == 0 && start.Index == 0);
            if (items == 0 && wholeEpoch)
                throw new InvalidDataException($"The training data yielded no item in data epoch {epoch} ({order.Count} partitions for rank {options.Rank})");
        }
    }

    /// <summary>One partition in its seeded order, without its first <paramref name="skip"/> items.</summary>
    private IAsyncEnumerable<CorpusItem> ReadPartitionAsync(long epoch, int id, long skip, CancellationToken cancellationToken)
    {
        var partition = partitions[id];
        var random = new SampleRandom(SampleRandom.Derive(options.Seed, SampleOrderDomain, epoch, id));
        var store = openStore(partition.CorpusUri);
        if (partition.Files is { } files)
        {
            // Every file yields exactly one item (its sample or its failure), so skipping needs no reading.
            var shuffled = files.ToArray();
            random.Shuffle(shuffled);
            var rest = shuffled.Skip((int)Math.Min(skip, shuffled.Length)).ToList();
            return CorpusReader.ReadAsync(partition with { Files = rest }, store, cancellationToken);
        }
        return SkipAsync(Shuffled(CorpusReader.ReadAsync(partition, store, cancellationToken), random, options.ShuffleBuffer, cancellationToken), skip, cancellationToken);
    }

    /// <summary>A bounded shuffle: fill the buffer, then emit a random element for each new one; drain it shuffled.</summary>
    internal static async IAsyncEnumerable<T> Shuffled<T>(IAsyncEnumerable<T> source, SampleRandom random, int size,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var buffer = new List<T>(Math.Min(size, 4096));
        await foreach (var item in source.WithCancellation(cancellationToken))
        {
            if (buffer.Count < size)
            {
                buffer.Add(item);
                continue;
            }
            var j = random.Integer(size);
            yield return buffer[j];
            buffer[j] = item;
        }
        random.Shuffle(buffer);
        foreach (var item in buffer) yield return item;
    }

    private static async IAsyncEnumerable<T> SkipAsync<T>(IAsyncEnumerable<T> source, long skip, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var seen = 0L;
        await foreach (var item in source.WithCancellation(cancellationToken))
            if (seen++ >= skip) yield return item;
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(TrainingDataPosition))]
internal sealed partial class TrainingDataJsonContext : JsonSerializerContext;
