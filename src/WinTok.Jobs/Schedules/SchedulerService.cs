using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace WinTok.Jobs.Schedules;

/// <summary>
/// The scheduler loop of <c>wintok scheduler</c> (and of <c>wintok worker</c> on one machine): a
/// <see cref="SchedulerReplica.TickAsync"/> every <see cref="SchedulerOptions.PollInterval"/>. A database outage is
/// logged and waited out; anything else stops the host, and the orchestrator restarts it. On shutdown the lease is
/// given up, so another replica takes over at once.
/// </summary>
internal sealed class SchedulerService(SchedulerReplica replica, IOptions<SchedulerOptions> options, TimeProvider timeProvider,
    ILogger<SchedulerService> logger) : BackgroundService
{
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await replica.ReleaseAsync(cancellationToken);
        }
        catch (Exception e) when (ScheduleRunner.IsTransient(e))
        {
            Log.CouldNotReleaseLease(logger, e, (long)options.Value.LeaseDuration.TotalMilliseconds);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var poll = options.Value.PollInterval;
        try
        {
            while (true)
            {
                try
                {
                    await replica.TickAsync(stoppingToken);
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested && ScheduleRunner.IsTransient(e))
                {
                    Log.SchedulerPassFailed(logger, e, (long)poll.TotalMilliseconds);
                }
                await Task.Delay(poll, timeProvider, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping
        }
    }
}
