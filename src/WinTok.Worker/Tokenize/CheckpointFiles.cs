using Azure.Storage.Blobs;
using WinTok.Data.Corpus;

namespace WinTok.Worker.Tokenize;

/// <summary>Makes a checkpoint named by a local path or a blob location available as a local file.</summary>
internal static class CheckpointFiles
{
    /// <summary>
    /// A local path as it is; a blob is downloaded once into <paramref name="cacheFolder"/> under a name derived from its
    /// location (written to a temporary name first, so a crash never leaves a partial checkpoint behind).
    /// </summary>
    public static async Task<string> ResolveAsync(string checkpoint, BlobServiceClient? blobService, string cacheFolder,
        CancellationToken cancellationToken)
    {
        if (!FileStores.IsBlobLocation(checkpoint)) return Path.GetFullPath(checkpoint);
        var slash = checkpoint.LastIndexOf('/');
        var store = FileStores.Open(checkpoint[..slash], blobService);
        var name = checkpoint[(slash + 1)..];
        var local = Path.Combine(cacheFolder, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(checkpoint)))[..16] + "-" + name);
        if (File.Exists(local)) return local;
        Directory.CreateDirectory(cacheFolder);
        var partial = local + $".{Environment.ProcessId}.partial";
        await using (var source = await store.OpenReadAsync(name, cancellationToken))
        await using (var target = File.Create(partial))
        {
            await source.CopyToAsync(target, cancellationToken);
        }
        File.Move(partial, local, overwrite: true);
        return local;
    }
}
