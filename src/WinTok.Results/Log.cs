using Microsoft.Extensions.Logging;

namespace WinTok.Results;

/// <summary>Log lines of the results database: 4000s (docs/architecture.md lists every project's range).</summary>
internal static partial class Log
{
    [LoggerMessage(4001, LogLevel.Information, "Migrating the {Provider} results database...")]
    public static partial void MigratingResultsDatabase(ILogger logger, string provider);

    [LoggerMessage(4002, LogLevel.Information, "Applied results database migration {Version}: {Name}")]
    public static partial void AppliedMigration(ILogger logger, int version, string name);

    [LoggerMessage(4003, LogLevel.Information, "Migrated the results database ({Applied} migrations applied) in {DurationMs}ms")]
    public static partial void MigratedResultsDatabase(ILogger logger, int applied, long durationMs);

    [LoggerMessage(4010, LogLevel.Information, "Claimed job {JobId} partition {Partition} (attempt {Attempt}) for {Worker}")]
    public static partial void ClaimedPartition(ILogger logger, Guid jobId, int partition, int attempt, string worker);

    [LoggerMessage(4011, LogLevel.Information, "Committed job {JobId} partition {Partition}: {Rows} rows, {ItemFailures} item failures, {DurationMs}ms")]
    public static partial void CommittedPartition(ILogger logger, Guid jobId, int partition, long rows, int itemFailures, long durationMs);

    [LoggerMessage(4012, LogLevel.Information, "Job {JobId} partition {Partition} was already committed by {Worker}; nothing to do")]
    public static partial void PartitionAlreadyCommitted(ILogger logger, Guid jobId, int partition, string? worker);

    [LoggerMessage(4013, LogLevel.Warning, "Job {JobId} partition {Partition} failed on {Worker}: {Error}")]
    public static partial void PartitionFailed(ILogger logger, Guid jobId, int partition, string worker, string error);

    [LoggerMessage(4020, LogLevel.Information, "Job {JobId} succeeded: every partition is committed")]
    public static partial void CompletedJob(ILogger logger, Guid jobId);

    [LoggerMessage(4021, LogLevel.Information, "Job {JobId} cancelled")]
    public static partial void CancelledJob(ILogger logger, Guid jobId);
}
