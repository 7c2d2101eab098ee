using System.Security.Cryptography;
using Azure.Storage.Blobs;
using WinTok.Data.Corpus;

namespace WinTok.Jobs.Checkpoints;

/// <summary>
/// Makes a checkpoint available as a local file: fixes its identity at submission (<see cref="ReferenceAsync"/>) and
/// resolves that identity on a worker (<see cref="ResolveAsync"/>), refusing a file that has changed since.
/// </summary>
public static class CheckpointFiles
{
    /// <summary>
    /// Hashes the checkpoint once (streaming: a blob is read, not stored) and records the facts a worker re-checks
    /// cheaply. A blob is downloaded into <paramref name="cacheFolder"/> on the way, since the submitter usually
    /// inspects it next.
    /// </summary>
    public static async Task<(CheckpointReference Reference, string LocalPath)> ReferenceAsync(string location, BlobServiceClient? blobService,
        string cacheFolder, CancellationToken cancellationToken)
    {
        if (!FileStores.IsBlobLocation(location))
        {
            var path = Path.GetFullPath(location);
            var info = new FileInfo(path);
            if (!info.Exists) throw new FileNotFoundException($"No checkpoint at {path}", path);
            string sha256;
            await using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
            {
                sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken));
            }
            return (new CheckpointReference(path, sha256, info.Length, info.LastWriteTimeUtc.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture)), path);
        }
        var blob = FileStores.OpenBlob(location, blobService);
        var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken);
        var (local, hash) = await DownloadAsync(blob, properties.Value.ETag.ToString(), null, cacheFolder, cancellationToken);
        return (new CheckpointReference(location, hash, properties.Value.ContentLength, properties.Value.ETag.ToString()), local);
    }

    /// <summary>
    /// The local file of <paramref name="checkpoint"/>: a local path after checking its size and modification time; a
    /// blob from the cache (files there are named by content hash and only appear once verified), else downloaded and
    /// verified against the hash while it streams. A changed file throws <see cref="CheckpointChangedException"/>.
    /// </summary>
    public static async Task<string> ResolveAsync(CheckpointReference checkpoint, BlobServiceClient? blobService, string cacheFolder,
        CancellationToken cancellationToken)
    {
        if (!FileStores.IsBlobLocation(checkpoint.Location))
        {
            var info = new FileInfo(checkpoint.Location);
            if (!info.Exists) throw new FileNotFoundException($"The job's checkpoint {checkpoint.Location} no longer exists", checkpoint.Location);
            var version = info.LastWriteTimeUtc.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (info.Length != checkpoint.Length || version != checkpoint.Version)
                throw new CheckpointChangedException(checkpoint.Location, $"its size or modification time changed since submission ({info.Length} bytes, expected {checkpoint.Length})");
            return checkpoint.Location;
        }
        var cached = CachePath(cacheFolder, checkpoint.Sha256, checkpoint.Location);
        if (File.Exists(cached)) return cached;
        var (local, _) = await DownloadAsync(FileStores.OpenBlob(checkpoint.Location, blobService), checkpoint.Version, checkpoint.Sha256,
            cacheFolder, cancellationToken);
        return local;
    }

    private static async Task<(string Path, string Sha256)> DownloadAsync(BlobClient blob, string etag,
        string? expectedSha256, string cacheFolder, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(cacheFolder);
        var partial = Path.Combine(cacheFolder, $"{Guid.NewGuid():N}.partial");
        try
        {
            string sha256;
            await using (var source = await blob.OpenReadAsync(new Azure.Storage.Blobs.Models.BlobOpenReadOptions(allowModifications: false)
                {
                    Conditions = new Azure.Storage.Blobs.Models.BlobRequestConditions { IfMatch = new Azure.ETag(etag) },
                }, cancellationToken))
            await using (var target = File.Create(partial))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                var buffer = new byte[1 << 20];
                int read;
                while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
                sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
            }
            if (expectedSha256 is not null && sha256 != expectedSha256)
                throw new CheckpointChangedException(blob.Uri.ToString(), $"its content hash is {sha256}, the job was submitted with {expectedSha256}");
            var local = CachePath(cacheFolder, sha256, blob.Name);
            File.Move(partial, local, overwrite: true);
            return (local, sha256);
        }
        catch (Azure.RequestFailedException e) when (e.Status == 412)
        {
            throw new CheckpointChangedException(blob.Uri.ToString(), "the blob was replaced since submission (ETag changed)");
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }

    private static string CachePath(string cacheFolder, string sha256, string location) =>
        Path.Combine(cacheFolder, $"{sha256[..16]}-{location[(location.LastIndexOf('/') + 1)..]}");
}

/// <summary>The checkpoint file is not the one the job was submitted with.</summary>
public sealed class CheckpointChangedException(string checkpoint, string what)
    : Exception($"{checkpoint} is not the checkpoint the job was submitted with: {what}; resubmit to use the new checkpoint");
