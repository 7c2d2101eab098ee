using System.ComponentModel.DataAnnotations;

namespace WinTok.Worker.Storage;

/// <summary>
/// One named store, bound from <c>BlobStores:{name}</c>: either a local directory (<see cref="LocalRoot"/>) or an
/// Azure container (<see cref="Container"/> with <see cref="ConnectionString"/>).
/// </summary>
internal sealed class BlobStoreOptions
{
    /// <summary>A directory; when set, the store is local and the Azure settings are ignored.</summary>
    public string? LocalRoot { get; set; }

    /// <summary>An Azure Storage connection string.</summary>
    /// <value>From the <c>WINTOK_BLOB_CONNECTION</c> environment variable when not set.</value>
    public string? ConnectionString { get; set; }

    /// <summary>The container; created when missing.</summary>
    /// <value><c>wintok</c>.</value>
    [RegularExpression("^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$", ErrorMessage = "Container must be a valid Azure container name")]
    public string Container { get; set; } = "wintok";

    /// <summary>Prepended to every name (<c>tokens/</c>); empty for the container root.</summary>
    /// <value>Empty.</value>
    public string Prefix { get; set; } = "";

    /// <summary>Files up to this size go up in one Put Blob; larger ones as staged blocks committed at once.</summary>
    /// <value>64 MiB.</value>
    [Range(1, 5000L * 1024 * 1024)]
    public long SingleUploadMaxBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Block size of a staged upload.</summary>
    /// <value>16 MiB.</value>
    [Range(64 * 1024, 4000L * 1024 * 1024)]
    public long BlockBytes { get; set; } = 16L * 1024 * 1024;
}
