using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using WinTok.Contracts;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.ServiceDefaults;
using WinTok.Worker.Hosting;
using WinTok.Worker.Telemetry;

namespace WinTok.Worker.Partitions;

/// <summary>One partition of one job, as its handler's work sees it.</summary>
/// <param name="Job">The job row; its spec is the job kind's JSON.</param>
/// <param name="Partition">The partition row; its spec (inputs) fixed at submission.</param>
/// <param name="Progress">Count finished items here: lease renewals report them to progress displays.</param>
internal sealed record PartitionWork(JobRecord Job, PartitionRecord Partition, PartitionProgress Progress);

/// <summary>What a partition's work made durable: the one commit record of the partition.</summary>
/// <param name="OutputPath">The output file, when there is one (a shard), for listings.</param>
/// <param name="ResultJson">The job kind's full commit record (shard facts, partial statistics).</param>
/// <param name="Failures">Input items that could not be used, with their reasons, recorded with the commit.</param>
internal sealed record PartitionOutput(string? OutputPath, long Rows, long Bytes, string? Sha256, string ResultJson,
    IReadOnlyCollection<ItemFailure> Failures);

/// <summary>Items finished by the running attempt (thread-safe).</summary>
internal sealed class PartitionProgress
{
    private int items;

    public int Items => Volatile.Read(ref items);

    public void Add(int count) => Interlocked.Add(ref items, count);
}

/// <summary>
/// Runs one partition of any job kind under the same rules, so every kind is exactly-once the same way: claim it with a
/// database lease (waiting out a dead holder's), keep the lease while the work runs (and stop if the job is cancelled),
/// retry the work after storage hiccups (the named <c>Partition</c> pipeline), commit its one record and its item
/// failures in one transaction, and let whoever commits the last partition finish the job. The decisions are
/// <see cref="PartitionRules"/>; the kind's handler supplies the work and the finish.
/// </summary>
internal sealed class PartitionRunner(
    ResultsRepository results,
    IOptions<WorkerOptions> options,
    [FromKeyedServices(PartitionRunner.PipelineKey)] ResiliencePipeline retry,
    WorkerMetrics metrics,
    WorkerStatus status,
    TimeProvider timeProvider,
    ILogger<PartitionRunner> logger)
{
    /// <summary>The retry pipeline of a partition's whole work (<c>Resilience:Partition</c>).</summary>
    public const string PipelineKey = "Partition";

    private static readonly TimeSpan CancellationPoll = TimeSpan.FromSeconds(5);

    public async Task<HandlerOutcome> RunAsync(IJobMessage message, MessageContext context, string kind,
        Func<PartitionWork, CancellationToken, Task<PartitionOutput>> work,
        Func<JobRecord, CancellationToken, Task> finish,
        CancellationToken cancellationToken)
    {
        var job = await results.GetJobAsync(message.JobId, cancellationToken);
        if (job is null) return HandlerOutcome.Poison($"job {message.JobId} does not exist");
        if (job.Kind != kind) return HandlerOutcome.Poison($"job {message.JobId} is a {job.Kind} job, not {kind}");
        var worker = options.Value.WorkerName;
        if (context.PublishedAt is { } published) metrics.QueueLag(timeProvider.GetUtcNow() - published);
        using var span = StartSpan(job, message, worker);
        using var working = status.Working(message.JobId, message.Partition);
        var outcome = await RunClaimedAsync(message, context, job, worker, work, finish, span, cancellationToken);
        span?.SetTag("wintok.outcome", outcome.Kind.ToString());
        if (outcome.Kind == HandlerOutcomeKind.Poison) span?.SetStatus(ActivityStatusCode.Error, outcome.Reason);
        return outcome;
    }

    /// <summary>
    /// The partition's span, a child of its job's submission span (its traceparent is stored with the job), so one trace
    /// holds the job and every attempt of every partition, whichever worker ran it.
    /// </summary>
    private static Activity? StartSpan(JobRecord job, IJobMessage message, string worker)
    {
        ActivityContext.TryParse(job.TraceParent, null, isRemote: true, out var parent);
        return WorkerMetrics.Source.StartActivity("wintok.partition", ActivityKind.Consumer, parent, tags:
        [
            new("wintok.job.id", job.Id.ToString()),
            new("wintok.job.kind", job.Kind),
            new("wintok.partition", message.Partition),
            new("wintok.attempt", message.Attempt),
            new("wintok.worker", worker),
        ]);
    }

    private async Task<HandlerOutcome> RunClaimedAsync(IJobMessage message, MessageContext context, JobRecord job, string worker,
        Func<PartitionWork, CancellationToken, Task<PartitionOutput>> work,
        Func<JobRecord, CancellationToken, Task> finish,
        Activity? span,
        CancellationToken cancellationToken)
    {

        var claim = await ClaimAsync(message, cancellationToken);
        switch (PartitionRules.AfterClaim(claim.Outcome))
        {
            case ClaimStep.FinishIfLast:
                await FinishIfLastAsync(job, finish, cancellationToken);
                return HandlerOutcome.Done;
            case ClaimStep.Drop:
                return HandlerOutcome.Done;
            case ClaimStep.Poison:
                return HandlerOutcome.Poison($"job {message.JobId} has no partition {message.Partition}");
            case ClaimStep.RetryLater:
                return HandlerOutcome.RetryLater($"partition {message.Partition} is still leased by {claim.Worker}");
        }
        span?.SetTag("wintok.claimed_attempt", claim.Attempt);

        var partition = await results.GetPartitionAsync(message.JobId, message.Partition, cancellationToken)
            ?? throw new InvalidOperationException($"Job {message.JobId} partition {message.Partition} vanished after its claim");
        var progress = new PartitionProgress();
        await using var lease = PartitionLease.Hold(results, message.JobId, message.Partition, worker, options.Value.Lease,
            () => progress.Items, timeProvider, logger, cancellationToken);
        using var jobCancelled = CancellationTokenSource.CreateLinkedTokenSource(lease.Token);
        var watching = WatchForCancellationAsync(message.JobId, jobCancelled, jobCancelled.Token);
        try
        {
            var clock = Stopwatch.StartNew();
            var output = await RetryAsync(message, new PartitionWork(job, partition, progress), work, jobCancelled.Token);
            lease.StopRenewing();
            var committed = await results.CommitPartitionAsync(new PartitionCommit(message.JobId, message.Partition, worker, output.OutputPath, output.Rows,
                output.Bytes, output.Sha256, clock.ElapsedMilliseconds, output.ResultJson), output.Failures, cancellationToken);
            if (!committed.AlreadyCommitted)
            {
                metrics.PartitionCommitted(job.Kind);
                foreach (var failure in output.Failures) metrics.ItemFailed(job.Kind, failure.Category ?? "Unknown");
            }
            await FinishIfLastAsync(job, finish, cancellationToken);
            return HandlerOutcome.Done;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && !lease.IsLost)
        {
            // The job was cancelled: keep what is committed, give the partition back so a retry claims it at once.
            Log.AbandonedCancelledPartition(logger, message.JobId, message.Partition);
            await ReleaseAsync(message, worker);
            return HandlerOutcome.Done;
        }
        catch (OperationCanceledException) when (lease.IsLost && !cancellationToken.IsCancellationRequested)
        {
            metrics.PartitionRetried(job.Kind);
            return HandlerOutcome.RetryLater($"lost the lease of partition {message.Partition}");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // This process is stopping (Ctrl+C, SIGTERM past the drain): give the partition back so whoever runs it
            // next, a redelivery or `jobs retry`, does not wait out our lease.
            await ReleaseAsync(message, worker);
            throw;
        }
        catch (Exception e) when (PartitionRules.OnFailure(e, context.IsLastDelivery) == FailureStep.FailPartition)
        {
            var reason = PartitionRules.Reason(e);
            if (await results.MarkPartitionFailedAsync(message.JobId, message.Partition, worker, reason, cancellationToken))
                metrics.PartitionFailed(job.Kind);
            return HandlerOutcome.Poison(reason);
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, PartitionRules.Reason(e));
            metrics.PartitionRetried(job.Kind);
            await ReleaseAsync(message, worker); // the message goes back to the queue: its redelivery need not wait out our lease
            throw;
        }
        finally
        {
            await jobCancelled.CancelAsync();
            await watching;
        }
    }

    private async Task<PartitionOutput> RetryAsync(IJobMessage message, PartitionWork partition,
        Func<PartitionWork, CancellationToken, Task<PartitionOutput>> work, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(ResiliencePipelineFactory.Operation, $"job {message.JobId} partition {message.Partition}");
        try
        {
            return await retry.ExecuteAsync(static async (ctx, state) => await state.work(state.partition, ctx.CancellationToken),
                context, (work, partition));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>
    /// Once every partition is committed: finishes the job (the kind's last step, e.g. the manifest), then marks it
    /// succeeded. In that order, so a job that reads succeeded has its final output, and a worker that dies in between
    /// leaves the job running for the redelivered message to finish. Concurrent finishers must be idempotent.
    /// </summary>
    private async Task FinishIfLastAsync(JobRecord job, Func<JobRecord, CancellationToken, Task> finish, CancellationToken cancellationToken)
    {
        var progress = await results.GetJobProgressAsync(job.Id, cancellationToken);
        if (progress is null || progress.Status is not (JobStatus.Queued or JobStatus.Running) || progress.Committed < progress.Partitions) return;
        await finish(job, cancellationToken);
        await results.TryCompleteJobAsync(job.Id, cancellationToken);
    }

    /// <summary>Waits out another worker's lease (it may have died: its lease then expires) and claims the partition.</summary>
    private async Task<PartitionClaim> ClaimAsync(IJobMessage message, CancellationToken cancellationToken)
    {
        var (lease, first) = (options.Value.Lease, timeProvider.GetUtcNow());
        while (true)
        {
            var claim = await results.TryClaimPartitionAsync(message.JobId, message.Partition, options.Value.WorkerName, lease, cancellationToken);
            var now = timeProvider.GetUtcNow();
            if (claim.Outcome != ClaimOutcome.LeasedByAnother || !PartitionRules.KeepWaiting(first, now, lease)) return claim;
            await Task.Delay(PartitionRules.LeaseWait(claim.LeaseExpiresAt, now, lease), timeProvider, cancellationToken);
        }
    }

    private async Task ReleaseAsync(IJobMessage message, string worker)
    {
        // Best effort and bounded: if the database is what broke, the lease simply expires.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await results.ReleasePartitionAsync(message.JobId, message.Partition, worker, timeout.Token);
        }
        catch (Exception release) when (ResultsDatabase.IsTransient(release) || release is TimeoutException or OperationCanceledException)
        {
            Log.CouldNotReleasePartition(logger, release, message.JobId, message.Partition);
        }
    }

    private async Task WatchForCancellationAsync(Guid jobId, CancellationTokenSource cancel, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(CancellationPoll, timeProvider, stop);
                var job = await results.GetJobAsync(jobId, stop);
                if (job?.Status == JobStatus.Cancelled)
                {
                    await cancel.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // the partition finished or stopped first
        }
        catch (Exception e) when (ResultsDatabase.IsTransient(e))
        {
            // the lease renewal notices a lasting database outage; the watcher only serves cancellation
        }
    }
}
