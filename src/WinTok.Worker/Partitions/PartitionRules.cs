using System.Text.Json;
using WinTok.Checkpoints;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Results;

namespace WinTok.Worker.Partitions;

/// <summary>What a handler does with a partition it could not claim.</summary>
internal enum ClaimStep
{
    /// <summary>The partition is ours: do the work.</summary>
    Work,

    /// <summary>Already done by an earlier delivery: make sure the job is finished if it was the last, then ack.</summary>
    FinishIfLast,

    /// <summary>Nothing to do (job cancelled or over, partition marked failed): ack; `jobs retry` republishes what it reopens.</summary>
    Drop,

    /// <summary>Another worker holds a live lease: return the message to the queue for later.</summary>
    RetryLater,

    /// <summary>The job has no such partition: the message is poison.</summary>
    Poison,
}

/// <summary>What a handler does after a failed attempt.</summary>
internal enum FailureStep
{
    /// <summary>No retry can fix it, or this was the last delivery: record the partition failed, dead-letter the message.</summary>
    FailPartition,

    /// <summary>Give the partition back and let the queue redeliver the message.</summary>
    ReleaseAndRetry,
}

/// <summary>
/// The decisions every partition handler makes, as pure functions (unit-tested in WinTok.Worker.Tests): what a claim
/// outcome means, how long to wait for another worker's lease, which failures are permanent.
/// </summary>
internal static class PartitionRules
{
    public static ClaimStep AfterClaim(ClaimOutcome outcome) => outcome switch
    {
        ClaimOutcome.Claimed => ClaimStep.Work,
        ClaimOutcome.AlreadyCommitted => ClaimStep.FinishIfLast,
        ClaimOutcome.JobNotActive or ClaimOutcome.Failed => ClaimStep.Drop,
        ClaimOutcome.LeasedByAnother => ClaimStep.RetryLater,
        ClaimOutcome.NotFound => ClaimStep.Poison,
        _ => throw new ArgumentOutOfRangeException(nameof(outcome), outcome, null),
    };

    /// <summary>
    /// How long to wait before claiming again a partition another worker leases until <paramref name="leaseExpiresAt"/>:
    /// until just after it expires (the holder may have died), at least a second, at most one lease.
    /// </summary>
    public static TimeSpan LeaseWait(DateTimeOffset? leaseExpiresAt, DateTimeOffset now, TimeSpan lease)
    {
        var wait = (leaseExpiresAt ?? now) - now + TimeSpan.FromSeconds(1);
        return wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait > lease ? lease : wait;
    }

    /// <summary>Whether a claim still worth waiting for: within two leases of the first try.</summary>
    public static bool KeepWaiting(DateTimeOffset firstTry, DateTimeOffset now, TimeSpan lease) => now <= firstTry + lease * 2;

    /// <summary>
    /// Failures no retry can fix: a bad, missing or changed checkpoint, a malformed spec, outputs that contradict an
    /// earlier attempt, an input or argument the job cannot use, a training loss that is not finite (a resume would
    /// reach it again).
    /// </summary>
    public static bool IsPermanent(Exception e) => e is CheckpointFormatException or CheckpointMismatchException
        or CheckpointChangedException or CommitConflictException or FileNotFoundException or DirectoryNotFoundException
        or ArgumentException or JsonException or InvalidDataException or WinTok.Training.NonFiniteLossException;

    public static FailureStep OnFailure(Exception e, bool isLastDelivery) =>
        IsPermanent(e) || isLastDelivery ? FailureStep.FailPartition : FailureStep.ReleaseAndRetry;

    /// <summary>Whether the partition-level retry (storage hiccups mid-partition) should run the partition again.</summary>
    public static bool IsTransientStorage(Exception e) =>
        e is not (CommitConflictException or FileNotFoundException or DirectoryNotFoundException) && BlobFileStore.IsTransient(e);

    /// <summary>The reason recorded for a failed partition: the exception's type and message, on one line.</summary>
    public static string Reason(Exception e) => $"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}";
}
