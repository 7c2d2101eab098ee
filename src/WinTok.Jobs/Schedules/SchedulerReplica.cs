using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using WinTok.Messaging;
using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>
/// One scheduler process among any number: each <see cref="TickAsync"/> takes or renews the one scheduler lease, and
/// only its holder runs the schedules, so replicas do not all hash the same checkpoints. The lease is for efficiency;
/// exactness comes from the slot's primary key and the fenced transaction of <see cref="SchedulesRepository.RecordSlotAsync"/>,
/// which hold even when two replicas both believe they lead (a paused process waking after its lease expired).
/// </summary>
internal sealed class SchedulerReplica(
    SchedulesRepository schedules,
    ScheduleRunner runner,
    RegressionWebhook webhook,
    IOptions<SchedulerOptions> options,
    IOptions<JobQueueOptions> queue,
    TimeProvider timeProvider,
    ILogger<SchedulerReplica> logger)
{
    private readonly SchedulerOptions settings = options.Value;
    private bool republishedAtStart;

    public string Name => settings.InstanceName;

    /// <summary>Whether this replica held the lease at its last tick.</summary>
    public bool IsLeading { get; private set; }

    /// <summary>
    /// One round: take or renew the lease; as its holder, publish what a stopped scheduler left unpublished, fire the
    /// due slots (renewing the lease while they take, and stopping if it is lost), and retry failed webhook posts.
    /// </summary>
    public async Task TickAsync(CancellationToken cancellationToken)
    {
        var leading = await schedules.TryAcquireLeaseAsync(Name, settings.LeaseDuration, cancellationToken) is not null;
        if (leading != IsLeading)
        {
            if (leading) Log.TookSchedulerLease(logger, Name);
            else Log.LostSchedulerLease(logger, Name);
            IsLeading = leading;
        }
        if (!leading) return;

        using var lost = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var done = new CancellationTokenSource();
        var renewing = RenewAsync(lost, done.Token);
        try
        {
            // An in-process queue starts empty: its messages died with the previous process, so every unfinished
            // scheduled job is published again once; a broker kept them, so only never-published jobs need it.
            var everyUnfinished = queue.Value.Transport == JobQueueTransport.InProcess && !republishedAtStart;
            await runner.RepublishAsync(everyUnfinished, lost.Token);
            republishedAtStart = true;
            await runner.RunDueAsync(Name, lost.Token);
            await webhook.PostPendingAsync(lost.Token);
        }
        catch (OperationCanceledException) when (lost.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            IsLeading = false;
            Log.LostSchedulerLease(logger, Name);
        }
        finally
        {
            await done.CancelAsync();
            await renewing;
        }
    }

    /// <summary>Gives the lease up (on shutdown), so another replica takes over without waiting for it to expire.</summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        if (!IsLeading) return;
        await schedules.ReleaseLeaseAsync(Name, cancellationToken);
        IsLeading = false;
        Log.LostSchedulerLease(logger, Name);
    }

    private async Task RenewAsync(CancellationTokenSource lost, CancellationToken done)
    {
        try
        {
            while (true)
            {
                await Task.Delay(settings.LeaseDuration / 3, timeProvider, done);
                if (await schedules.TryAcquireLeaseAsync(Name, settings.LeaseDuration, done) is null)
                {
                    await lost.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (done.IsCancellationRequested)
        {
            // the pass is over
        }
    }
}
