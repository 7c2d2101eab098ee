using System.Formats.Tar;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace WinTok.Data.Corpus;

/// <summary>
/// Reads one <see cref="CorpusPartition"/> as a stream of samples and failure records, in a deterministic order:
/// the partition's file order for folders, tar order for WebDataset. A bad input (unreadable, vanished, not an
/// image, a corrupt tar) becomes a <see cref="FailureRecord"/> and reading goes on; only storage outages and
/// cancellation end the stream with an exception, so that the partition is retried as a whole.
/// </summary>
public static class CorpusReader
{
    // WebDataset picks the image member by extension; earlier wins when a sample has several.
    private static readonly string[] ImagePreference = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

    /// <summary>Reads <paramref name="partition"/> from <paramref name="store"/>, which must be its corpus root.</summary>
    public static IAsyncEnumerable<CorpusItem> ReadAsync(CorpusPartition partition, IFileStore store, CancellationToken cancellationToken) =>
        partition.Kind switch
        {
            CorpusKind.Folder or CorpusKind.ImageFolder => ReadFilesAsync(partition, store, cancellationToken),
            CorpusKind.WebDataset => ReadTarAsync(partition, store, cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(partition), partition.Kind, "Unknown corpus kind"),
        };

    private static async IAsyncEnumerable<CorpusItem> ReadFilesAsync(
        CorpusPartition partition, IFileStore store, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var files = partition.Files ?? throw new ArgumentException($"Partition {partition.Index} of a {partition.Kind} corpus lists no files", nameof(partition));
        var labels = (partition.ClassNames ?? []).Select((name, index) => (name, index)).ToDictionary(c => c.name, c => c.index, StringComparer.Ordinal);
        foreach (var path in files)
        {
            int? label = null;
            string? className = null;
            if (partition.Kind == CorpusKind.ImageFolder)
            {
                className = CorpusPlanner.ClassOf(path);
                label = labels.TryGetValue(className, out var index) ? index : throw new ArgumentException($"Partition {partition.Index}: class {className} of {path} is not in its class list", nameof(partition));
            }

            yield return await ReadFileAsync(store, path, label, className, cancellationToken);
        }
    }

    private static async Task<CorpusItem> ReadFileAsync(IFileStore store, string path, int? label, string? className, CancellationToken cancellationToken)
    {
        var source = store.Describe(path);
        try
        {
            await using var stream = await store.OpenReadAsync(path, cancellationToken);
            using var buffer = new MemoryStream();
            await stream.CopyToAsync(buffer, cancellationToken);
            return buffer.Length == 0
                ? new FailureRecord(path, source, "file is empty")
                : new CorpusSample(path, source, buffer.ToArray(), label, className);
        }
        catch (Exception e) when (IsInputError(e))
        {
            return FailureRecord.FromException(path, source, "cannot read file", e);
        }
    }

    private static async IAsyncEnumerable<CorpusItem> ReadTarAsync(
        CorpusPartition partition, IFileStore store, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var tar = partition.Tar ?? throw new ArgumentException($"Partition {partition.Index} of a WebDataset corpus names no tar", nameof(partition));
        var tarUri = store.Describe(tar);

        var opened = await TryOpenAsync(store, tar, cancellationToken);
        if (opened.Failure is not null)
        {
            yield return opened.Failure;
            yield break;
        }

        await using var stream = opened.Stream!;
        await using var reader = new TarReader(stream, leaveOpen: true);
        var group = new List<TarMember>();
        string? lastMember = null;
        while (true)
        {
            var next = await TryReadMemberAsync(reader, tarUri, lastMember, cancellationToken);
            if (next.Member is { } member)
            {
                // WebDataset groups consecutive members with the same key: a new key closes the previous sample.
                if (group.Count > 0 && member.Key != group[0].Key)
                {
                    foreach (var item in ToSample(group, tarUri))
                    {
                        yield return item;
                    }

                    group.Clear();
                }

                group.Add(member);
                lastMember = member.Name;
                continue;
            }

            if (next.Failure is { } skipped && next.Skippable)
            {
                yield return skipped;
                continue;
            }

            // End of the tar, or a corrupt one that cannot be read past: the open sample is complete as far as it goes.
            if (group.Count > 0)
            {
                foreach (var item in ToSample(group, tarUri))
                {
                    yield return item;
                }
            }

            if (next.Failure is { } fatal)
            {
                yield return fatal;
            }

            yield break;
        }
    }

    private static async Task<(Stream? Stream, FailureRecord? Failure)> TryOpenAsync(IFileStore store, string tar, CancellationToken cancellationToken)
    {
        try
        {
            return (await store.OpenReadAsync(tar, cancellationToken), null);
        }
        catch (Exception e) when (IsInputError(e))
        {
            return (null, FailureRecord.FromException(tar, store.Describe(tar), "cannot open tar", e));
        }
    }

    /// <summary>
    /// The next tar member, a failure for a member that is skipped (<c>Skippable</c>) or one that ends the tar, or
    /// nothing at the end.
    /// </summary>
    private static async Task<(TarMember? Member, FailureRecord? Failure, bool Skippable)> TryReadMemberAsync(
        TarReader reader, string tarUri, string? lastMember, CancellationToken cancellationToken)
    {
        TarEntry? entry;
        try
        {
            // copyData: false streams the member from the tar stream; it is read fully before the next entry.
            entry = await reader.GetNextEntryAsync(copyData: false, cancellationToken);
            if (entry is null)
            {
                return (null, null, false);
            }
        }
        catch (Exception e) when (IsInputError(e))
        {
            var after = lastMember is null ? "at its start" : $"after member {lastMember}";
            return (null, FailureRecord.FromException(lastMember ?? "", tarUri, $"tar is corrupt or truncated {after}; the rest of it is lost", e), false);
        }

        if (entry.EntryType == TarEntryType.Directory)
        {
            return await TryReadMemberAsync(reader, tarUri, lastMember, cancellationToken);
        }

        if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
        {
            return (null, new FailureRecord(entry.Name, $"{tarUri}#{entry.Name}", $"tar member is not a regular file ({entry.EntryType})"), true);
        }

        byte[] bytes;
        try
        {
            bytes = new byte[entry.Length];
            if (entry.DataStream is { } data)
            {
                await data.ReadExactlyAsync(bytes, cancellationToken);
            }
        }
        catch (Exception e) when (IsInputError(e))
        {
            return (null, FailureRecord.FromException(entry.Name, $"{tarUri}#{entry.Name}", "tar member is truncated; the rest of the tar is lost", e), false);
        }

        var (key, extension) = SplitMemberName(entry.Name);
        return (new TarMember(entry.Name, key, extension, bytes), null, false);
    }

    /// <summary>
    /// WebDataset's key rule: the key is the member path up to the first dot of its file name, the extension is the
    /// rest (<c>a/b.seg.png</c> → key <c>a/b</c>, extension <c>seg.png</c>); lower-cased for matching.
    /// </summary>
    internal static (string Key, string Extension) SplitMemberName(string name)
    {
        var slash = name.LastIndexOf('/');
        var dot = name.IndexOf('.', slash + 1);
        return dot < 0 ? (name, "") : (name[..dot], name[(dot + 1)..].ToLowerInvariant());
    }

    private static IEnumerable<CorpusItem> ToSample(List<TarMember> members, string tarUri)
    {
        var key = members[0].Key;
        TarMember? image = null;
        foreach (var extension in ImagePreference)
        {
            image ??= members.FirstOrDefault(m => m.Extension == extension);
        }

        string? caption = null, json = null;
        int? label = null;
        foreach (var member in members)
        {
            switch (member.Extension)
            {
                case "cls":
                    label = int.TryParse(Encoding.UTF8.GetString(member.Bytes).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) ? l : null;
                    if (label is null)
                    {
                        yield return new FailureRecord(key, $"{tarUri}#{member.Name}", "cls member is not an integer; sample kept without label",
                            BytesSha256: FailureRecord.Sha256Hex(member.Bytes));
                    }

                    break;
                case "txt":
                    caption = Encoding.UTF8.GetString(member.Bytes);
                    break;
                case "json":
                    json = Encoding.UTF8.GetString(member.Bytes);
                    break;
                case var e when CorpusPlanner.ImageExtensions.Contains(e):
                    break; // the preferred one is the sample; others are alternates, as WebDataset decoders treat them
                default:
                    yield return new FailureRecord(key, $"{tarUri}#{member.Name}",
                        member.Extension.Length == 0 ? "tar member has no extension" : $"tar member is not an image (.{member.Extension})",
                        BytesSha256: FailureRecord.Sha256Hex(member.Bytes));
                    break;
            }
        }

        if (image is null)
        {
            yield return new FailureRecord(key, $"{tarUri}#{members[0].Name}",
                $"sample has no image member (members: {string.Join(", ", members.Select(m => m.Extension))})");
        }
        else if (image.Bytes.Length == 0)
        {
            yield return new FailureRecord(key, $"{tarUri}#{image.Name}", "image member is empty");
        }
        else
        {
            yield return new CorpusSample(key, $"{tarUri}#{image.Name}", image.Bytes, label, null, caption, json);
        }
    }

    // Errors that concern one input and must not stop the partition. Storage outages are not among them: those
    // stores surface as other exception types and fail the partition so that it is retried.
    private static bool IsInputError(Exception e) =>
        e is IOException or UnauthorizedAccessException or InvalidDataException or FormatException;

    private sealed record TarMember(string Name, string Key, string Extension, byte[] Bytes);
}
