using Microsoft.Extensions.Logging;

using WinTok.Results;

namespace WinTok.Worker.Partitions;

/// <summary>
/// Keeps a claimed partition's lease alive while a handler works on it: renews it every third of the lease duration
/// and cancels <see cref="Token"/> when a renewal finds the lease gone (another worker took over an expired lease, or
/// the partition was committed or failed elsewhere) or cannot reach the database. The handler does its work under
/// <see cref="Token"/>; a partition held this way never looks abandoned, however long it runs, and a worker killed
/// with SIGKILL stops renewing, so its lease expires and another worker may claim the partition.
/// </summary>
internal sealed class PartitionLease : IAsyncDisposable
{
    private readonly ResultsRepository results;
    private readonly Guid jobId;
    private readonly int partition;
    private readonly string worker;
    private readonly TimeSpan duration;
    private readonly ILogger logger;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(2);
    private readonly Func<int> itemsDone;
    private readonly CancellationTokenSource lost;
    private readonly CancellationTokenSource stop = new();
    private readonly PeriodicTimer timer;
    private readonly Task renewing;

    private PartitionLease(
        ResultsRepository results, Guid jobId, int partition, string worker, TimeSpan duration, Func<int> itemsDone, TimeProvider timeProvider,
        ILogger logger, CancellationToken cancellationToken)
    {
        this.itemsDone = itemsDone;
        this.results = results;
        this.jobId = jobId;
        this.partition = partition;
        this.worker = worker;
        this.duration = duration;
        this.logger = logger;
        lost = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Renewed every third of the lease, and at least every two seconds: each renewal also reports the images done, which
        // is what progress displays (local runs, `jobs show --follow`, the dashboard) count.
        timer = new PeriodicTimer(duration / 3 < ProgressInterval ? duration / 3 : ProgressInterval, timeProvider);
        renewing = RenewAsync();
    }

    /// <summary>Cancelled when the lease is lost or the caller's token is cancelled: pass it to the work.</summary>
    public CancellationToken Token => lost.Token;

    /// <summary>Whether the lease was lost (as opposed to the caller cancelling).</summary>
    public bool IsLost { get; private set; }

    /// <summary>Starts renewing a lease that <paramref name="worker"/> has just claimed with <see cref="ResultsRepository.TryClaimPartitionAsync"/>.</summary>
    public static PartitionLease Hold(
        ResultsRepository results, Guid jobId, int partition, string worker, TimeSpan duration, Func<int> itemsDone, TimeProvider timeProvider,
        ILogger logger, CancellationToken cancellationToken) =>
        new(results, jobId, partition, worker, duration, itemsDone, timeProvider, logger, cancellationToken);

    /// <summary>
    /// Stops renewing before the partition is committed: a committed row is no longer 'running', so a renewal after the
    /// commit would fail and report a lease loss that did not happen.
    /// </summary>
    public void StopRenewing() => stop.Cancel();

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        timer.Dispose();
        await renewing;
        lost.Dispose();
        stop.Dispose();
    }

    private async Task RenewAsync()
    {
        while (await TickAsync())
        {
            bool held;
            try
            {
                held = await results.RenewLeaseAsync(jobId, partition, worker, duration, itemsDone(), lost.Token);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                // The database pipeline already retried for its whole timeout: the lease has likely expired by now.
                Log.LeaseRenewalFailed(logger, exception, jobId, partition, worker);
                held = false;
            }
            catch (OperationCanceledException) when (lost.IsCancellationRequested)
            {
                return;
            }
            if (!held && stop.IsCancellationRequested)
            {
                return; // the holder stopped renewing (it is committing) while this renewal was in flight
            }
            if (!held)
            {
                IsLost = true;
                Log.LeaseLost(logger, jobId, partition, worker);
                await lost.CancelAsync();
                return;
            }
        }
    }

    private async Task<bool> TickAsync()
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, lost.Token);
        try
        {
            return await timer.WaitForNextTickAsync(either.Token);
        }
        catch (OperationCanceledException) when (either.IsCancellationRequested)
        {
            return false;
        }
    }
}
