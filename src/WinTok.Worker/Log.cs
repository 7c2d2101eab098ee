using Microsoft.Extensions.Logging;

namespace WinTok.Worker;

/// <summary>
/// Log lines of the worker's handlers and host: 5000s (docs/architecture.md lists every project's range). 5000s
/// partitions of every kind, 5100s tokenize, 5200s evaluate, 5300s train, 5900s the worker host.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(5001, LogLevel.Information, "Job {JobId} was cancelled; gave back partition {Partition} before its commit")]
    public static partial void AbandonedCancelledPartition(ILogger logger, Guid jobId, int partition);

    [LoggerMessage(5002, LogLevel.Warning, "Could not give back job {JobId} partition {Partition}; its lease will expire")]
    public static partial void CouldNotReleasePartition(ILogger logger, Exception exception, Guid jobId, int partition);

    [LoggerMessage(5003, LogLevel.Warning, "Lost the lease of job {JobId} partition {Partition} held by {Worker}; cancelling its work")]
    public static partial void LeaseLost(ILogger logger, Guid jobId, int partition, string worker);

    [LoggerMessage(5004, LogLevel.Error, "Could not renew the lease of job {JobId} partition {Partition} held by {Worker}")]
    public static partial void LeaseRenewalFailed(ILogger logger, Exception exception, Guid jobId, int partition, string worker);

    [LoggerMessage(5101, LogLevel.Information, "Tokenizing job {JobId} partition {Partition} on {Device} in batches of {BatchSize}...")]
    public static partial void TokenizingPartition(ILogger logger, Guid jobId, int partition, string device, int batchSize);

    [LoggerMessage(5102, LogLevel.Information, "Tokenized job {JobId} partition {Partition}: {Rows} rows, {Failures} failed inputs, shard {Outcome}")]
    public static partial void TokenizedPartition(ILogger logger, Guid jobId, int partition, long rows, long failures, string outcome);

    [LoggerMessage(5103, LogLevel.Information, "Wrote the manifest of job {JobId}: {Shards} shards, {Rows} rows, {Failures} failed inputs")]
    public static partial void WroteManifest(ILogger logger, Guid jobId, int shards, long rows, long failures);

    [LoggerMessage(5201, LogLevel.Information, "Evaluating job {JobId} partition {Partition} on {Device} in {Precision}...")]
    public static partial void EvaluatingPartition(ILogger logger, Guid jobId, int partition, string device, string precision);

    [LoggerMessage(5202, LogLevel.Information, "Evaluated job {JobId} partition {Partition}: {Images} images, {Failures} failed inputs")]
    public static partial void EvaluatedPartition(ILogger logger, Guid jobId, int partition, long images, long failures);

    [LoggerMessage(5203, LogLevel.Information, "Finished evaluation {JobId} over {Images} images: {Metrics}")]
    public static partial void FinishedEvaluation(ILogger logger, Guid jobId, long images, string metrics);

    [LoggerMessage(5204, LogLevel.Warning, "Job {JobId}: {Path} was committed by an earlier attempt with other bytes (non-deterministic kernels); keeping it")]
    public static partial void KeptEarlierAttemptsFile(ILogger logger, Guid jobId, string path);

    [LoggerMessage(5903, LogLevel.Warning, "Could not record the heartbeat of worker {Worker}; trying again at the next beat")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, string worker);

    [LoggerMessage(5301, LogLevel.Information, "Training job {JobId} on {Device}: {MaxIterations} iterations of {Batch} images, {Partitions} data partitions...")]
    public static partial void StartingRun(ILogger logger, Guid jobId, string device, long maxIterations, int batch, int partitions);

    [LoggerMessage(5302, LogLevel.Information, "Resumed job {JobId} from {Checkpoint} at iteration {Iteration}, data {Position}")]
    public static partial void ResumedRun(ILogger logger, Guid jobId, string checkpoint, long iteration, string position);

    [LoggerMessage(5303, LogLevel.Information, "Job {JobId} iteration {Iteration}/{MaxIterations}: Lnll {Lnll:F4}, Lv {Lv:F4}, Ld {Ld}, {ImagesPerSecond:F1} img/s")]
    public static partial void TrainedIteration(ILogger logger, Guid jobId, long iteration, long maxIterations, double lnll, double lv, double? ld, double imagesPerSecond);

    [LoggerMessage(5304, LogLevel.Information, "Saved job {JobId}'s checkpoint at iteration {Iteration}: {Path} in {DurationMs}ms")]
    public static partial void SavedCheckpoint(ILogger logger, Guid jobId, long iteration, string path, long durationMs);

    [LoggerMessage(5305, LogLevel.Information, "Job {JobId} stopped at iteration {Iteration}; it continues from {Checkpoint}")]
    public static partial void StoppedRun(ILogger logger, Guid jobId, long iteration, string checkpoint);

    [LoggerMessage(5306, LogLevel.Information, "Trained job {JobId} to iteration {Iteration}: {Path}")]
    public static partial void FinishedRun(ILogger logger, Guid jobId, long iteration, string path);

    [LoggerMessage(5307, LogLevel.Information, "Job {JobId} submitted the evaluation of {Checkpoint} as job {EvaluationJobId}")]
    public static partial void SubmittedEvaluation(ILogger logger, Guid jobId, string checkpoint, Guid evaluationJobId);

    [LoggerMessage(5308, LogLevel.Warning, "Job {JobId} could not submit the evaluation of {Checkpoint}; training goes on")]
    public static partial void EvaluationRefused(ILogger logger, Exception exception, Guid jobId, string checkpoint);

    [LoggerMessage(5309, LogLevel.Warning, "Job {JobId} skipped {Source}: {Reason}")]
    public static partial void SkippedInput(ILogger logger, Guid jobId, string source, string reason);

    [LoggerMessage(5310, LogLevel.Warning, "Job {JobId}'s data stream failed at {Position} (attempt {Attempt}); restarting it there")]
    public static partial void DataStreamRestarting(ILogger logger, Exception exception, Guid jobId, string position, int attempt);

    [LoggerMessage(5311, LogLevel.Warning, "Job {JobId} cannot resume from {Checkpoint}; trying the checkpoint before it")]
    public static partial void UnreadableCheckpoint(ILogger logger, Exception exception, Guid jobId, string checkpoint);

    [LoggerMessage(5901, LogLevel.Information, "Wrote health file {Path}; refreshing it every {IntervalMs}ms")]
    public static partial void WroteHealthFile(ILogger logger, string path, long intervalMs);

    [LoggerMessage(5902, LogLevel.Information, "Removed health file {Path}")]
    public static partial void RemovedHealthFile(ILogger logger, string path);
}
