using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace WinTok.Worker.Storage;

/// <summary>
/// A directory as a blob store, for the one-machine mode. A write goes to a hidden temp file beside the target, is
/// flushed to disk, then linked into place with a move that refuses to overwrite (on Unix, link(2) + unlink), so a
/// reader never sees a partial file and of two concurrent writers exactly one wins.
/// </summary>
internal sealed class LocalBlobStore(string root, ILogger<LocalBlobStore> logger) : IBlobStore
{
    private const string TempSuffix = ".tmp";

    private readonly string root = Path.GetFullPath(root);

    public string Location => root;

    public async Task<UploadResult> UploadFileAsync(string name, string localPath, CancellationToken cancellationToken)
    {
        await using var source = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await WriteAsync(name, source, cancellationToken);
    }

    public async Task<UploadResult> UploadBytesAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        await using var source = new MemoryStream(content.ToArray(), writable: false);
        return await WriteAsync(name, source, cancellationToken);
    }

    public Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        var path = PathOf(name);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"No file '{path}'", path);
        }
        return Task.FromResult<Stream>(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous));
    }

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathOf(name)));

    public async IAsyncEnumerable<StoredBlob> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!Directory.Exists(root))
        {
            yield break;
        }
        var names = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(root, path).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(name => name.StartsWith(prefix, StringComparison.Ordinal) && !IsTempFile(name))
            .Order(StringComparer.Ordinal);
        foreach (var name in names)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return new StoredBlob(name, new FileInfo(PathOf(name)).Length, Sha256: null);
        }
        await Task.CompletedTask;
    }

    private async Task<UploadResult> WriteAsync(string name, Stream source, CancellationToken cancellationToken)
    {
        var target = PathOf(name);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temp = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}{TempSuffix}");
        var started = Stopwatch.GetTimestamp();
        string sha256;
        long length;
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
            {
                using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 20];
                int read;
                while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
                await file.FlushAsync(cancellationToken);
                file.Flush(flushToDisk: true);
                length = file.Length;
                sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
            }

            if (!TryMoveCreateOnly(temp, target))
            {
                var existing = await BlobNames.Sha256OfFileAsync(target, cancellationToken);
                if (existing != sha256)
                {
                    throw new BlobConflictException(name, sha256, existing);
                }
                Log.BlobAlreadyPresent(logger, new Uri(target), sha256);
                return new UploadResult(UploadOutcome.AlreadyPresent, name, length, sha256);
            }
        }
        finally
        {
            File.Delete(temp);
        }
        Log.UploadedBlob(logger, new Uri(target), length, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return new UploadResult(UploadOutcome.Created, name, length, sha256);
    }

    private static bool TryMoveCreateOnly(string temp, string target)
    {
        if (File.Exists(target))
        {
            return false;
        }
        try
        {
            File.Move(temp, target, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(target))
        {
            return false; // lost the race to a concurrent writer
        }
    }

    private string PathOf(string name) => Path.Combine(root, BlobNames.Validate(name).Replace('/', Path.DirectorySeparatorChar));

    private static bool IsTempFile(string name)
    {
        var file = name[(name.LastIndexOf('/') + 1)..];
        return file.StartsWith('.') && file.EndsWith(TempSuffix, StringComparison.Ordinal);
    }
}
