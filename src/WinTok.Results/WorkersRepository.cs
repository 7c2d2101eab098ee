using Dapper;

namespace WinTok.Results;

/// <summary>
/// The <c>workers</c> table: each worker process upserts its row with every heartbeat; the dashboard lists them.
/// Rows are never deleted by workers, so a crashed worker stays visible as gone until <see cref="ForgetAsync"/>.
/// </summary>
public sealed class WorkersRepository(ResultsDatabase database, TimeProvider timeProvider)
{
    /// <summary>Records <paramref name="heartbeat"/> as of now: inserts the worker's row or replaces it.</summary>
    public Task<int> HeartbeatAsync(WorkerHeartbeat heartbeat, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => database.ExecuteAsync(connection, transaction, """
            INSERT INTO workers (name, host, pid, started_at, heartbeat_at, state, job_id, partition, images_per_second, gpu_memory_mib)
            VALUES (@Name, @Host, @Pid, @StartedAt, @Now, @State, @JobId, @Partition, @ImagesPerSecond, @GpuMemoryMib)
            ON CONFLICT (name) DO UPDATE SET
                host = excluded.host, pid = excluded.pid, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
                state = excluded.state, job_id = excluded.job_id, partition = excluded.partition,
                images_per_second = excluded.images_per_second, gpu_memory_mib = excluded.gpu_memory_mib
            """, new
            {
                heartbeat.Name, heartbeat.Host, heartbeat.Pid, heartbeat.StartedAt, Now = timeProvider.GetUtcNow(), heartbeat.State,
                heartbeat.JobId, heartbeat.Partition, heartbeat.ImagesPerSecond, heartbeat.GpuMemoryMib,
            }, token), cancellationToken);

    /// <summary>Workers whose last heartbeat is at or after <paramref name="since"/>, most recent first.</summary>
    public Task<IReadOnlyList<WorkerRecord>> ListAsync(DateTimeOffset since, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<WorkerRecord>>(async (connection, transaction, token) => (await connection.QueryAsync<WorkerRecord>(database.Command("""
            SELECT name, host, pid, started_at, heartbeat_at, state, job_id, partition, images_per_second, gpu_memory_mib
            FROM workers WHERE heartbeat_at >= @Since ORDER BY heartbeat_at DESC, name
            """, new { Since = since }, transaction, token))).ToList(), cancellationToken);

    /// <summary>Deletes the rows of workers silent since before <paramref name="before"/>; returns how many.</summary>
    public Task<int> ForgetAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
        database.InTransactionAsync((connection, transaction, token) => database.ExecuteAsync(connection, transaction,
            "DELETE FROM workers WHERE heartbeat_at < @Before", new { Before = before }, token), cancellationToken);
}
