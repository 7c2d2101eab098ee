using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace WinTok.Worker.Hosting;

/// <summary>
/// Writes the worker's health file once every hosted service has started (the results database is migrated and the
/// queue consumer is up), refreshes it from a timer that never waits on model work, and deletes it once the host has
/// stopped. Registered before the consumers, so it stops after them: the file stays fresh while a partition drains
/// after SIGTERM, and a liveness probe does not kill a worker that is finishing its work.
/// </summary>
internal sealed class HealthFileService(
    IOptions<WorkerOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider timeProvider,
    ILogger<HealthFileService> logger) : BackgroundService
{
    private readonly WorkerOptions settings = options.Value;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (settings.HealthFile.Length > 0 && File.Exists(settings.HealthFile))
        {
            File.Delete(settings.HealthFile);
            Log.RemovedHealthFile(logger, settings.HealthFile);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (settings.HealthFile.Length == 0 || !await StartedAsync(stoppingToken)) return;

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(settings.HealthFile))!);
        Touch();
        Log.WroteHealthFile(logger, settings.HealthFile, (long)settings.HealthFileInterval.TotalMilliseconds);
        using var timer = new PeriodicTimer(settings.HealthFileInterval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                Touch();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping: StopAsync deletes the file
        }
    }

    private void Touch()
    {
        if (File.Exists(settings.HealthFile))
        {
            File.SetLastWriteTimeUtc(settings.HealthFile, timeProvider.GetUtcNow().UtcDateTime);
        }
        else
        {
            File.WriteAllText(settings.HealthFile, $"{Environment.ProcessId}\n");
        }
    }

    /// <summary>Waits for ApplicationStarted: true once every hosted service's StartAsync has returned.</summary>
    private async Task<bool> StartedAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var onStarted = lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        await using var onStopping = stoppingToken.Register(() => started.TrySetCanceled(stoppingToken));
        try
        {
            await started.Task;
            return true;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return false;
        }
    }
}
