using Azure.Storage.Blobs;
using Microsoft.Extensions.Options;
using WinTok.Dashboard.Queries;
using WinTok.Data.Corpus;
using WinTok.Jobs.Evaluate;
using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>Reads what the pages and the API show, the same way for both.</summary>
internal sealed class DashboardReader(
    ResultsRepository results,
    EvaluationsRepository evaluations,
    WorkersRepository workers,
    DashboardQueries queries,
    DashboardMode mode,
    IOptions<DashboardOptions> options,
    TimeProvider timeProvider,
    BlobServiceClient? blobService = null)
{
    /// <summary>The file an evaluation job writes its reconstruction grid to, in its output location.</summary>
    public const string GridFile = "grid.png";

    /// <summary>At most this many item failures on a job's page (all of them at /api/jobs/{id}/failures).</summary>
    public const int FailuresShown = 500;

    /// <summary>Workers silent for longer than this are not listed.</summary>
    private static readonly TimeSpan WorkerHistory = TimeSpan.FromDays(1);

    public DateTimeOffset Now => timeProvider.GetUtcNow();

    public async Task<JobsView> JobsAsync(string? status, string? kind, int limit, CancellationToken cancellationToken)
    {
        var jobs = await results.ListJobsAsync(limit, status, kind, cancellationToken);
        var now = Now;
        return new JobsView(jobs.Select(j => new JobRow(j, JobRates.Of(j, now))).ToList(), status, kind, limit);
    }

    /// <summary>The job a full id or a unique prefix (at least 4 hex digits) names; null when none or several.</summary>
    public async Task<Guid?> ResolveAsync(string id, CancellationToken cancellationToken)
    {
        if (Guid.TryParse(id, out var full)) return full;
        if (id.Length < 4 || !id.All(c => Uri.IsHexDigit(c) || c == '-')) return null;
        var matches = await results.FindJobIdsAsync(id, cancellationToken);
        return matches.Count == 1 ? matches[0] : null;
    }

    public async Task<JobView?> JobAsync(Guid jobId, string? notice, CancellationToken cancellationToken)
    {
        var job = await results.GetJobAsync(jobId, cancellationToken);
        var progress = await results.GetJobProgressAsync(jobId, cancellationToken);
        if (job is null || progress is null) return null;
        var partitions = await results.ListPartitionsAsync(jobId, cancellationToken);
        var failures = await results.ListItemFailuresAsync(jobId, cancellationToken);
        var ended = job.Status is JobStatus.Failed or JobStatus.Cancelled;
        var refusal = RetryRefusal(jobId);
        var hasEvaluation = job.Kind == EvaluateJobSpec.JobKind && await evaluations.GetAsync(jobId, cancellationToken) is not null;
        return new JobView(job, progress, JobRates.Of(progress, Now), SpecSummary.Of(job.SpecJson), partitions,
            failures.Take(FailuresShown).ToList(), CanCancel: job.Status is JobStatus.Queued or JobStatus.Running,
            CanRetry: ended && refusal is null, refusal, notice, hasEvaluation);
    }

    public Task<IReadOnlyList<ItemFailureRecord>> FailuresAsync(Guid jobId, CancellationToken cancellationToken) =>
        results.ListItemFailuresAsync(jobId, cancellationToken);

    /// <summary>Why this dashboard cannot retry jobs, and the command that can; null when it can.</summary>
    public RetryRefusal? RetryRefusal(Guid jobId) => mode switch
    {
        { LocalDatabase: { } path } => new RetryRefusal(
            "this is a local job's database, and no worker reads it: the retry has to run the partitions in a wintok process.",
            $"wintok jobs retry {jobId} --db {path}"),
        { CanPublish: false } => new RetryRefusal(
            "this dashboard has no job queue to publish to (set WINTOK_RABBITMQ, as the workers have).", $"wintok jobs retry {jobId}"),
        _ => null,
    };

    public async Task<IReadOnlyList<WorkerRow>> WorkersAsync(CancellationToken cancellationToken)
    {
        var now = Now;
        var interval = options.Value.WorkerHeartbeatInterval;
        return (await workers.ListAsync(now - WorkerHistory, cancellationToken))
            .Select(w => WorkerRow.Of(w, now, interval))
            .OrderByDescending(r => r.Alive).ThenBy(r => r.Worker.Name, StringComparer.Ordinal)
            .ToList();
    }

    public async Task<EvaluationsView> EvaluationsAsync(EvaluationQuery query, CancellationToken cancellationToken)
    {
        var found = await evaluations.ListAsync(query.ToFilter(), cancellationToken);
        var regressions = await queries.ListRegressionsAsync(found.Select(e => e.JobId).ToList(), 1000, cancellationToken);
        var flagged = regressions.Select(r => (r.JobId, r.Metric)).ToHashSet();
        var (plots, note) = Trends.Build(found, flagged, query.ByIteration);
        var schedules = (await evaluations.ListAsync(new EvaluationFilter(), cancellationToken))
            .Where(e => e.ScheduleName is not null).GroupBy(e => e.ScheduleName!)
            .Select(g => (g.Key, g.Count())).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
        return new EvaluationsView(query, found.Reverse().ToList(), MetricCatalog.Order(found.SelectMany(e => e.Metrics.Keys)), plots, note,
            schedules, flagged, regressions.Take(20).ToList());
    }

    public async Task<EvaluationView?> EvaluationAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var evaluation = await evaluations.GetAsync(jobId, cancellationToken);
        if (evaluation is null) return null;
        var regressions = await queries.ListRegressionsAsync([jobId], 100, cancellationToken);
        return new EvaluationView(evaluation, regressions, await GridExistsAsync(jobId, cancellationToken));
    }

    public async Task<CompareView?> CompareAsync(Guid a, Guid b, CancellationToken cancellationToken)
    {
        var (left, right) = (await evaluations.GetAsync(a, cancellationToken), await evaluations.GetAsync(b, cancellationToken));
        if (left is null || right is null) return null;
        return new CompareView(left, right, CompareView.Compare(left, right),
            await GridExistsAsync(a, cancellationToken), await GridExistsAsync(b, cancellationToken));
    }

    /// <summary>
    /// The evaluation's reconstruction grid, read from its job's output location (a folder or a blob prefix); null when
    /// the job is not an evaluation or has no grid.
    /// </summary>
    public async Task<Stream?> OpenGridAsync(Guid jobId, CancellationToken cancellationToken)
    {
        if (await GridStoreAsync(jobId, cancellationToken) is not { } store) return null;
        try
        {
            return await store.OpenReadAsync(GridFile, cancellationToken);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private async Task<bool> GridExistsAsync(Guid jobId, CancellationToken cancellationToken) =>
        await GridStoreAsync(jobId, cancellationToken) is { } store && await store.GetInfoAsync(GridFile, cancellationToken) is not null;

    private async Task<IFileStore?> GridStoreAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var job = await results.GetJobAsync(jobId, cancellationToken);
        if (job is null || job.Kind != EvaluateJobSpec.JobKind) return null;
        var output = EvaluateJobSpec.FromJson(job.SpecJson).Output;
        // A blob output without a configured blob account cannot be read from here: no grid rather than an error page.
        return FileStores.IsBlobLocation(output) && blobService is null ? null : FileStores.Open(output, blobService);
    }
}
