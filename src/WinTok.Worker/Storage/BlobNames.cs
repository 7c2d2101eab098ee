using System.Security.Cryptography;

namespace WinTok.Worker.Storage;

/// <summary>Name checks and hashing shared by the stores.</summary>
internal static class BlobNames
{
    /// <summary>Rejects names that would escape the store or differ between Azure and a directory.</summary>
    public static string Validate(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.StartsWith('/') || name.EndsWith('/') || name.Contains('\\') || name.Split('/').Any(s => s is "" or "." or ".."))
        {
            throw new ArgumentException($"Blob name '{name}' must be relative, with '/' between non-empty segments and no '.' or '..'", nameof(name));
        }
        return name;
    }

    public static async Task<string> Sha256Async(Stream content, CancellationToken cancellationToken) =>
        Convert.ToHexStringLower(await SHA256.HashDataAsync(content, cancellationToken));

    public static async Task<string> Sha256OfFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await Sha256Async(file, cancellationToken);
    }
}
