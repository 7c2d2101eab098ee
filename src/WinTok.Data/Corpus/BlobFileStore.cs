using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace WinTok.Data.Corpus;

/// <summary>
/// A prefix of an Azure Blob Storage container as an <see cref="IFileStore"/>: the one class that knows Azure.
/// Blobs are read as seekable streams that fetch ranges on demand; commits upload a finished local file with
/// <c>If-None-Match: *</c>, so a blob only ever appears complete and is never overwritten.
/// </summary>
public sealed class BlobFileStore : IFileStore
{
    /// <summary>Blob metadata key holding the SHA-256 of the content, compared when a create-only upload conflicts.</summary>
    public const string Sha256MetadataKey = "wintok_sha256";

    private readonly BlobContainerClient container;
    private readonly string prefix;

    /// <summary>
    /// Failures of blob storage worth retrying: 408, 429, 5xx, and transport failures (status 0: connection refused or
    /// reset; sockets, I/O, timeouts). Bad requests, conflicts and cancellation surface at once.
    /// </summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        RequestFailedException { Status: 0 or 408 or 429 or >= 500 } => true,
        RequestFailedException => false,
        AggregateException aggregate => aggregate.InnerExceptions.All(IsTransient),
        HttpRequestException or System.Net.Sockets.SocketException or IOException or TimeoutException => true,
        { InnerException: { } inner } => IsTransient(inner),
        _ => false,
    };

    /// <summary>Creates a store over <paramref name="container"/> below <paramref name="prefix"/> ("" for the whole container).</summary>
    public BlobFileStore(BlobContainerClient container, string prefix)
    {
        this.container = container;
        this.prefix = prefix.Trim('/') is { Length: > 0 } p ? p + "/" : "";
    }

    /// <inheritdoc />
    public string Location => $"{container.Uri.ToString().TrimEnd('/')}/{prefix}";

    /// <inheritdoc />
    public string Describe(string path) => container.GetBlobClient(prefix + path).Uri.ToString();

    /// <inheritdoc />
    public async IAsyncEnumerable<StoredFile> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var start = this.prefix + prefix.TrimStart('/');
        await foreach (var blob in container.GetBlobsAsync(new GetBlobsOptions { Prefix = start }, cancellationToken))
        {
            yield return new StoredFile(blob.Name[this.prefix.Length..], blob.Properties.ContentLength ?? 0);
        }
    }

    /// <inheritdoc />
    public async Task<StoredFile?> GetInfoAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            var properties = await container.GetBlobClient(prefix + path).GetPropertiesAsync(cancellationToken: cancellationToken);
            return new StoredFile(path, properties.Value.ContentLength);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            // allowModifications: false pins the ETag, so a blob replaced mid-read fails instead of mixing versions.
            return await container.GetBlobClient(prefix + path).OpenReadAsync(new BlobOpenReadOptions(allowModifications: false), cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            // Callers turn these two into per-item failure records; other statuses (throttling, outages) propagate
            // so that the whole partition is retried rather than silently losing its items.
            throw new FileNotFoundException($"Blob {Describe(path)} does not exist", Describe(path), e);
        }
        catch (RequestFailedException e) when (e.Status == 403)
        {
            throw new UnauthorizedAccessException($"Access to blob {Describe(path)} is denied", e);
        }
    }

    /// <inheritdoc />
    public async Task<CommittedFile> CommitAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        // Spool to local disk first: Parquet writers need a seekable stream, and hashing before the upload lets the
        // hash travel as blob metadata.
        var staging = Path.Combine(Path.GetTempPath(), $"wintok-{Guid.NewGuid():N}.tmp");
        try
        {
            await using var stream = new FileStream(staging, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16,
                FileOptions.Asynchronous | FileOptions.DeleteOnClose);
            await write(stream, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            stream.Position = 0;
            var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
            var bytes = stream.Length;
            stream.Position = 0;

            var blob = container.GetBlobClient(prefix + path);
            try
            {
                // Large files go up as staged blocks and become visible only at the final block-list commit, which
                // carries the If-None-Match: * condition.
                await blob.UploadAsync(stream, new BlobUploadOptions
                {
                    Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                    Metadata = new Dictionary<string, string> { [Sha256MetadataKey] = sha256 },
                }, cancellationToken);
                return new CommittedFile(path, bytes, sha256, CommitOutcome.Created);
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412)
            {
                var existing = await ExistingSha256Async(blob, cancellationToken);
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

    private static async Task<string> ExistingSha256Async(BlobClient blob, CancellationToken cancellationToken)
    {
        var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken);
        if (properties.Value.Metadata.TryGetValue(Sha256MetadataKey, out var recorded))
        {
            return recorded;
        }

        // Written by something else: hash the content itself rather than trusting a name.
        await using var existing = await blob.OpenReadAsync(new BlobOpenReadOptions(allowModifications: false), cancellationToken);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(existing, cancellationToken));
    }
}
