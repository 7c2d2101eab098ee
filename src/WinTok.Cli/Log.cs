using Microsoft.Extensions.Logging;

namespace WinTok.Cli;

/// <summary>The CLI's log messages: 5000s (hosting and the embedded job runner).</summary>
internal static partial class Log
{
    [LoggerMessage(5001, LogLevel.Information, "Wrote health file {Path}; refreshing it every {IntervalMs}ms")]
    public static partial void WroteHealthFile(ILogger logger, string path, long intervalMs);

    [LoggerMessage(5002, LogLevel.Information, "Removed health file {Path}")]
    public static partial void RemovedHealthFile(ILogger logger, string path);

    [LoggerMessage(5010, LogLevel.Warning, "Partition {Partition} of job {JobId} was dead-lettered: {Reason}")]
    public static partial void PartitionDeadLettered(ILogger logger, Guid jobId, int partition, string reason);

    [LoggerMessage(5011, LogLevel.Warning, "Cancelling job {JobId} (interrupted)")]
    public static partial void CancellingJob(ILogger logger, Guid jobId);
}
