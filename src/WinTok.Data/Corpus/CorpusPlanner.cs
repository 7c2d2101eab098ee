namespace WinTok.Data.Corpus;

/// <summary>
/// Splits a corpus into deterministic partitions: one per tar for WebDataset, otherwise consecutive runs of
/// <c>filesPerPartition</c> images in ordinal path order. Listing order from the store never matters: everything is
/// sorted with <see cref="StringComparer.Ordinal"/>, so a rerun (or a run on another machine) plans identically.
/// </summary>
public static class CorpusPlanner
{
    /// <summary>Default images per partition for Folder and ImageFolder corpora.</summary>
    public const int DefaultFilesPerPartition = 10_000;

    /// <summary>File extensions read as images, lower case, without the dot.</summary>
    public static readonly IReadOnlySet<string> ImageExtensions =
        new HashSet<string>(["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"], StringComparer.Ordinal);

    /// <summary>Lists <paramref name="store"/> and plans its partitions.</summary>
    public static async Task<IReadOnlyList<CorpusPartition>> PlanAsync(
        IFileStore store, CorpusKind kind, int filesPerPartition = DefaultFilesPerPartition, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(filesPerPartition, 1);
        var paths = new List<string>();
        await foreach (var file in store.ListAsync("", cancellationToken))
        {
            paths.Add(file.Path);
        }

        return Plan(store.Location, kind, paths, filesPerPartition);
    }

    /// <summary>The pure part of <see cref="PlanAsync"/>: partitions from a listing, in any order.</summary>
    public static IReadOnlyList<CorpusPartition> Plan(string corpusUri, CorpusKind kind, IEnumerable<string> paths, int filesPerPartition)
    {
        var sorted = paths.Where(p => !IsHidden(p)).Order(StringComparer.Ordinal).ToList();
        switch (kind)
        {
            case CorpusKind.WebDataset:
                return sorted.Where(p => p.EndsWith(".tar", StringComparison.OrdinalIgnoreCase))
                    .Select((tar, i) => new CorpusPartition(corpusUri, kind, i, Tar: tar))
                    .ToList();

            case CorpusKind.Folder:
                return Chunk(corpusUri, kind, sorted.Where(IsImage), filesPerPartition, classNames: null);

            case CorpusKind.ImageFolder:
                // As torchvision's ImageFolder: classes are the top-level folders, files directly under the root
                // are ignored, and images anywhere below a class folder belong to it.
                var inClass = sorted.Where(p => p.Contains('/', StringComparison.Ordinal)).ToList();
                var classes = inClass.Select(ClassOf).Distinct().Order(StringComparer.Ordinal).ToList();
                return Chunk(corpusUri, kind, inClass.Where(IsImage), filesPerPartition, classes);

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown corpus kind");
        }
    }

    /// <summary>Whether a path has an image extension (case-insensitive).</summary>
    public static bool IsImage(string path) => ImageExtensions.Contains(Path.GetExtension(path).TrimStart('.').ToLowerInvariant());

    internal static string ClassOf(string path) => path[..path.IndexOf('/', StringComparison.Ordinal)];

    // Dot-files and dot-folders are staging leftovers and OS metadata (.DS_Store, ._x.jpg), never samples.
    private static bool IsHidden(string path) => path.Split('/').Any(segment => segment.StartsWith('.'));

    private static List<CorpusPartition> Chunk(
        string corpusUri, CorpusKind kind, IEnumerable<string> images, int filesPerPartition, IReadOnlyList<string>? classNames) =>
        images.Chunk(filesPerPartition)
            .Select((files, i) => new CorpusPartition(corpusUri, kind, i, Files: files, ClassNames: classNames))
            .ToList();
}
