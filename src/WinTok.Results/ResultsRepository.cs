using System.Data.Common;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polly;
using WinTok.ServiceDefaults;

namespace WinTok.Results;

/// <summary>
/// Jobs, partitions, item failures and metrics, on PostgreSQL or SQLite through one API. Every method is one
/// transaction wrapped in the database pipeline, and every write is idempotent, so a retried call after a lost
/// connection repeats nothing. Times come from the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed class ResultsRepository(
    ResultsDatabase database,
    TimeProvider timeProvider,
    ILogger<ResultsRepository> logger)
{
    private const string JobColumns = """
        id, kind, status, spec AS spec_json, partition_count, error, created_at, updated_at, started_at, finished_at, trace_parent
        """;

    private const string PartitionColumns = """
        job_id, partition_index AS "Partition", status, attempt, worker, lease_expires_at, heartbeat_at, started_at,
        committed_at, duration_ms, shard_path, row_count, byte_count, sha256, failures_count, error,
        spec AS spec_json, result AS result_json, items, items_done
        """;

    private const string ProgressSelect = """
        SELECT j.id, j.kind, j.status, j.error, j.created_at, j.updated_at, j.started_at, j.finished_at,
               CAST(COUNT(p.partition_index) AS integer) AS partitions,
               CAST(COALESCE(SUM(CASE WHEN p.status = 'pending' THEN 1 ELSE 0 END), 0) AS integer) AS pending,
               CAST(COALESCE(SUM(CASE WHEN p.status = 'running' THEN 1 ELSE 0 END), 0) AS integer) AS running,
               CAST(COALESCE(SUM(CASE WHEN p.status = 'committed' THEN 1 ELSE 0 END), 0) AS integer) AS committed,
               CAST(COALESCE(SUM(CASE WHEN p.status = 'failed' THEN 1 ELSE 0 END), 0) AS integer) AS failed,
               CAST(COALESCE(SUM(p.row_count), 0) AS bigint) AS "Rows",
               CAST(COALESCE(SUM(p.byte_count), 0) AS bigint) AS "Bytes",
               CAST(COALESCE(SUM(p.failures_count), 0) AS bigint) AS item_failures,
               CAST(COALESCE(SUM(p.items), 0) AS bigint) AS items,
               CAST(COALESCE(SUM(CASE WHEN p.status = 'committed' THEN COALESCE(p.row_count, 0) + p.failures_count ELSE p.items_done END), 0) AS bigint) AS items_done
        FROM jobs j LEFT JOIN partitions p ON p.job_id = j.id
        """;

    /// <summary>Records a queued job. Returns false when a job with that id already exists (a resubmission).</summary>
    public Task<bool> CreateJobAsync(NewJob job, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) =>
            InsertJobAsync(connection, transaction, job, timeProvider.GetUtcNow(), token), cancellationToken);

    /// <summary>Adds pending partitions with their specs (existing ones are left alone) and updates the job's partition count; returns how many were new.</summary>
    public Task<int> AddPartitionsAsync(Guid jobId, IReadOnlyCollection<NewPartition> partitions, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) =>
            InsertPartitionsAsync(connection, transaction, jobId, partitions, timeProvider.GetUtcNow(), token), cancellationToken);

    /// <summary>
    /// <see cref="CreateJobAsync"/>'s insert inside a caller's transaction, for repositories that record a job together
    /// with rows of their own (a schedule's slot), so the two cannot diverge.
    /// </summary>
    internal async Task<bool> InsertJobAsync(DbConnection connection, DbTransaction transaction, NewJob job, DateTimeOffset now, CancellationToken cancellationToken) =>
        await database.ExecuteAsync(connection, transaction, $"""
            INSERT INTO jobs (id, kind, status, spec, partition_count, created_at, updated_at, trace_parent)
            VALUES (@Id, @Kind, 'queued', {database.Json("@SpecJson")}, 0, @Now, @Now, @TraceParent)
            ON CONFLICT (id) DO NOTHING
            """, new { job.Id, job.Kind, job.SpecJson, Now = now, job.TraceParent }, cancellationToken) == 1;

    /// <summary><see cref="AddPartitionsAsync"/>'s inserts inside a caller's transaction.</summary>
    internal async Task<int> InsertPartitionsAsync(DbConnection connection, DbTransaction transaction, Guid jobId,
        IReadOnlyCollection<NewPartition> partitions, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var added = await database.ExecuteAsync(connection, transaction, $"""
            INSERT INTO partitions (job_id, partition_index, status, spec, items) VALUES (@JobId, @Index, 'pending', {database.Json("@SpecJson")}, @Items)
            ON CONFLICT (job_id, partition_index) DO NOTHING
            """, partitions.Select(p => new { JobId = jobId, p.Index, p.SpecJson, p.Items }), cancellationToken);
        await database.ExecuteAsync(connection, transaction, """
            UPDATE jobs SET partition_count = (SELECT COUNT(*) FROM partitions WHERE job_id = @JobId), updated_at = @Now
            WHERE id = @JobId
            """, new { JobId = jobId, Now = now }, cancellationToken);
        return added;
    }

    /// <summary>One partition, its spec and commit record included; null when there is no such partition.</summary>
    public Task<PartitionRecord?> GetPartitionAsync(Guid jobId, int partition, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => connection.QuerySingleOrDefaultAsync<PartitionRecord>(database.Command($"""
            SELECT {PartitionColumns} FROM partitions WHERE job_id = @JobId AND partition_index = @Partition
            """, new { JobId = jobId, Partition = partition }, transaction, token)), cancellationToken);

    /// <summary>
    /// Takes the partition for <paramref name="worker"/> until <paramref name="leaseDuration"/> from now when it is
    /// pending, or running under an expired lease, and the job is still queued or running. Otherwise says why not.
    /// </summary>
    public Task<PartitionClaim> TryClaimPartitionAsync(
        Guid jobId, int partition, string worker, TimeSpan leaseDuration, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var leaseUntil = now + leaseDuration;
            var attempt = await connection.QuerySingleOrDefaultAsync<int?>(database.Command($"""
                UPDATE partitions
                SET status = 'running', attempt = attempt + 1, worker = @Worker, lease_expires_at = @LeaseUntil,
                    heartbeat_at = @Now, started_at = @Now, error = NULL, items_done = 0
                WHERE job_id = @JobId AND partition_index = @Partition
                  AND (status = 'pending' OR (status = 'running' AND lease_expires_at < @Now))
                  AND EXISTS (SELECT 1 FROM jobs WHERE id = @JobId AND status IN ('queued', 'running'))
                RETURNING attempt
                """, new { JobId = jobId, Partition = partition, Worker = worker, LeaseUntil = leaseUntil, Now = now }, transaction, token));
            if (attempt is { } claimed)
            {
                await database.ExecuteAsync(connection, transaction, """
                    UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, @Now), updated_at = @Now
                    WHERE id = @JobId AND status = 'queued'
                    """, new { JobId = jobId, Now = now }, token);
                Log.ClaimedPartition(logger, jobId, partition, claimed, worker);
                return new PartitionClaim(ClaimOutcome.Claimed, claimed, worker, leaseUntil);
            }

            var current = await connection.QuerySingleOrDefaultAsync<PartitionState>(database.Command("""
                SELECT p.status, p.attempt, p.worker, p.lease_expires_at, j.status AS job_status
                FROM partitions p JOIN jobs j ON j.id = p.job_id
                WHERE p.job_id = @JobId AND p.partition_index = @Partition
                """, new { JobId = jobId, Partition = partition }, transaction, token));
            var outcome = current switch
            {
                null => ClaimOutcome.NotFound,
                { Status: PartitionStatus.Committed } => ClaimOutcome.AlreadyCommitted,
                { Status: PartitionStatus.Failed } => ClaimOutcome.Failed,
                { JobStatus: not (JobStatus.Queued or JobStatus.Running) } => ClaimOutcome.JobNotActive,
                _ => ClaimOutcome.LeasedByAnother,
            };
            return new PartitionClaim(outcome, current?.Attempt ?? 0, current?.Worker, current?.LeaseExpiresAt);
        }, cancellationToken);

    /// <summary>Extends the lease while <paramref name="worker"/> still holds the partition; false when it lost it.</summary>
    /// <remarks><paramref name="itemsDone"/> is the attempt's progress so far (images finished), shown by progress displays.</remarks>
    public Task<bool> RenewLeaseAsync(Guid jobId, int partition, string worker, TimeSpan leaseDuration, int itemsDone, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            return await database.ExecuteAsync(connection, transaction, """
                UPDATE partitions SET lease_expires_at = @LeaseUntil, heartbeat_at = @Now, items_done = @ItemsDone
                WHERE job_id = @JobId AND partition_index = @Partition AND status = 'running' AND worker = @Worker
                """, new { JobId = jobId, Partition = partition, Worker = worker, LeaseUntil = now + leaseDuration, Now = now, ItemsDone = itemsDone }, token) == 1;
        }, cancellationToken);

    /// <summary>
    /// Gives a running partition back (pending, no lease) when its holder's attempt failed and the message goes back to
    /// the queue, so the redelivery, possibly to the same worker, claims it at once instead of waiting out the lease.
    /// False when <paramref name="worker"/> no longer held it.
    /// </summary>
    public Task<bool> ReleasePartitionAsync(Guid jobId, int partition, string worker, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) => await database.ExecuteAsync(connection, transaction, """
            UPDATE partitions SET status = 'pending', worker = NULL, lease_expires_at = NULL
            WHERE job_id = @JobId AND partition_index = @Partition AND status = 'running' AND worker = @Worker
            """, new { JobId = jobId, Partition = partition, Worker = worker }, token) == 1, cancellationToken);

    /// <summary>
    /// Marks the partition committed with its shard and records its item failures, in one transaction. Committing a
    /// partition that is already committed changes nothing and returns <c>AlreadyCommitted</c> with the sha256 on record,
    /// so a redelivered message is a no-op. A commit is accepted whoever holds the lease: shard names and contents are
    /// deterministic, and the blob store's create-only upload has already settled any race.
    /// </summary>
    public Task<CommitResult> CommitPartitionAsync(PartitionCommit commit, IReadOnlyCollection<ItemFailure> failures, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var updated = await database.ExecuteAsync(connection, transaction, $"""
                UPDATE partitions
                SET status = 'committed', worker = @Worker, shard_path = @OutputPath, row_count = @RowCount, byte_count = @ByteCount,
                    sha256 = @Sha256, failures_count = @FailuresCount, committed_at = @Now, duration_ms = @DurationMs,
                    lease_expires_at = NULL, error = NULL, result = {database.Json("@ResultJson")}
                WHERE job_id = @JobId AND partition_index = @Partition AND status <> 'committed'
                """, new
                {
                    commit.JobId, commit.Partition, commit.Worker, commit.OutputPath, commit.RowCount, commit.ByteCount,
                    commit.Sha256, FailuresCount = failures.Count, Now = now, commit.DurationMs, commit.ResultJson,
                }, token);

            if (updated == 0)
            {
                var existing = await connection.QuerySingleOrDefaultAsync<PartitionRecord>(database.Command($"""
                    SELECT {PartitionColumns} FROM partitions WHERE job_id = @JobId AND partition_index = @Partition
                    """, new { commit.JobId, commit.Partition }, transaction, token))
                    ?? throw new InvalidOperationException($"Job {commit.JobId} has no partition {commit.Partition}");
                Log.PartitionAlreadyCommitted(logger, commit.JobId, commit.Partition, existing.Worker);
                return new CommitResult(AlreadyCommitted: true, existing.Sha256);
            }

            if (failures.Count > 0)
            {
                await database.ExecuteAsync(connection, transaction, """
                    INSERT INTO item_failures (job_id, partition_index, item_key, source, reason, created_at)
                    VALUES (@JobId, @Partition, @Key, @Source, @Reason, @Now)
                    ON CONFLICT (job_id, partition_index, item_key) DO NOTHING
                    """, failures.Select(f => new { commit.JobId, commit.Partition, f.Key, f.Source, f.Reason, Now = now }), token);
            }
            await database.ExecuteAsync(connection, transaction, "UPDATE jobs SET updated_at = @Now WHERE id = @JobId",
                new { commit.JobId, Now = now }, token);
            Log.CommittedPartition(logger, commit.JobId, commit.Partition, commit.RowCount, failures.Count, commit.DurationMs);
            return new CommitResult(AlreadyCommitted: false, commit.Sha256);
        }, cancellationToken);

    /// <summary>
    /// Marks a partition that is not committed as failed with <paramref name="error"/>. When that leaves no partition
    /// pending or running, the job fails too. Returns false when the partition was already committed (or absent).
    /// </summary>
    public Task<bool> MarkPartitionFailedAsync(Guid jobId, int partition, string worker, string error, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            // Lock the job row first: concurrent failures of the last two partitions then see each other.
            await connection.ExecuteScalarAsync<string>(database.Command($"SELECT status FROM jobs WHERE id = @JobId{database.ForUpdate}",
                new { JobId = jobId }, transaction, token));
            var updated = await database.ExecuteAsync(connection, transaction, """
                UPDATE partitions SET status = 'failed', worker = @Worker, error = @Error, lease_expires_at = NULL
                WHERE job_id = @JobId AND partition_index = @Partition AND status <> 'committed'
                """, new { JobId = jobId, Partition = partition, Worker = worker, Error = error, Now = now }, token);
            if (updated == 0)
            {
                return false;
            }
            Log.PartitionFailed(logger, jobId, partition, worker, error);
            await database.ExecuteAsync(connection, transaction, """
                UPDATE jobs
                SET status = 'failed', finished_at = @Now, updated_at = @Now,
                    error = (SELECT COUNT(*) FROM partitions WHERE job_id = @JobId AND status = 'failed') || ' of ' || partition_count || ' partitions failed'
                WHERE id = @JobId AND status IN ('queued', 'running')
                  AND NOT EXISTS (SELECT 1 FROM partitions WHERE job_id = @JobId AND status IN ('pending', 'running'))
                """, new { JobId = jobId, Now = now }, token);
            return true;
        }, cancellationToken);

    /// <summary>
    /// Marks the job succeeded when every partition is committed. Returns true to exactly one caller: the job row is
    /// updated only while still queued or running, and concurrent callers serialize on that row. The tokenize handler
    /// writes the manifest first and calls this after, so a succeeded job always has its manifest; it does so after
    /// every commit, including an <c>AlreadyCommitted</c> one, so a worker that died in between is covered by the
    /// redelivery.
    /// </summary>
    public Task<bool> TryCompleteJobAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var completed = await database.ExecuteAsync(connection, transaction, """
                UPDATE jobs SET status = 'succeeded', finished_at = @Now, updated_at = @Now, error = NULL
                WHERE id = @JobId AND status IN ('queued', 'running')
                  AND EXISTS (SELECT 1 FROM partitions WHERE job_id = @JobId)
                  AND NOT EXISTS (SELECT 1 FROM partitions WHERE job_id = @JobId AND status <> 'committed')
                """, new { JobId = jobId, Now = now }, token) == 1;
            if (completed)
            {
                Log.CompletedJob(logger, jobId);
            }
            return completed;
        }, cancellationToken);

    /// <summary>Cancels a queued or running job; running partitions may still commit. False when it had already ended.</summary>
    public Task<bool> CancelJobAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var cancelled = await database.ExecuteAsync(connection, transaction, """
                UPDATE jobs SET status = 'cancelled', finished_at = @Now, updated_at = @Now
                WHERE id = @JobId AND status IN ('queued', 'running')
                """, new { JobId = jobId, Now = now }, token) == 1;
            if (cancelled)
            {
                Log.CancelledJob(logger, jobId);
            }
            return cancelled;
        }, cancellationToken);

    /// <summary>
    /// Reopens a failed or cancelled job for retry: failed partitions, running ones whose lease expired and running ones
    /// held by <paramref name="deadWorkers"/> (workers known to be gone, e.g. an interrupted local run) go back to
    /// pending, the job back to queued. Returns every partition now pending, which the caller publishes again (committed
    /// ones are never redone). Empty when the job is not failed or cancelled.
    /// </summary>
    public Task<IReadOnlyList<int>> ResetFailedPartitionsAsync(Guid jobId, IReadOnlyCollection<string> deadWorkers, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<int>>(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            var reopened = await database.ExecuteAsync(connection, transaction, """
                UPDATE jobs SET status = 'queued', error = NULL, finished_at = NULL, updated_at = @Now
                WHERE id = @JobId AND status IN ('failed', 'cancelled')
                """, new { JobId = jobId, Now = now }, token);
            if (reopened == 0)
            {
                return [];
            }
            await database.ExecuteAsync(connection, transaction, """
                UPDATE partitions SET status = 'pending', worker = NULL, lease_expires_at = NULL
                WHERE job_id = @JobId AND (status = 'failed' OR (status = 'running' AND lease_expires_at < @Now))
                """, new { JobId = jobId, Now = now }, token);
            foreach (var worker in deadWorkers)
            {
                await database.ExecuteAsync(connection, transaction, """
                    UPDATE partitions SET status = 'pending', worker = NULL, lease_expires_at = NULL
                    WHERE job_id = @JobId AND status = 'running' AND worker = @Worker
                    """, new { JobId = jobId, Worker = worker }, token);
            }
            var pending = await connection.QueryAsync<int>(database.Command("""
                SELECT partition_index FROM partitions WHERE job_id = @JobId AND status = 'pending' ORDER BY partition_index
                """, new { JobId = jobId }, transaction, token));
            return pending.ToList();
        }, cancellationToken);

    /// <summary>
    /// The ids of the jobs whose id starts with <paramref name="prefix"/> (hex digits and dashes, as printed), at most
    /// two: callers accept a unique prefix as git does and name the ambiguity otherwise.
    /// </summary>
    public Task<IReadOnlyList<Guid>> FindJobIdsAsync(string prefix, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<Guid>>(async (connection, transaction, token) => (await connection.QueryAsync<Guid>(database.Command("""
            SELECT id FROM jobs WHERE CAST(id AS TEXT) LIKE @Pattern ORDER BY created_at DESC LIMIT 2
            """, new { Pattern = prefix.ToLowerInvariant() + "%" }, transaction, token))).ToList(), cancellationToken);

    public Task<JobRecord?> GetJobAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => connection.QuerySingleOrDefaultAsync<JobRecord>(database.Command(
            $"SELECT {JobColumns} FROM jobs WHERE id = @JobId", new { JobId = jobId }, transaction, token)), cancellationToken);

    public Task<JobProgress?> GetJobProgressAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => connection.QuerySingleOrDefaultAsync<JobProgress>(database.Command($"""
            {ProgressSelect}
            WHERE j.id = @JobId
            GROUP BY j.id, j.kind, j.status, j.error, j.created_at, j.updated_at, j.started_at, j.finished_at
            """, new { JobId = jobId }, transaction, token)), cancellationToken);

    /// <summary>The newest jobs first, with progress; optionally only those in <paramref name="status"/>.</summary>
    public Task<IReadOnlyList<JobProgress>> ListJobsAsync(int limit, string? status, CancellationToken cancellationToken) =>
        ListJobsAsync(limit, status, kind: null, cancellationToken);

    /// <summary>The newest jobs first, with progress; optionally only those in <paramref name="status"/> and of <paramref name="kind"/>.</summary>
    public Task<IReadOnlyList<JobProgress>> ListJobsAsync(int limit, string? status, string? kind, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<JobProgress>>(async (connection, transaction, token) => (await connection.QueryAsync<JobProgress>(database.Command($"""
            {ProgressSelect}
            WHERE (CAST(@Status AS TEXT) IS NULL OR j.status = @Status) AND (CAST(@Kind AS TEXT) IS NULL OR j.kind = @Kind)
            GROUP BY j.id, j.kind, j.status, j.error, j.created_at, j.updated_at, j.started_at, j.finished_at
            ORDER BY j.created_at DESC
            LIMIT @Limit
            """, new { Limit = limit, Status = status, Kind = kind }, transaction, token))).ToList(), cancellationToken);

    /// <summary>All partitions of a job in index order (the manifest lists the committed ones).</summary>
    public Task<IReadOnlyList<PartitionRecord>> ListPartitionsAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<PartitionRecord>>(async (connection, transaction, token) => (await connection.QueryAsync<PartitionRecord>(database.Command($"""
            SELECT {PartitionColumns} FROM partitions WHERE job_id = @JobId ORDER BY partition_index
            """, new { JobId = jobId }, transaction, token))).ToList(), cancellationToken);

    public Task<IReadOnlyList<ItemFailureRecord>> ListItemFailuresAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<ItemFailureRecord>>(async (connection, transaction, token) => (await connection.QueryAsync<ItemFailureRecord>(database.Command("""
            SELECT job_id, partition_index AS "Partition", item_key AS "Key", source, reason, created_at
            FROM item_failures WHERE job_id = @JobId ORDER BY partition_index, item_key
            """, new { JobId = jobId }, transaction, token))).ToList(), cancellationToken);

    public Task<long> RecordMetricAsync(NewMetric metric, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => connection.ExecuteScalarAsync<long>(database.Command($"""
            INSERT INTO metrics (job_id, checkpoint, metric_name, metric_value, details, created_at)
            VALUES (@JobId, @Checkpoint, @Name, @Value, {database.Json("@DetailsJson")}, @Now)
            RETURNING id
            """, new { metric.JobId, metric.Checkpoint, metric.Name, metric.Value, metric.DetailsJson, Now = timeProvider.GetUtcNow() }, transaction, token)),
            cancellationToken);

    public Task<IReadOnlyList<MetricRecord>> ListMetricsAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<MetricRecord>>(async (connection, transaction, token) => (await connection.QueryAsync<MetricRecord>(database.Command("""
            SELECT id, job_id, checkpoint, metric_name AS "Name", metric_value AS "Value", details AS details_json, created_at
            FROM metrics WHERE job_id = @JobId ORDER BY id
            """, new { JobId = jobId }, transaction, token))).ToList(), cancellationToken);

    private sealed class PartitionState
    {
        public string Status { get; init; } = "";
        public int Attempt { get; init; }
        public string? Worker { get; init; }
        public DateTimeOffset? LeaseExpiresAt { get; init; }
        public string JobStatus { get; init; } = "";
    }
}
