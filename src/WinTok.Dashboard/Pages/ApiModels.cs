using System.Text.Json;
using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>A job in the API: its progress and speed (<c>GET /api/jobs</c>).</summary>
public sealed record ApiJob(
    Guid Id, string Kind, string Status, string? Error, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt,
    int Partitions, int Pending, int Running, int Committed, int Failed, long Items, long ItemsDone, long Rows, long Bytes,
    long ItemFailures, double? ImagesPerSecond, double? EtaSeconds)
{
    public static ApiJob Of(JobProgress job, JobRates rates) => new(job.Id, job.Kind, job.Status, job.Error, job.CreatedAt, job.StartedAt,
        job.FinishedAt, job.Partitions, job.Pending, job.Running, job.Committed, job.Failed, job.Items, job.ItemsDone, job.Rows, job.Bytes,
        job.ItemFailures, rates.ImagesPerSecond, rates.Eta?.TotalSeconds);
}

/// <summary>A partition in the API.</summary>
public sealed record ApiPartition(int Partition, string Status, string? Worker, int Attempt, long? DurationMs, long? Rows,
    int FailedItems, int Items, int ItemsDone, string? OutputPath, string? Error)
{
    public static ApiPartition Of(PartitionRecord p) =>
        new(p.Partition, p.Status, p.Worker, p.Attempt, p.DurationMs, p.RowCount, p.FailuresCount, p.Items, p.ItemsDone, p.ShardPath, p.Error);
}

/// <summary>A recorded item failure in the API.</summary>
public sealed record ApiFailure(int Partition, string Key, string Reason, string Source)
{
    public static ApiFailure Of(ItemFailureRecord f) => new(f.Partition, f.Key, f.Reason, f.Source);
}

/// <summary>One job with its spec, partitions and (the first) failures (<c>GET /api/jobs/{id}</c>).</summary>
public sealed record ApiJobDetails(ApiJob Job, JsonElement Spec, IReadOnlyList<ApiPartition> Partitions, IReadOnlyList<ApiFailure> Failures,
    bool CanCancel, bool CanRetry, RetryRefusal? RetryRefusal);

/// <summary>The outcome of an action (<c>POST /api/jobs/{id}/cancel|retry</c>).</summary>
public sealed record ApiActionResult(Guid JobId, string Action, IReadOnlyList<int>? Partitions = null);

/// <summary>A worker in the API.</summary>
public sealed record ApiWorker(string Name, string Host, int Pid, bool Alive, string State, Guid? JobId, int? Partition,
    double? ImagesPerSecond, long? GpuMemoryMib, DateTimeOffset HeartbeatAt, DateTimeOffset StartedAt)
{
    public static ApiWorker Of(WorkerRow row) => new(row.Worker.Name, row.Worker.Host, row.Worker.Pid, row.Alive, row.Worker.State,
        row.Worker.JobId, row.Worker.Partition, row.Worker.ImagesPerSecond, row.Worker.GpuMemoryMib, row.Worker.HeartbeatAt, row.Worker.StartedAt);
}
