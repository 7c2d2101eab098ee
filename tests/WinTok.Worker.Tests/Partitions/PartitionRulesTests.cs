using System.Text.Json;
using Azure;
using WinTok.Checkpoints;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Results;
using WinTok.Worker.Partitions;

namespace WinTok.Worker.Tests.Partitions;

public sealed class PartitionRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 29, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(2);

    [Theory]
    [InlineData(ClaimOutcome.Claimed, "Work")]
    [InlineData(ClaimOutcome.AlreadyCommitted, "FinishIfLast")]
    [InlineData(ClaimOutcome.JobNotActive, "Drop")]
    [InlineData(ClaimOutcome.Failed, "Drop")]
    [InlineData(ClaimOutcome.LeasedByAnother, "RetryLater")]
    [InlineData(ClaimOutcome.NotFound, "Poison")]
    public void AfterClaim_ForEachOutcome_TakesTheDocumentedStep(ClaimOutcome outcome, string expected) =>
        Assert.Equal(Enum.Parse<ClaimStep>(expected), PartitionRules.AfterClaim(outcome));

    [Fact]
    public void LeaseWait_WhenTheLeaseExpiresSoon_WaitsUntilJustAfterIt() =>
        Assert.Equal(TimeSpan.FromSeconds(21), PartitionRules.LeaseWait(Now.AddSeconds(20), Now, Lease));

    [Fact]
    public void LeaseWait_WhenTheLeaseHasExpired_WaitsOneSecond() =>
        Assert.Equal(TimeSpan.FromSeconds(1), PartitionRules.LeaseWait(Now.AddSeconds(-30), Now, Lease));

    [Fact]
    public void LeaseWait_WhenTheLeaseRunsLong_WaitsAtMostOneLease() =>
        Assert.Equal(Lease, PartitionRules.LeaseWait(Now.AddHours(1), Now, Lease));

    [Fact]
    public void KeepWaiting_ForTwoLeasesAfterTheFirstTry_ThenGivesUp()
    {
        Assert.True(PartitionRules.KeepWaiting(Now, Now + Lease * 2, Lease));
        Assert.False(PartitionRules.KeepWaiting(Now, Now + Lease * 2 + TimeSpan.FromSeconds(1), Lease));
    }

    public static TheoryData<Exception> PermanentFailures() =>
    [
        new CheckpointFormatException("ckpt.pth", "the file is empty"),
        new CheckpointChangedException("ckpt.pth", "its size changed"),
        new CommitConflictException("shards/part-000001.parquet", "aaa", "bbb"),
        new FileNotFoundException("missing.jpg"),
        new ArgumentException("unknown preset"),
        new JsonException("malformed spec"),
        new InvalidDataException("no recorded inputs"),
    ];

    [Theory]
    [MemberData(nameof(PermanentFailures))]
    public void OnFailure_WhenNoRetryCanFixIt_FailsThePartitionAtOnce(Exception failure)
    {
        Assert.True(PartitionRules.IsPermanent(failure));
        Assert.Equal(FailureStep.FailPartition, PartitionRules.OnFailure(failure, isLastDelivery: false));
    }

    [Fact]
    public void OnFailure_WhenTransientAndNotTheLastDelivery_GivesThePartitionBackForARetry() =>
        Assert.Equal(FailureStep.ReleaseAndRetry, PartitionRules.OnFailure(new RequestFailedException(503, "busy"), isLastDelivery: false));

    [Fact]
    public void OnFailure_OnTheLastDelivery_FailsThePartitionInsteadOfLosingTheMessage() =>
        Assert.Equal(FailureStep.FailPartition, PartitionRules.OnFailure(new RequestFailedException(503, "busy"), isLastDelivery: true));

    [Fact]
    public void IsTransientStorage_RetriesOutagesButNotConflictsOrMissingFiles()
    {
        Assert.True(PartitionRules.IsTransientStorage(new RequestFailedException(503, "busy")));
        Assert.True(PartitionRules.IsTransientStorage(new IOException("connection reset")));
        Assert.False(PartitionRules.IsTransientStorage(new CommitConflictException("p", "a", "b")));
        Assert.False(PartitionRules.IsTransientStorage(new FileNotFoundException("gone")));
        Assert.False(PartitionRules.IsTransientStorage(new RequestFailedException(404, "not found")));
        Assert.False(PartitionRules.IsTransientStorage(new OperationCanceledException()));
    }

    [Fact]
    public void Reason_IsTheExceptionTypeAndMessageOnOneLine() =>
        Assert.Equal("InvalidDataException: bad  line two", PartitionRules.Reason(new InvalidDataException("bad\r\n line two")));
}
