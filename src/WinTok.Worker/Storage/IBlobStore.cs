namespace WinTok.Worker.Storage;

/// <summary>
/// Immutable files under names like <c>tokens/ds/v1/shards/part-000001.parquet</c> (forward slashes, relative). Writes
/// are create-only and atomic: a reader sees the whole object or nothing, and a second write of the same name succeeds
/// only with the same content (sha256), which makes retried and duplicated work idempotent.
/// </summary>
internal interface IBlobStore
{
    /// <summary>Where the store points (a container URI and prefix, or a directory), for logs and manifests.</summary>
    string Location { get; }

    /// <summary>
    /// Uploads a local file under <paramref name="name"/> if no object has that name. When one does and its sha256
    /// equals the file's, returns <see cref="UploadOutcome.AlreadyPresent"/>; when it differs, throws
    /// <see cref="BlobConflictException"/>.
    /// </summary>
    Task<UploadResult> UploadFileAsync(string name, string localPath, CancellationToken cancellationToken);

    /// <summary>As <see cref="UploadFileAsync"/>, for small content already in memory (receipts, manifests).</summary>
    Task<UploadResult> UploadBytesAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    /// <summary>Opens an object for reading; throws <see cref="FileNotFoundException"/> when there is none.</summary>
    Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken);

    Task<bool> ExistsAsync(string name, CancellationToken cancellationToken);

    /// <summary>Objects whose names start with <paramref name="prefix"/>, in name order.</summary>
    IAsyncEnumerable<StoredBlob> ListAsync(string prefix, CancellationToken cancellationToken);
}

internal enum UploadOutcome
{
    Created,
    /// <summary>An identical object was already there (a retry or a duplicate delivery): nothing was written.</summary>
    AlreadyPresent,
}

internal sealed record UploadResult(UploadOutcome Outcome, string Name, long Length, string Sha256);

/// <summary>An object in a store; <see cref="Sha256"/> is null where the store keeps no hash (local directories).</summary>
internal sealed record StoredBlob(string Name, long Length, string? Sha256);

/// <summary>A create-only write found a different object under the name: two runs disagree about one shard.</summary>
internal sealed class BlobConflictException(string name, string expectedSha256, string? existingSha256)
    : Exception($"Blob '{name}' already exists with sha256 {existingSha256 ?? "(none recorded)"}, not the {expectedSha256} being written")
{
    public string Name { get; } = name;
    public string ExpectedSha256 { get; } = expectedSha256;
    public string? ExistingSha256 { get; } = existingSha256;
}
