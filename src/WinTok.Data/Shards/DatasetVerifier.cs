using System.Security.Cryptography;
using WinTok.Data.Corpus;

namespace WinTok.Data.Shards;

/// <summary>The outcome of <see cref="DatasetVerifier.VerifyAsync"/>: every problem found, not just the first.</summary>
/// <param name="Problems">One line per problem, naming the file.</param>
/// <param name="ShardsChecked">Shards listed in the manifest.</param>
/// <param name="RowsChecked">Rows read and checked.</param>
public sealed record DatasetVerification(IReadOnlyList<string> Problems, int ShardsChecked, long RowsChecked)
{
    /// <summary>No problems.</summary>
    public bool IsValid => Problems.Count == 0;
}

/// <summary>
/// Checks a token dataset against its manifest: the manifest parses and its totals add up; every listed shard and
/// failures file exists with the listed size and sha256; each shard's row count, row groups and metadata match the
/// manifest; token columns hold exactly the layout's values per row, pixel ids below the codebook size; keys are
/// sorted and unique. Reads every byte once.
/// </summary>
public static class DatasetVerifier
{
    /// <summary>Verifies the dataset rooted at <paramref name="dataset"/>.</summary>
    public static async Task<DatasetVerification> VerifyAsync(IFileStore dataset, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        DatasetManifest manifest;
        try
        {
            manifest = await DatasetManifest.ReadAsync(dataset, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A verifier reports whatever is wrong instead of stopping; nothing else can be checked without a manifest.
            problems.Add($"{dataset.Describe(DatasetManifest.FileName)}: cannot read manifest: {e.GetType().Name}: {e.Message}");
            return new DatasetVerification(problems, 0, 0);
        }

        CheckTotals(manifest, problems);
        long rows = 0;
        foreach (var shard in manifest.Shards)
        {
            var errorsExist = await CheckFileAsync(dataset, shard.ErrorsPath, shard.ErrorsBytes, shard.ErrorsSha256, problems, cancellationToken);
            if (await CheckFileAsync(dataset, shard.Path, shard.Bytes, shard.Sha256, problems, cancellationToken))
            {
                try
                {
                    rows += await CheckShardAsync(dataset, manifest, shard, problems, cancellationToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    problems.Add($"{shard.Path}: {e.GetType().Name}: {e.Message}");
                }
            }

            if (!errorsExist)
            {
                continue;
            }

            try
            {
                var failures = await FailureFile.ReadAsync(dataset, shard.ErrorsPath, cancellationToken);
                if (failures.Count != shard.Failures)
                {
                    problems.Add($"{shard.ErrorsPath}: has {failures.Count} failure records, manifest lists {shard.Failures}");
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                problems.Add($"{shard.ErrorsPath}: cannot read failure records: {e.GetType().Name}: {e.Message}");
            }
        }

        return new DatasetVerification(problems, manifest.Shards.Count, rows);
    }

    private static void CheckTotals(DatasetManifest manifest, List<string> problems)
    {
        var totals = manifest.Totals;
        if (totals.Shards != manifest.Shards.Count || totals.Rows != manifest.Shards.Sum(s => s.Rows)
            || totals.Bytes != manifest.Shards.Sum(s => s.Bytes) || totals.Failures != manifest.Shards.Sum(s => s.Failures))
        {
            problems.Add($"{DatasetManifest.FileName}: totals {totals} do not match the sum over its {manifest.Shards.Count} shards");
        }

        foreach (var shard in manifest.Shards.Where(s => s.RowGroups.Sum() != s.Rows))
        {
            problems.Add($"{DatasetManifest.FileName}: {shard.Path} lists {shard.Rows} rows but row groups of {shard.RowGroups.Sum()}");
        }

        foreach (var group in manifest.Shards.GroupBy(s => s.Partition).Where(g => g.Count() > 1))
        {
            problems.Add($"{DatasetManifest.FileName}: partition {group.Key} is listed {group.Count()} times");
        }
    }

    /// <summary>Existence, size and hash; true when the file exists and can be opened further.</summary>
    private static async Task<bool> CheckFileAsync(
        IFileStore dataset, string path, long bytes, string sha256, List<string> problems, CancellationToken cancellationToken)
    {
        var info = await dataset.GetInfoAsync(path, cancellationToken);
        if (info is null)
        {
            problems.Add($"{path}: listed in the manifest but missing");
            return false;
        }

        if (info.Length != bytes)
        {
            problems.Add($"{path}: is {info.Length} bytes, manifest lists {bytes}");
        }

        await using var stream = await dataset.OpenReadAsync(path, cancellationToken);
        var actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
        if (actual != sha256)
        {
            problems.Add($"{path}: sha256 is {actual}, manifest lists {sha256}");
        }

        return true;
    }

    private static async Task<long> CheckShardAsync(
        IFileStore dataset, DatasetManifest manifest, ShardInfo shard, List<string> problems, CancellationToken cancellationToken)
    {
        await using var reader = await TokenShardReader.OpenAsync(dataset, shard.Path, cancellationToken);
        if (reader.Layout != manifest.Layout)
        {
            problems.Add($"{shard.Path}: layout {reader.Layout} differs from the manifest's {manifest.Layout}");
        }

        if (reader.Metadata.GetValueOrDefault(ShardSchema.MetaPartition) != shard.Partition.ToString(System.Globalization.CultureInfo.InvariantCulture))
        {
            problems.Add($"{shard.Path}: metadata says partition {reader.Metadata.GetValueOrDefault(ShardSchema.MetaPartition)}, manifest lists {shard.Partition}");
        }

        if (reader.Metadata.GetValueOrDefault(ShardSchema.MetaCheckpointSha256) != manifest.CheckpointSha256)
        {
            problems.Add($"{shard.Path}: written with checkpoint {reader.Metadata.GetValueOrDefault(ShardSchema.MetaCheckpointSha256)}, manifest says {manifest.CheckpointSha256}");
        }

        if (reader.Metadata.GetValueOrDefault(ShardSchema.MetaModelKind) != manifest.ModelKind)
        {
            problems.Add($"{shard.Path}: written by model kind {reader.Metadata.GetValueOrDefault(ShardSchema.MetaModelKind) ?? "(none)"}, manifest says {manifest.ModelKind ?? "(none)"}");
        }

        var groups = reader.RowGroupRows;
        if (!groups.SequenceEqual(shard.RowGroups.Select(r => (long)r)))
        {
            problems.Add($"{shard.Path}: row groups hold [{string.Join(", ", groups)}] rows, manifest lists [{string.Join(", ", shard.RowGroups)}]");
        }

        long rows = 0;
        string? previousKey = null;
        var layout = reader.Layout;
        for (var g = 0; g < groups.Count; g++)
        {
            // Reading checks that every token list has exactly the layout's length (InvalidDataException otherwise).
            foreach (var row in await reader.ReadRowGroupAsync(g, ShardColumns.Pixel | ShardColumns.Semantic | ShardColumns.Pooled, cancellationToken))
            {
                if (previousKey is not null && string.CompareOrdinal(previousKey, row.Key) >= 0)
                {
                    problems.Add($"{shard.Path}: key {row.Key} follows {previousKey}; keys must be sorted and unique");
                }

                var bad = Array.FindIndex(row.PixelTokens, id => id >= layout.CodebookSize);
                if (bad >= 0)
                {
                    problems.Add($"{shard.Path}: row {row.Key} has pixel token {row.PixelTokens[bad]} at {bad}, codebook size is {layout.CodebookSize}");
                }

                previousKey = row.Key;
                rows++;
            }
        }

        if (rows != shard.Rows)
        {
            problems.Add($"{shard.Path}: has {rows} rows, manifest lists {shard.Rows}");
        }

        return rows;
    }
}
