using Microsoft.Extensions.Logging;

namespace WinTok.Inference;

/// <summary>Log lines of the model side: 2000s (docs/architecture.md lists every project's range).</summary>
internal static partial class Log
{
    [LoggerMessage(2001, LogLevel.Information, "Loading checkpoint {Checkpoint} onto {Device}...")]
    public static partial void LoadingModel(ILogger logger, string checkpoint, string device);

    [LoggerMessage(2002, LogLevel.Information, "Loaded {Kind} checkpoint {Checkpoint} (sha256 {Sha256}) on {Device} in {Precision} in {DurationMs}ms")]
    public static partial void LoadedModel(ILogger logger, string checkpoint, string sha256, string kind, string device, string precision, long durationMs);
}
