using Microsoft.Extensions.Logging;

namespace WinTok.Jobs;

/// <summary>Log lines of job control and schedules: 6000s (docs/architecture.md lists every project's range).</summary>
internal static partial class Log
{
    [LoggerMessage(6001, LogLevel.Information, "Submitted {Kind} job {JobId} with {Partitions} partitions")]
    public static partial void SubmittedJob(ILogger logger, string kind, Guid jobId, int partitions);
}
