using Azure.Storage.Blobs;

namespace WinTok.Data.Corpus;

/// <summary>Turns a location string from a partition, a manifest or the command line into an <see cref="IFileStore"/>.</summary>
public static class FileStores
{
    /// <summary>
    /// Opens <paramref name="location"/>: <c>az://container/prefix</c> or a blob URI
    /// (<c>https://account.blob.core.windows.net/container/prefix</c>, or Azurite's
    /// <c>http://127.0.0.1:10000/devstoreaccount1/container/prefix</c>) through <paramref name="blobService"/>, which
    /// carries the credentials; anything else is a local path (a <c>file://</c> URI is accepted).
    /// </summary>
    public static IFileStore Open(string location, BlobServiceClient? blobService)
    {
        if (IsBlobLocation(location))
        {
            if (blobService is null)
            {
                throw new ArgumentException($"{location} is a blob location, but no blob connection is configured", nameof(location));
            }

            var (account, container, prefix) = SplitBlobLocation(location);
            if (account is not null && !string.Equals(account, blobService.AccountName, StringComparison.OrdinalIgnoreCase))
            {
                // The URI only names the place; credentials come from blobService, which must be for the same account.
                throw new ArgumentException($"{location} is in storage account {account}, but the blob connection is for {blobService.AccountName}", nameof(location));
            }

            return new BlobFileStore(blobService.GetBlobContainerClient(container), prefix);
        }

        return new LocalFileStore(location.StartsWith("file://", StringComparison.Ordinal) ? new Uri(location).LocalPath : location);
    }

    /// <summary>The blob one location names (e.g. a checkpoint), through <paramref name="blobService"/>'s credentials.</summary>
    public static BlobClient OpenBlob(string location, BlobServiceClient? blobService)
    {
        if (!IsBlobLocation(location)) throw new ArgumentException($"{location} is not a blob location", nameof(location));
        if (blobService is null) throw new ArgumentException($"{location} is a blob location, but no blob connection is configured", nameof(location));
        var (account, container, name) = SplitBlobLocation(location);
        if (account is not null && !string.Equals(account, blobService.AccountName, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{location} is in storage account {account}, but the blob connection is for {blobService.AccountName}", nameof(location));
        return blobService.GetBlobContainerClient(container).GetBlobClient(name);
    }

    /// <summary>Whether <paramref name="location"/> names blob storage rather than a local path.</summary>
    public static bool IsBlobLocation(string location) =>
        location.StartsWith("az://", StringComparison.Ordinal)
        || location.StartsWith("https://", StringComparison.Ordinal)
        || location.StartsWith("http://", StringComparison.Ordinal);

    private static (string? Account, string Container, string Prefix) SplitBlobLocation(string location)
    {
        if (location.StartsWith("az://", StringComparison.Ordinal))
        {
            var rest = location["az://".Length..];
            var slash = rest.IndexOf('/', StringComparison.Ordinal);
            return slash < 0 ? (null, rest, "") : (null, rest[..slash], rest[(slash + 1)..]);
        }

        // BlobUriBuilder knows both account-host URIs and Azurite's path-style ones (account name in the path).
        var uri = new BlobUriBuilder(new Uri(location));
        return (uri.AccountName is { Length: > 0 } a ? a : null, uri.BlobContainerName, uri.BlobName ?? "");
    }
}
