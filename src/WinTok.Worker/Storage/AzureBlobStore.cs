using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;
using Polly;

namespace WinTok.Worker.Storage;

/// <summary>
/// The one class that knows Azure Blob Storage. Uploads are create-only (<c>If-None-Match: *</c>) and carry the
/// content's sha256 in metadata. Small files go up in one Put Blob; large ones as blocks staged under ids unique to
/// this upload and committed by one Put Block List, so no partial blob is ever visible and two concurrent writers of
/// one name never mix their blocks (the SDK's own chunked upload derives block ids from offsets alone).
/// </summary>
internal sealed class AzureBlobStore(
    BlobContainerClient container, BlobStoreOptions options, ResiliencePipeline pipeline, ILogger<AzureBlobStore> logger) : IBlobStore
{
    public const string Sha256MetadataKey = "sha256";

    private readonly string prefix = options.Prefix.Length == 0 || options.Prefix.EndsWith('/') ? options.Prefix : options.Prefix + "/";
    private int containerReady;

    public string Location => $"{container.Uri.AbsoluteUri.TrimEnd('/')}/{prefix}";

    public async Task<UploadResult> UploadFileAsync(string name, string localPath, CancellationToken cancellationToken)
    {
        var blobName = prefix + BlobNames.Validate(name);
        var length = new FileInfo(localPath).Length;
        var sha256 = await BlobNames.Sha256OfFileAsync(localPath, cancellationToken);
        return await UploadAsync(blobName, name, length, sha256,
            () => new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan),
            cancellationToken);
    }

    public async Task<UploadResult> UploadBytesAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var blobName = prefix + BlobNames.Validate(name);
        var sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content.Span));
        return await UploadAsync(blobName, name, content.Length, sha256, () => new MemoryStream(content.ToArray(), writable: false), cancellationToken);
    }

    public async Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        var blob = container.GetBlobClient(prefix + BlobNames.Validate(name));
        try
        {
            return await pipeline.ExecuteAsync(async token => await blob.OpenReadAsync(new BlobOpenReadOptions(allowModifications: false), token), cancellationToken);
        }
        catch (RequestFailedException exception) when (exception.Status == 404)
        {
            throw new FileNotFoundException($"No blob '{blob.Uri}'", blob.Name, exception);
        }
    }

    public async Task<bool> ExistsAsync(string name, CancellationToken cancellationToken)
    {
        var blob = container.GetBlobClient(prefix + BlobNames.Validate(name));
        return await pipeline.ExecuteAsync(async token => (await blob.ExistsAsync(token)).Value, cancellationToken);
    }

    public async IAsyncEnumerable<StoredBlob> ListAsync(string namePrefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Collected inside the pipeline so a transient failure mid-listing restarts the listing, not the caller's loop.
        var blobs = await pipeline.ExecuteAsync(async token =>
        {
            var found = new List<StoredBlob>();
            if (!(await container.ExistsAsync(token)).Value)
            {
                return found;
            }
            await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix + namePrefix, Traits = BlobTraits.Metadata }, token))
            {
                item.Metadata.TryGetValue(Sha256MetadataKey, out var sha256);
                found.Add(new StoredBlob(item.Name[prefix.Length..], item.Properties.ContentLength ?? 0, sha256));
            }
            return found;
        }, cancellationToken);
        foreach (var blob in blobs.OrderBy(b => b.Name, StringComparer.Ordinal))
        {
            yield return blob;
        }
    }

    private async Task<UploadResult> UploadAsync(
        string blobName, string name, long length, string sha256, Func<Stream> openContent, CancellationToken cancellationToken)
    {
        await EnsureContainerAsync(cancellationToken);
        var blob = container.GetBlockBlobClient(blobName);
        var started = Stopwatch.GetTimestamp();
        Log.UploadingBlob(logger, blob.Uri, length);
        var metadata = new Dictionary<string, string> { [Sha256MetadataKey] = sha256 };
        var createOnly = new BlobRequestConditions { IfNoneMatch = ETag.All };
        try
        {
            if (length <= options.SingleUploadMaxBytes)
            {
                await pipeline.ExecuteAsync(async token =>
                {
                    await using var content = openContent();
                    await blob.UploadAsync(content, new BlobUploadOptions { Metadata = metadata, Conditions = createOnly }, token);
                }, cancellationToken);
            }
            else
            {
                await UploadStagedAsync(blob, openContent, metadata, createOnly, cancellationToken);
            }
        }
        catch (RequestFailedException exception) when (exception.Status is 409 or 412)
        {
            // A retry of our own successful write, a duplicate delivery, or a real disagreement: the hash decides.
            var properties = await pipeline.ExecuteAsync(async token => (await blob.GetPropertiesAsync(cancellationToken: token)).Value, cancellationToken);
            properties.Metadata.TryGetValue(Sha256MetadataKey, out var existing);
            if (!string.Equals(existing, sha256, StringComparison.OrdinalIgnoreCase))
            {
                Log.BlobConflict(logger, blob.Uri, sha256, existing);
                throw new BlobConflictException(name, sha256, existing);
            }
            Log.BlobAlreadyPresent(logger, blob.Uri, sha256);
            return new UploadResult(UploadOutcome.AlreadyPresent, name, length, sha256);
        }
        Log.UploadedBlob(logger, blob.Uri, length, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return new UploadResult(UploadOutcome.Created, name, length, sha256);
    }

    private async Task UploadStagedAsync(
        BlockBlobClient blob, Func<Stream> openContent, Dictionary<string, string> metadata, BlobRequestConditions createOnly,
        CancellationToken cancellationToken)
    {
        // All ids of one blob must have one length: a fixed-width upload id and block index, base64-encoded.
        var uploadId = Guid.NewGuid().ToString("N");
        var blockIds = new List<string>();
        var buffer = new byte[options.BlockBytes];
        await using var content = openContent();
        while (true)
        {
            var filled = await content.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
            if (filled == 0)
            {
                break;
            }
            var blockId = Convert.ToBase64String(Encoding.ASCII.GetBytes($"{uploadId}-{blockIds.Count:D6}"));
            await pipeline.ExecuteAsync(async token =>
            {
                using var block = new MemoryStream(buffer, 0, filled, writable: false);
                await blob.StageBlockAsync(blockId, block, new BlockBlobStageBlockOptions(), token);
            }, cancellationToken);
            blockIds.Add(blockId);
            if (filled < buffer.Length)
            {
                break;
            }
        }
        await pipeline.ExecuteAsync(async token =>
            await blob.CommitBlockListAsync(blockIds, new CommitBlockListOptions { Metadata = metadata, Conditions = createOnly }, token),
            cancellationToken);
    }

    private async Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref containerReady) == 1)
        {
            return;
        }
        await pipeline.ExecuteAsync(async token => await container.CreateIfNotExistsAsync(cancellationToken: token), cancellationToken);
        Volatile.Write(ref containerReady, 1);
    }
}
