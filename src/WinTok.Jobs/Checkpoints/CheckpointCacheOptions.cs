using Microsoft.Extensions.Options;

namespace WinTok.Jobs.Checkpoints;

/// <summary>Where blob checkpoints are kept on local disk (section <c>Checkpoints</c>), for submitters and workers alike.</summary>
public sealed class CheckpointCacheOptions
{
    public const string SectionName = "Checkpoints";

    /// <summary>Folder of downloaded checkpoints, named by content hash. <value>~/.cache/wintok/checkpoints</value></summary>
    public string CacheFolder { get; set; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "wintok", "checkpoints");
}
