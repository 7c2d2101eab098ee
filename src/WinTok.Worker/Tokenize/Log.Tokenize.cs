using Microsoft.Extensions.Logging;

namespace WinTok.Worker;

internal static partial class Log
{
    // 2000s: model and GPU
    [LoggerMessage(2001, LogLevel.Information, "Loading checkpoint {Checkpoint} onto {Device}...")]
    public static partial void LoadingModel(ILogger logger, string checkpoint, string device);

    [LoggerMessage(2002, LogLevel.Information, "Loaded checkpoint {Checkpoint} (sha256 {Sha256}) on {Device} in {Precision} in {DurationMs}ms")]
    public static partial void LoadedModel(ILogger logger, string checkpoint, string sha256, string device, string precision, long durationMs);

    // 5000s: tokenize jobs
    [LoggerMessage(5001, LogLevel.Information, "Tokenizing job {JobId} partition {Partition} on {Device} in batches of {BatchSize}...")]
    public static partial void TokenizingPartition(ILogger logger, Guid jobId, int partition, string device, int batchSize);

    [LoggerMessage(5002, LogLevel.Information, "Tokenized job {JobId} partition {Partition}: {Rows} rows, {Failures} failed inputs, shard {Outcome}")]
    public static partial void TokenizedPartition(ILogger logger, Guid jobId, int partition, long rows, long failures, string outcome);

    [LoggerMessage(5003, LogLevel.Information, "Job {JobId} was cancelled; abandoned partition {Partition} before its commit")]
    public static partial void AbandonedCancelledPartition(ILogger logger, Guid jobId, int partition);

    [LoggerMessage(5005, LogLevel.Warning, "Could not give back job {JobId} partition {Partition} after a failed attempt; its lease will expire")]
    public static partial void CouldNotReleasePartition(ILogger logger, Exception exception, Guid jobId, int partition);

    [LoggerMessage(5090, LogLevel.Warning, "Storage failed while tokenizing job {JobId} partition {Partition} (-1: the manifest); retry {Attempt} of the whole step in {DelayMs}ms")]
    public static partial void RetryingPartition(ILogger logger, Exception? exception, Guid jobId, int partition, int attempt, long delayMs);

    [LoggerMessage(5004, LogLevel.Information, "Wrote the manifest of job {JobId}: {Shards} shards, {Rows} rows, {Failures} failed inputs")]
    public static partial void WroteManifest(ILogger logger, Guid jobId, int shards, long rows, long failures);
}
