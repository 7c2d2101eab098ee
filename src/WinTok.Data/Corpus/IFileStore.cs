namespace WinTok.Data.Corpus;

/// <summary>
/// The few storage operations corpora and token datasets need, over a local folder or a blob container prefix.
/// Paths are relative to the store's root and use '/' separators. <see cref="LocalFileStore"/> and
/// <see cref="BlobFileStore"/> implement it; only the latter knows Azure.
/// </summary>
public interface IFileStore
{
    /// <summary>The root, as written in manifests and partitions (a local path or a blob URI).</summary>
    string Location { get; }

    /// <summary>The absolute path or URI of one file, as written in <c>source_uri</c> and failure records.</summary>
    string Describe(string path);

    /// <summary>All files under <paramref name="prefix"/> ("" for everything), recursively, in no particular order.</summary>
    IAsyncEnumerable<StoredFile> ListAsync(string prefix, CancellationToken cancellationToken);

    /// <summary>Size of one file, or null when it does not exist.</summary>
    Task<StoredFile?> GetInfoAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Opens a file for reading as a seekable stream that fetches on demand (a blob is not downloaded first).
    /// A missing file throws <see cref="FileNotFoundException"/>, a forbidden one <see cref="UnauthorizedAccessException"/>.
    /// </summary>
    Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a file all or nothing, create-only: <paramref name="write"/> fills a staging copy, which becomes visible
    /// under <paramref name="path"/> only once complete. If the file already exists with the same SHA-256 the result
    /// says <see cref="CommitOutcome.AlreadyCommitted"/> (a retried job); with another hash it throws
    /// <see cref="CommitConflictException"/>, never overwriting committed data.
    /// </summary>
    Task<CommittedFile> CommitAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken);
}

/// <summary>A listed file: path relative to the store root, and its size in bytes.</summary>
public sealed record StoredFile(string Path, long Length);

/// <summary>Whether a commit created the file or found an identical one already there.</summary>
public enum CommitOutcome
{
    /// <summary>This call made the file visible.</summary>
    Created,

    /// <summary>An identical file (same SHA-256) was already committed, e.g. by an earlier attempt of the same job.</summary>
    AlreadyCommitted,
}

/// <summary>A committed file: where, how big, its SHA-256 (lower-case hex) and whether this call created it.</summary>
public sealed record CommittedFile(string Path, long Bytes, string Sha256, CommitOutcome Outcome);

/// <summary>A create-only commit found a different file under the same name: two runs disagree about the output.</summary>
public sealed class CommitConflictException(string path, string existingSha256, string newSha256)
    : IOException($"{path} is already committed with sha256 {existingSha256}; this attempt produced {newSha256}")
{
    /// <summary>The path that is already taken.</summary>
    public string Path { get; } = path;

    /// <summary>The SHA-256 of the file that holds the path.</summary>
    public string ExistingSha256 { get; } = existingSha256;
}
