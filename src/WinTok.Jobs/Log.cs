using Microsoft.Extensions.Logging;

namespace WinTok.Jobs;

/// <summary>Log lines of job control and schedules: 6000s (docs/architecture.md lists every project's range).</summary>
internal static partial class Log
{
    [LoggerMessage(6001, LogLevel.Information, "Submitted {Kind} job {JobId} with {Partitions} partitions")]
    public static partial void SubmittedJob(ILogger logger, string kind, Guid jobId, int partitions);

    [LoggerMessage(6100, LogLevel.Information, "Scheduler {Instance} took the lease; it runs the schedules now")]
    public static partial void TookSchedulerLease(ILogger logger, string instance);

    [LoggerMessage(6101, LogLevel.Information, "Scheduler {Instance} gave up the lease")]
    public static partial void LostSchedulerLease(ILogger logger, string instance);

    [LoggerMessage(6102, LogLevel.Warning, "Scheduler pass failed on a transient error; next try in {DelayMs}ms")]
    public static partial void SchedulerPassFailed(ILogger logger, Exception exception, long delayMs);

    [LoggerMessage(6104, LogLevel.Warning, "Could not give up the scheduler lease on shutdown; another replica takes over once it expires, within {LeaseMs}ms")]
    public static partial void CouldNotReleaseLease(ILogger logger, Exception exception, long leaseMs);

    [LoggerMessage(6103, LogLevel.Error, "Schedule {Schedule} cannot run: {Problem}")]
    public static partial void ScheduleInvalid(ILogger logger, string schedule, string problem);

    [LoggerMessage(6110, LogLevel.Information, "Firing slot {SlotAt:o} of schedule {Schedule} ({Trigger})...")]
    public static partial void FiringSlot(ILogger logger, string schedule, DateTimeOffset slotAt, string trigger);

    [LoggerMessage(6111, LogLevel.Information, "Slot {SlotAt:o} of schedule {Schedule}: {Outcome}, {Jobs} jobs in {DurationMs}ms")]
    public static partial void FiredSlot(ILogger logger, string schedule, DateTimeOffset slotAt, string outcome, int jobs, long durationMs);

    [LoggerMessage(6112, LogLevel.Information, "Slot {SlotAt:o} of schedule {Schedule} was already recorded (by another scheduler); nothing submitted")]
    public static partial void SlotAlreadyRecorded(ILogger logger, string schedule, DateTimeOffset slotAt);

    [LoggerMessage(6113, LogLevel.Warning, "Slot {SlotAt:o} of schedule {Schedule} not recorded: this scheduler lost its lease")]
    public static partial void SlotLeaseLost(ILogger logger, string schedule, DateTimeOffset slotAt);

    [LoggerMessage(6114, LogLevel.Warning, "Schedule {Schedule}: {Count} slots from {First:o} to {Last:o} were missed while no scheduler ran ({Policy}: recorded as {Outcome})")]
    public static partial void MissedSlots(ILogger logger, string schedule, int count, DateTimeOffset first, DateTimeOffset last, string policy, string outcome);

    [LoggerMessage(6115, LogLevel.Warning, "Schedule {Schedule}: more than {Max} slots were due; those before {Before:o} are not recorded one by one")]
    public static partial void TooManyMissedSlots(ILogger logger, string schedule, int max, DateTimeOffset before);

    [LoggerMessage(6116, LogLevel.Warning, "Schedule {Schedule} could not plan an evaluation of {Checkpoint}")]
    public static partial void PlanFailed(ILogger logger, Exception exception, string schedule, string checkpoint);

    [LoggerMessage(6117, LogLevel.Information, "Schedule {Schedule}: {Checkpoint} is already evaluated under this protocol (job {JobId})")]
    public static partial void AlreadyEvaluated(ILogger logger, string schedule, string checkpoint, Guid jobId);

    [LoggerMessage(6118, LogLevel.Information, "Schedule {Schedule} submitted job {JobId} for {Checkpoint}")]
    public static partial void SubmittedScheduledJob(ILogger logger, string schedule, Guid jobId, string checkpoint);

    [LoggerMessage(6119, LogLevel.Warning, "Could not publish scheduled job {JobId}; the lease holder publishes it later")]
    public static partial void PublishFailed(ILogger logger, Exception exception, Guid jobId);

    [LoggerMessage(6120, LogLevel.Information, "Republished {Partitions} partitions of scheduled job {JobId} ({Reason})")]
    public static partial void Republished(ILogger logger, Guid jobId, int partitions, string reason);

    [LoggerMessage(6121, LogLevel.Warning, "Schedule {Schedule}: listing {Prefix} failed; the slot is tried again")]
    public static partial void WatchFailed(ILogger logger, Exception exception, string schedule, string prefix);

    [LoggerMessage(6130, LogLevel.Warning, "Regression in schedule {Schedule}: {Metric} of {Checkpoint} is {Value}, baseline {Baseline} (job {BaselineJobId}), allowed worsening {Threshold} ({Direction} is better); job {JobId}")]
    public static partial void RegressionFound(ILogger logger, string? schedule, string metric, string checkpoint, double value, double baseline,
        Guid? baselineJobId, double threshold, string direction, Guid jobId);

    [LoggerMessage(6131, LogLevel.Information, "Evaluation {JobId} of schedule {Schedule} compared with its baseline: {Compared} metrics, no regression")]
    public static partial void NoRegression(ILogger logger, Guid jobId, string schedule, int compared);

    [LoggerMessage(6132, LogLevel.Information, "Evaluation {JobId} of schedule {Schedule} has no baseline yet ({Baseline}); nothing compared")]
    public static partial void NoBaseline(ILogger logger, Guid jobId, string schedule, string baseline);

    [LoggerMessage(6133, LogLevel.Information, "Posted {Count} regressions of job {JobId} to the webhook at {Host}")]
    public static partial void WebhookPosted(ILogger logger, int count, Guid jobId, string host);

    [LoggerMessage(6134, LogLevel.Error, "The webhook at {Host} did not take the regressions of job {JobId}; retried later")]
    public static partial void WebhookFailed(ILogger logger, Exception exception, string host, Guid jobId);

    [LoggerMessage(6135, LogLevel.Warning, "Evaluation {JobId}: metric {Metric} is {Value}, not a number; not compared")]
    public static partial void MetricNotFinite(ILogger logger, Guid jobId, string metric, double value);
}
