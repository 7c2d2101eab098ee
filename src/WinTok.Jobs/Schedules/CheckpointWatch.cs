using System.Globalization;
using System.Runtime.CompilerServices;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using WinTok.Data.Corpus;
using WinTok.Jobs.Evaluate;
using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>
/// A training checkpoint found under a watched prefix: where it is, its training position from its name
/// (<c>ckpt-ep{E}-iter{I}.pth</c>), and the file version a job records (<see cref="Checkpoints.CheckpointFiles"/>: local
/// last-write ticks, or the blob's ETag), so a file the schedule has dealt with is known without hashing it again.
/// </summary>
internal sealed record WatchedCheckpoint(string Location, int Epoch, long Iteration, string Version, DateTimeOffset LastModified)
{
    public string Position => $"ep{Epoch}-iter{Iteration}";
}

/// <summary>Lists the training checkpoints under a prefix and picks the ones a slot evaluates.</summary>
internal static class CheckpointWatch
{
    private static readonly string[] Extensions = [".pth", ".safetensors"];

    /// <summary>
    /// The checkpoints under <paramref name="prefix"/> (a local folder, or a blob folder <c>az://container/path</c>),
    /// recursively, whose names carry a training position; other files are not training checkpoints and are ignored.
    /// </summary>
    public static async Task<IReadOnlyList<WatchedCheckpoint>> ListAsync(string prefix, BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        var found = new List<WatchedCheckpoint>();
        await foreach (var (location, version, modified) in FilesAsync(prefix, blobService, cancellationToken))
        {
            if (!Extensions.Any(e => location.EndsWith(e, StringComparison.OrdinalIgnoreCase))) continue;
            if (TrainingCheckpointNames.Parse(location) is ({ } epoch, { } iteration))
                found.Add(new WatchedCheckpoint(location, epoch, iteration, version, modified));
        }
        return Order(found);
    }

    /// <summary>Oldest to newest by training position (epoch, then iteration), then by location for a stable order.</summary>
    public static IReadOnlyList<WatchedCheckpoint> Order(IEnumerable<WatchedCheckpoint> checkpoints) =>
        [.. checkpoints.OrderBy(c => c.Epoch).ThenBy(c => c.Iteration).ThenBy(c => c.Location, StringComparer.Ordinal)];

    /// <summary>
    /// What a slot evaluates of <paramref name="listed"/> (in training order). Files written less than
    /// <paramref name="settle"/> ago may still be being written and wait for a later slot. <c>newest</c>: the newest
    /// settled checkpoint, unless the schedule has already dealt with that file version; <c>every</c>: each settled one
    /// it has not dealt with, oldest first.
    /// </summary>
    public static IReadOnlyList<WatchedCheckpoint> Select(string mode, IReadOnlyList<WatchedCheckpoint> listed, IReadOnlySet<SeenCheckpoint> seen,
        DateTimeOffset now, TimeSpan settle)
    {
        var settled = listed.Where(c => now - c.LastModified >= settle).ToList();
        bool Unseen(WatchedCheckpoint c) => !seen.Contains(new SeenCheckpoint(c.Location, c.Version));
        return mode switch
        {
            ScheduleTargetMode.Newest => settled.Count > 0 && Unseen(settled[^1]) ? [settled[^1]] : [],
            ScheduleTargetMode.Every => [.. settled.Where(Unseen)],
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "only newest and every watch a prefix"),
        };
    }

    private static async IAsyncEnumerable<(string Location, string Version, DateTimeOffset Modified)> FilesAsync(string prefix,
        BlobServiceClient? blobService, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!FileStores.IsBlobLocation(prefix))
        {
            var folder = new DirectoryInfo(Path.GetFullPath(prefix));
            if (!folder.Exists) throw new DirectoryNotFoundException($"The watched checkpoint folder {folder.FullName} does not exist");
            foreach (var file in folder.EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
            {
                cancellationToken.ThrowIfCancellationRequested();
                // The version CheckpointFiles records for a local file, so the two compare.
                yield return (file.FullName, file.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture), new DateTimeOffset(file.LastWriteTimeUtc));
            }
            yield break;
        }
        if (blobService is null) throw new ArgumentException($"{prefix} is a blob location, but no blob connection is configured");
        var (container, folderPrefix) = SplitBlobPrefix(prefix);
        var client = blobService.GetBlobContainerClient(container);
        await foreach (var blob in client.GetBlobsAsync(new GetBlobsOptions { Prefix = folderPrefix }, cancellationToken))
        {
            yield return ($"az://{container}/{blob.Name}", blob.Properties.ETag?.ToString() ?? "", blob.Properties.LastModified ?? DateTimeOffset.MinValue);
        }
    }

    /// <summary>The container and the folder prefix (ending in '/', so <c>run1</c> does not take in <c>run10</c>).</summary>
    private static (string Container, string Prefix) SplitBlobPrefix(string location)
    {
        string container, path;
        if (location.StartsWith("az://", StringComparison.Ordinal))
        {
            var rest = location["az://".Length..].Split('/', 2);
            (container, path) = (rest[0], rest.Length > 1 ? rest[1] : "");
        }
        else
        {
            var uri = new BlobUriBuilder(new Uri(location));
            (container, path) = (uri.BlobContainerName, uri.BlobName ?? "");
        }
        return (container, path.Length == 0 || path.EndsWith('/') ? path : path + "/");
    }
}
