using Azure.Storage.Blobs;
using WinTok.Data.Corpus;

namespace WinTok.Cli.Commands;

/// <summary>Checks and prepares a job's OUTPUT before the job is recorded.</summary>
internal static class OutputLocation
{
    /// <summary>
    /// A new job writes shard names that an earlier job's shards may already hold; create-only commits would then
    /// conflict mid-job, so an OUTPUT holding any file is refused up front, as is an OUTPUT that is a file.
    /// </summary>
    public static async Task<string?> ProblemAsync(string output, BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        if (!FileStores.IsBlobLocation(output))
        {
            if (File.Exists(output)) return $"output {output} is a file; give a folder (new or empty)";
            if (!Directory.Exists(output)) return null;
        }
        if (FileStores.IsBlobLocation(output) && !await ContainerOf(output, blobService!).ExistsAsync(cancellationToken)) return null;
        await foreach (var file in FileStores.Open(output, blobService).ListAsync("", cancellationToken))
        {
            return $"output {output} already holds files ({file.Path}, ...); choose an empty or new location";
        }
        return null;
    }

    /// <summary>Creates the blob container of a blob OUTPUT when it is missing; workers only ever write blobs into it.</summary>
    public static async Task EnsureExistsAsync(string output, BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        if (!FileStores.IsBlobLocation(output)) return;
        await ContainerOf(output, blobService!).CreateIfNotExistsAsync(cancellationToken: cancellationToken);
    }

    private static BlobContainerClient ContainerOf(string location, BlobServiceClient blobService)
    {
        if (location.StartsWith("az://", StringComparison.Ordinal))
            return blobService.GetBlobContainerClient(location["az://".Length..].Split('/', 2)[0]);
        // Account-host URIs and Azurite's path-style ones alike.
        return blobService.GetBlobContainerClient(new BlobUriBuilder(new Uri(location)).BlobContainerName);
    }
}
