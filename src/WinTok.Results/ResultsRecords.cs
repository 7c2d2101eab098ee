namespace WinTok.Results;

/// <summary>Job states as stored (<c>jobs.status</c>).</summary>
public static class JobStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
}

/// <summary>Partition states as stored (<c>partitions.status</c>).</summary>
public static class PartitionStatus
{
    public const string Pending = "pending";
    public const string Running = "running";
    public const string Committed = "committed";
    public const string Failed = "failed";
}

/// <summary>A new job: its id (chosen by the submitter, so a resubmission is idempotent), kind and spec.</summary>
/// <param name="TraceParent">The W3C traceparent of the submission's span, so every partition's span joins the job's trace.</param>
public sealed record NewJob(Guid Id, string Kind, string SpecJson, string? TraceParent = null);

/// <summary>One <c>jobs</c> row.</summary>
public sealed class JobRecord
{
    public Guid Id { get; init; }
    public string Kind { get; init; } = "";
    public string Status { get; init; } = "";
    public string SpecJson { get; init; } = "";
    public int PartitionCount { get; init; }
    public string? Error { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>The W3C traceparent of the job's submission span, when it was traced.</summary>
    public string? TraceParent { get; init; }
}

/// <summary>A job with its partitions counted by state and its committed totals.</summary>
public sealed class JobProgress
{
    public Guid Id { get; init; }
    public string Kind { get; init; } = "";
    public string Status { get; init; } = "";
    public string? Error { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public int Partitions { get; init; }
    public int Pending { get; init; }
    public int Running { get; init; }
    public int Committed { get; init; }
    public int Failed { get; init; }
    public long Rows { get; init; }
    public long Bytes { get; init; }
    public long ItemFailures { get; init; }

    /// <summary>Items (images) planned over all partitions; 0 when the planner could not count them (tars).</summary>
    public long Items { get; init; }

    /// <summary>Items finished: committed partitions' rows and failures, plus running attempts' reported progress.</summary>
    public long ItemsDone { get; init; }
}

/// <summary>One <c>partitions</c> row.</summary>
public sealed class PartitionRecord
{
    public Guid JobId { get; init; }
    public int Partition { get; init; }
    public string Status { get; init; } = "";
    public int Attempt { get; init; }
    public string? Worker { get; init; }
    public DateTimeOffset? LeaseExpiresAt { get; init; }
    public DateTimeOffset? HeartbeatAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? CommittedAt { get; init; }
    public long? DurationMs { get; init; }
    public string? ShardPath { get; init; }
    public long? RowCount { get; init; }
    public long? ByteCount { get; init; }
    public string? Sha256 { get; init; }
    public int FailuresCount { get; init; }
    public string? Error { get; init; }

    /// <summary>What the partition holds (its inputs), as the job kind's JSON; fixed at submission.</summary>
    public string? SpecJson { get; init; }

    /// <summary>The job kind's commit record (e.g. the shard's facts), as JSON; set by the commit.</summary>
    public string? ResultJson { get; init; }

    /// <summary>Items (images) planned for this partition; 0 when the planner could not know (e.g. a tar).</summary>
    public int Items { get; init; }

    /// <summary>Items finished by the current or last attempt, reported with each lease renewal.</summary>
    public int ItemsDone { get; init; }
}

/// <summary>A partition as submitted: its index, what it holds (the job kind's JSON) and how many items that is.</summary>
public sealed record NewPartition(int Index, string SpecJson, int Items);

/// <summary>An input item (image) rejected while processing a partition, recorded with the partition's commit.</summary>
/// <param name="Reason">What went wrong, in words (stored).</param>
/// <param name="Category">A short, bounded name for the kind of failure (e.g. <c>NotAnImage</c>), for metrics; not stored.</param>
public sealed record ItemFailure(string Key, string Source, string Reason, string? Category = null);

/// <summary>A stored <see cref="ItemFailure"/>.</summary>
public sealed class ItemFailureRecord
{
    public Guid JobId { get; init; }
    public int Partition { get; init; }
    public string Key { get; init; } = "";
    public string Source { get; init; } = "";
    public string Reason { get; init; } = "";
    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// What a worker reports when a partition's output is durable: the one commit record of the partition. The columns
/// serve listings; <paramref name="ResultJson"/> is the job kind's full record (for tokenize the shard's facts, from
/// which the manifest is written; for evaluate the partial statistics).
/// </summary>
public sealed record PartitionCommit(
    Guid JobId, int Partition, string Worker, string? OutputPath, long RowCount, long ByteCount, string? Sha256, long DurationMs,
    string ResultJson);

/// <summary>Outcome of <see cref="ResultsRepository.TryClaimPartitionAsync"/>.</summary>
public enum ClaimOutcome
{
    /// <summary>The caller holds the lease now; <see cref="PartitionClaim.Attempt"/> is its attempt number.</summary>
    Claimed,
    /// <summary>Already done: ack the message, nothing to do.</summary>
    AlreadyCommitted,
    /// <summary>Another worker holds an unexpired lease: retry later.</summary>
    LeasedByAnother,
    /// <summary>Marked failed; only <c>ResetFailedPartitionsAsync</c> reopens it.</summary>
    Failed,
    /// <summary>The job is cancelled, failed or finished: drop the message.</summary>
    JobNotActive,
    /// <summary>No such job or partition.</summary>
    NotFound,
}

public sealed record PartitionClaim(ClaimOutcome Outcome, int Attempt, string? Worker, DateTimeOffset? LeaseExpiresAt);

/// <summary>Outcome of <see cref="ResultsRepository.CommitPartitionAsync"/>.</summary>
/// <param name="AlreadyCommitted">True when an earlier commit won; nothing was written.</param>
/// <param name="CommittedSha256">The sha256 on record (the earlier one when already committed).</param>
public sealed record CommitResult(bool AlreadyCommitted, string? CommittedSha256);

/// <summary>One evaluation result (table <c>metrics</c>).</summary>
public sealed record NewMetric(Guid JobId, string Checkpoint, string Name, double Value, string? DetailsJson);

public sealed class MetricRecord
{
    public long Id { get; init; }
    public Guid JobId { get; init; }
    public string Checkpoint { get; init; } = "";
    public string Name { get; init; } = "";
    public double Value { get; init; }
    public string? DetailsJson { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
}
