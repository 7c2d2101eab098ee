using Microsoft.Extensions.Logging;

namespace WinTok.Cli;

/// <summary>The command line's log messages: 7000s (docs/architecture.md lists every project's range).</summary>
internal static partial class Log
{
    [LoggerMessage(7001, LogLevel.Warning, "Partition {Partition} of job {JobId} was dead-lettered: {Reason}")]
    public static partial void PartitionDeadLettered(ILogger logger, Guid jobId, int partition, string reason);

    [LoggerMessage(7002, LogLevel.Warning, "Cancelling job {JobId} (interrupted)")]
    public static partial void CancellingJob(ILogger logger, Guid jobId);
}
