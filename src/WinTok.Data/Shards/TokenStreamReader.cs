using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using WinTok.Data.Corpus;

namespace WinTok.Data.Shards;

/// <summary>Settings of <see cref="TokenStreamReader"/>.</summary>
public sealed record TokenStreamOptions
{
    /// <summary>This process's rank among <see cref="WorldSize"/> (torch.distributed rank).</summary>
    public int Rank { get; init; }

    /// <summary>Number of ranks.</summary>
    /// <value>1.</value>
    public int WorldSize { get; init; } = 1;

    /// <summary>This loader worker's index among <see cref="NumWorkers"/> within the rank.</summary>
    public int Worker { get; init; }

    /// <summary>Loader workers per rank.</summary>
    /// <value>1.</value>
    public int NumWorkers { get; init; } = 1;

    /// <summary>Whether to shuffle row groups and rows (deterministically, from <see cref="Seed"/> and the epoch).</summary>
    public bool Shuffle { get; init; }

    /// <summary>Shuffle seed; the same seed, epoch and split give the same order.</summary>
    public int Seed { get; init; }

    /// <summary>
    /// Shuffle buffer size in row groups: this many consecutive row groups of a consumer are loaded and their rows
    /// permuted together. Memory is about this many row groups.
    /// </summary>
    /// <value>4.</value>
    public int ShuffleWindowRowGroups { get; init; } = 4;

    /// <summary>Hash each shard in full before its first use and stop on a mismatch with the manifest.</summary>
    public bool VerifyHashes { get; init; }

    /// <summary>Columns to read.</summary>
    /// <value><see cref="ShardColumns.All"/>.</value>
    public ShardColumns Columns { get; init; } = ShardColumns.All;
}

/// <summary>
/// Where a consumer is in an epoch: resuming from it yields exactly the rows not yet yielded. <see cref="Unit"/> is
/// the index, in this consumer's row-group list for the epoch, of the first row group of the current shuffle window;
/// <see cref="RowOffset"/> counts rows already yielded from that window. Valid only with the same manifest, options
/// and split.
/// </summary>
public sealed record ReaderPosition(int Epoch, int Unit, int RowOffset)
{
    /// <summary>Compact JSON, to save with a training checkpoint.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ShardJsonContext.Default.ReaderPosition);

    /// <summary>Parses <see cref="ToJson"/>.</summary>
    public static ReaderPosition FromJson(string json) =>
        JsonSerializer.Deserialize(json, ShardJsonContext.Default.ReaderPosition) ?? throw new JsonException("Position JSON is null");
}

/// <summary>A row and the position to save once the caller has consumed it.</summary>
public readonly record struct TokenStreamItem(TokenRow Row, ReaderPosition Next);

/// <summary>One row group of one shard: the unit of splitting and shuffling.</summary>
public readonly record struct RowGroupUnit(int Shard, int RowGroup, int Rows);

/// <summary>
/// Streams the rows of a token dataset for training. Only shards listed in the manifest are read.
/// <para>
/// Split: the manifest's row groups, in manifest order (shuffled per epoch when <see cref="TokenStreamOptions.Shuffle"/>),
/// are dealt round-robin to the <c>WorldSize · NumWorkers</c> consumers; consumer <c>Rank · NumWorkers + Worker</c>
/// takes every unit whose position modulo that count equals its own number. The split is disjoint and complete;
/// consumers differ by at most one row group.
/// </para>
/// <para>
/// Shuffle: consecutive windows of <see cref="TokenStreamOptions.ShuffleWindowRowGroups"/> units are loaded and their
/// rows permuted with a generator seeded by (seed, epoch, window), so a window can be rebuilt exactly on resume.
/// </para>
/// </summary>
public sealed class TokenStreamReader
{
    private readonly IFileStore dataset;
    private readonly TokenStreamOptions options;
    private readonly HashSet<int> verified = [];

    /// <summary>Creates a reader over a dataset whose manifest is already parsed.</summary>
    public TokenStreamReader(IFileStore dataset, DatasetManifest manifest, TokenStreamOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.WorldSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.NumWorkers, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(options.Rank, options.WorldSize);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Worker);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(options.Worker, options.NumWorkers);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ShuffleWindowRowGroups, 1);
        this.dataset = dataset;
        this.options = options;
        Manifest = manifest;
    }

    /// <summary>The manifest being read.</summary>
    public DatasetManifest Manifest { get; }

    /// <summary>Reads the manifest of <paramref name="dataset"/> and creates a reader.</summary>
    public static async Task<TokenStreamReader> OpenAsync(IFileStore dataset, TokenStreamOptions options, CancellationToken cancellationToken) =>
        new(dataset, await DatasetManifest.ReadAsync(dataset, cancellationToken), options);

    /// <summary>This consumer's row groups for <paramref name="epoch"/>, in reading order.</summary>
    public IReadOnlyList<RowGroupUnit> UnitsFor(int epoch)
    {
        var all = new List<RowGroupUnit>();
        for (var s = 0; s < Manifest.Shards.Count; s++)
        {
            for (var g = 0; g < Manifest.Shards[s].RowGroups.Count; g++)
            {
                all.Add(new RowGroupUnit(s, g, Manifest.Shards[s].RowGroups[g]));
            }
        }

        if (options.Shuffle)
        {
            Permute(all, new Random(Mix(options.Seed, epoch, -1)));
        }

        var consumers = options.WorldSize * options.NumWorkers;
        var me = options.Rank * options.NumWorkers + options.Worker;
        return [.. all.Where((_, i) => i % consumers == me)];
    }

    /// <summary>
    /// Yields this consumer's rows of <paramref name="epoch"/>, starting at <paramref name="resumeFrom"/> when given
    /// (which must be a position of the same epoch returned by this reader's configuration).
    /// </summary>
    public async IAsyncEnumerable<TokenStreamItem> ReadEpochAsync(
        int epoch, ReaderPosition? resumeFrom, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var window = options.Shuffle ? options.ShuffleWindowRowGroups : 1;
        var start = resumeFrom ?? new ReaderPosition(epoch, 0, 0);
        if (start.Epoch != epoch || start.Unit % window != 0 || start.Unit < 0 || start.RowOffset < 0)
        {
            throw new ArgumentException($"Position {start} does not belong to epoch {epoch} with a shuffle window of {window} row groups", nameof(resumeFrom));
        }

        var units = UnitsFor(epoch);
        for (var first = start.Unit; first < units.Count; first += window)
        {
            var rows = new List<TokenRow>();
            foreach (var unit in units.Skip(first).Take(window))
            {
                rows.AddRange(await ReadUnitAsync(unit, cancellationToken));
            }

            if (options.Shuffle)
            {
                Permute(rows, new Random(Mix(options.Seed, epoch, first)));
            }

            var skip = first == start.Unit ? start.RowOffset : 0;
            for (var i = skip; i < rows.Count; i++)
            {
                var next = i + 1 < rows.Count ? new ReaderPosition(epoch, first, i + 1) : new ReaderPosition(epoch, first + window, 0);
                yield return new TokenStreamItem(rows[i], next);
            }
        }
    }

    private async Task<IReadOnlyList<TokenRow>> ReadUnitAsync(RowGroupUnit unit, CancellationToken cancellationToken)
    {
        var shard = Manifest.Shards[unit.Shard];
        if (options.VerifyHashes && verified.Add(unit.Shard))
        {
            await using var content = await dataset.OpenReadAsync(shard.Path, cancellationToken);
            var actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(content, cancellationToken));
            if (actual != shard.Sha256)
            {
                verified.Remove(unit.Shard);
                throw new InvalidDataException($"{dataset.Describe(shard.Path)} has sha256 {actual}, the manifest lists {shard.Sha256}");
            }
        }

        await using var reader = await TokenShardReader.OpenAsync(dataset, shard.Path, cancellationToken);
        var rows = await reader.ReadRowGroupAsync(unit.RowGroup, options.Columns, cancellationToken);
        return rows.Count == unit.Rows
            ? rows
            : throw new InvalidDataException($"{shard.Path} row group {unit.RowGroup} has {rows.Count} rows, the manifest lists {unit.Rows}");
    }

    // Fisher-Yates with System.Random seeded by an int: its seeded algorithm is fixed for compatibility, so orders
    // are the same across runs, machines and .NET versions.
    private static void Permute<T>(List<T> items, Random random)
    {
        for (var i = items.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    // SplitMix64 finaliser over the three inputs; HashCode.Combine would differ per process.
    private static int Mix(int seed, int epoch, int window)
    {
        var z = ((ulong)(uint)seed << 32) ^ ((ulong)(uint)epoch * 0x9E3779B97F4A7C15UL) ^ ((ulong)(uint)window * 0xBF58476D1CE4E5B9UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & int.MaxValue);
    }
}
