using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.Timeout;
using WinTok.Dashboard.Queries;
using WinTok.Results;

namespace WinTok.Dashboard.Telemetry;

/// <summary>
/// Gauges read from the results database (meter <c>WinTok.Dashboard</c>): jobs by state, workers alive, the latest
/// value of each evaluation metric per schedule (or checkpoint) and dataset, and regressions per metric. Prometheus sees
/// <c>wintok_jobs{status}</c>, <c>wintok_workers_alive</c>, <c>wintok_evaluation_metric{metric,dataset,schedule,checkpoint}</c>
/// and <c>wintok_evaluation_regressions{metric,schedule}</c>. A scrape never waits on the database: a timer refreshes a
/// snapshot every <c>Dashboard:GaugeRefreshInterval</c> and the gauges read it.
/// </summary>
internal sealed class DashboardGauges : BackgroundService
{
    public const string MeterName = "WinTok.Dashboard";

    private readonly ResultsRepository results;
    private readonly EvaluationsRepository evaluations;
    private readonly WorkersRepository workers;
    private readonly DashboardQueries queries;
    private readonly DashboardOptions options;
    private readonly TimeProvider timeProvider;
    private readonly ILogger<DashboardGauges> logger;
    private volatile Snapshot current = new(new Dictionary<string, long>(), 0, [], []);

    public DashboardGauges(ResultsRepository results, EvaluationsRepository evaluations, WorkersRepository workers, DashboardQueries queries,
        IOptions<DashboardOptions> options, IMeterFactory meters, TimeProvider timeProvider, ILogger<DashboardGauges> logger)
    {
        (this.results, this.evaluations, this.workers, this.queries) = (results, evaluations, workers, queries);
        (this.options, this.timeProvider, this.logger) = (options.Value, timeProvider, logger);
        var meter = meters.Create(MeterName);
        meter.CreateObservableGauge("wintok.jobs", () => current.Jobs.Select(j =>
            new Measurement<long>(j.Value, new KeyValuePair<string, object?>("status", j.Key))), "{job}", "Jobs by state");
        meter.CreateObservableGauge("wintok.workers.alive", () => current.WorkersAlive, "{worker}", "Workers whose heartbeat is recent");
        meter.CreateObservableGauge("wintok.evaluation.metric", () => current.Metrics, description: "The latest value of each evaluation metric");
        meter.CreateObservableGauge("wintok.evaluation.regressions", () => current.Regressions, "{regression}", "Regressions recorded by the scheduler");
    }

    private sealed record Snapshot(IReadOnlyDictionary<string, long> Jobs, long WorkersAlive, IReadOnlyList<Measurement<double>> Metrics,
        IReadOnlyList<Measurement<long>> Regressions);

    /// <summary>Reads the snapshot once now (the first scrape sees data), then refreshes it on a timer.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.GaugeRefreshInterval, timeProvider);
        try
        {
            do
            {
                await RefreshAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping
        }
    }

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            var now = timeProvider.GetUtcNow();
            var jobs = await queries.CountJobsByStatusAsync(cancellationToken);
            var alive = (await workers.ListAsync(now - options.WorkerHeartbeatInterval * 3, cancellationToken))
                .LongCount(w => w.IsAlive(now, options.WorkerHeartbeatInterval));
            var latest = (await evaluations.ListAsync(new EvaluationFilter(), cancellationToken))
                .SelectMany(e => e.Metrics.Select(m => (Evaluation: e, Metric: m.Key, m.Value)))
                .GroupBy(v => (Series: v.Evaluation.ScheduleName ?? v.Evaluation.CheckpointSha256, v.Evaluation.DatasetName, v.Metric))
                .Select(g => g.MaxBy(v => v.Evaluation.CreatedAt))
                .Select(v => new Measurement<double>(v.Value,
                    new KeyValuePair<string, object?>("metric", v.Metric),
                    new KeyValuePair<string, object?>("dataset", v.Evaluation.DatasetName),
                    new KeyValuePair<string, object?>("schedule", v.Evaluation.ScheduleName ?? ""),
                    new KeyValuePair<string, object?>("checkpoint", v.Evaluation.CheckpointSha256[..Math.Min(12, v.Evaluation.CheckpointSha256.Length)])))
                .ToList();
            var regressions = (await queries.ListRegressionsAsync(null, 10_000, cancellationToken))
                .GroupBy(r => (r.Metric, Schedule: r.ScheduleName ?? ""))
                .Select(g => new Measurement<long>(g.Count(),
                    new KeyValuePair<string, object?>("metric", g.Key.Metric), new KeyValuePair<string, object?>("schedule", g.Key.Schedule)))
                .ToList();
            current = new Snapshot(jobs, alive, latest, regressions);
        }
        catch (Exception exception) when (ResultsDatabase.IsTransient(exception) || exception is TimeoutRejectedException)
        {
            Log.GaugeRefreshFailed(logger, exception);
        }
    }
}
