using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.Timeout;
using WinTok.Results;
using WinTok.Worker.Telemetry;
using WinTok.Worker.Tokenize;

namespace WinTok.Worker.Hosting;

/// <summary>
/// Upserts this worker's row in <c>workers</c> every <c>Worker:HeartbeatInterval</c>: its state (idle, busy, stopping),
/// the partition in hand, images per second since the last beat and GPU memory, so the dashboard shows who is alive
/// and what each is doing. A beat that fails on the database is logged and skipped: the heartbeat never stops a worker.
/// </summary>
internal sealed class WorkerHeartbeatService(
    WorkersRepository workers,
    WorkerStatus status,
    TokenizeProgress progress,
    GpuMemoryProbe gpu,
    IOptions<WorkerOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider timeProvider,
    ILogger<WorkerHeartbeatService> logger) : BackgroundService
{
    private readonly WorkerOptions settings = options.Value;
    private readonly DateTimeOffset startedAt = timeProvider.GetUtcNow();
    private (long Images, long Timestamp)? previous;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // The last word: stopping, so the dashboard does not wait three intervals to see this worker go.
        status.Stopping();
        await BeatAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await using var onStopping = lifetime.ApplicationStopping.Register(status.Stopping);
        using var timer = new PeriodicTimer(settings.HeartbeatInterval, timeProvider);
        try
        {
            do
            {
                await gpu.PollAsync(stoppingToken);
                await BeatAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping: StopAsync writes the last beat
        }
    }

    private async Task BeatAsync(CancellationToken cancellationToken)
    {
        var (state, jobId, partition) = status.Current();
        var gpuMemory = gpu.Latest.Count == 0 ? (long?)null : gpu.Latest.Sum(g => g.UsedMib);
        var heartbeat = new WorkerHeartbeat(settings.WorkerName, Environment.MachineName, Environment.ProcessId, startedAt, state,
            jobId, partition, ImagesPerSecond(), gpuMemory);
        try
        {
            await workers.HeartbeatAsync(heartbeat, cancellationToken);
        }
        catch (Exception exception) when (ResultsDatabase.IsTransient(exception) || exception is TimeoutRejectedException)
        {
            Log.HeartbeatFailed(logger, exception, settings.WorkerName);
        }
    }

    /// <summary>Images finished since the previous beat, per second of wall time; null on the first beat.</summary>
    private double? ImagesPerSecond()
    {
        var now = (Images: progress.Images, Timestamp: timeProvider.GetTimestamp());
        var last = previous;
        previous = now;
        if (last is not { } before) return null;
        var seconds = timeProvider.GetElapsedTime(before.Timestamp, now.Timestamp).TotalSeconds;
        return seconds <= 0 ? null : (now.Images - before.Images) / seconds;
    }
}
