using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace WinTok.Data.Corpus;

/// <summary>A folder on local disk (or a mounted volume) as an <see cref="IFileStore"/>.</summary>
public sealed class LocalFileStore : IFileStore
{
    private readonly string root;

    /// <summary>Creates a store rooted at <paramref name="root"/>; the folder need not exist until something is written.</summary>
    public LocalFileStore(string root)
    {
        this.root = Path.GetFullPath(root);
    }

    /// <inheritdoc />
    public string Location => root;

    /// <inheritdoc />
    public string Describe(string path) => Resolve(path);

    /// <inheritdoc />
    public async IAsyncEnumerable<StoredFile> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var start = Resolve(prefix);
        if (!Directory.Exists(start))
        {
            yield break;
        }

        // Inaccessible folders are skipped rather than failing the listing; unreadable files are still listed and
        // become failure records when opened, so they are accounted for.
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        foreach (var file in new DirectoryInfo(start).EnumerateFiles("*", options))
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return new StoredFile(Path.GetRelativePath(root, file.FullName).Replace('\\', '/'), file.Length);
        }

        await Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<StoredFile?> GetInfoAsync(string path, CancellationToken cancellationToken)
    {
        var file = new FileInfo(Resolve(path));
        return Task.FromResult(file.Exists ? new StoredFile(path, file.Length) : null);
    }

    /// <inheritdoc />
    public Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken) =>
        Task.FromResult<Stream>(new FileStream(Resolve(path), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true));

    /// <inheritdoc />
    public async Task<CommittedFile> CommitAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var target = Resolve(path);
        var directory = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(directory);

        // The staging file sits beside the target so the final rename stays on one file system and is atomic; the
        // leading dot keeps it out of globs like shards/*.parquet if a crash leaves it behind.
        var staging = Path.Combine(directory, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var stream = new FileStream(staging, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, useAsync: true))
            {
                await write(stream, cancellationToken);
                await stream.FlushAsync(cancellationToken);
                stream.Flush(flushToDisk: true); // fsync before the rename, or a power cut can leave a renamed empty file
            }

            var (bytes, sha256) = await HashFileAsync(staging, cancellationToken);
            try
            {
                // overwrite: false is create-only: it fails when the target exists instead of replacing it.
                File.Move(staging, target, overwrite: false);
                return new CommittedFile(path, bytes, sha256, CommitOutcome.Created);
            }
            catch (IOException) when (File.Exists(target))
            {
                var (_, existing) = await HashFileAsync(target, cancellationToken);
                return existing == sha256
                    ? new CommittedFile(path, bytes, sha256, CommitOutcome.AlreadyCommitted)
                    : throw new CommitConflictException(path, existing, sha256);
            }
        }
        finally
        {
            File.Delete(staging);
        }
    }

    private static async Task<(long Bytes, string Sha256)> HashFileAsync(string file, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        var hash = await SHA256.HashDataAsync(stream, cancellationToken);
        return (stream.Length, Convert.ToHexStringLower(hash));
    }

    private string Resolve(string path)
    {
        var full = Path.GetFullPath(Path.Combine(root, path));
        // A partition or manifest is data from a queue; it must not reach outside the store.
        return full == root || full.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal)
            ? full
            : throw new ArgumentException($"Path {path} is outside the store root {root}", nameof(path));
    }
}
