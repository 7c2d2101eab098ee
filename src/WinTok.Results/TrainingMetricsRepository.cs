using Dapper;

namespace WinTok.Results;

/// <summary>One recorded value of a training run: a loss, a learning rate or a gradient norm at an iteration.</summary>
public sealed record TrainingMetric(long Iteration, string Name, double Value);

/// <summary>
/// A training run's losses and learning rates by iteration (table <c>training_metrics</c>, migration 6), written every
/// <c>log_every</c> iterations by the worker that trains, read by progress displays, <c>wintok jobs show</c> and the
/// dashboard. Recording is idempotent: a resumed run that repeats iterations after its last checkpoint overwrites them
/// with what it computed the second time.
/// </summary>
public sealed class TrainingMetricsRepository(ResultsDatabase database, TimeProvider timeProvider)
{
    public Task RecordAsync(Guid jobId, long iteration, IReadOnlyDictionary<string, double> values, CancellationToken cancellationToken) =>
        database.InTransactionAsync(async (connection, transaction, token) =>
        {
            var now = timeProvider.GetUtcNow();
            await database.ExecuteAsync(connection, transaction, """
                INSERT INTO training_metrics (job_id, iteration, name, value, created_at) VALUES (@JobId, @Iteration, @Name, @Value, @Now)
                ON CONFLICT (job_id, name, iteration) DO UPDATE SET value = excluded.value, created_at = excluded.created_at
                """, values.Where(pair => double.IsFinite(pair.Value))
                    .Select(pair => new { JobId = jobId, Iteration = iteration, Name = pair.Key, pair.Value, Now = now }), token);
            return true;
        }, cancellationToken);

    /// <summary>The values of the newest recorded iteration, or null when none is recorded yet.</summary>
    public Task<(long Iteration, IReadOnlyDictionary<string, double> Values)?> LatestAsync(Guid jobId, CancellationToken cancellationToken) =>
        database.InTransactionAsync<(long, IReadOnlyDictionary<string, double>)?>(async (connection, transaction, token) =>
        {
            var rows = (await connection.QueryAsync<(long Iteration, string Name, double Value)>(database.Command("""
                SELECT iteration, name, value FROM training_metrics
                WHERE job_id = @JobId AND iteration = (SELECT MAX(iteration) FROM training_metrics WHERE job_id = @JobId)
                """, new { JobId = jobId }, transaction, token))).ToList();
            return rows.Count == 0 ? null : (rows[0].Iteration, rows.ToDictionary(r => r.Name, r => r.Value));
        }, cancellationToken);

    /// <summary>Every value of <paramref name="name"/> (or of every name when null), by iteration.</summary>
    public Task<IReadOnlyList<TrainingMetric>> ListAsync(Guid jobId, string? name, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<TrainingMetric>>(async (connection, transaction, token) =>
            (await connection.QueryAsync<TrainingMetric>(database.Command(name is null
                ? "SELECT iteration, name, value FROM training_metrics WHERE job_id = @JobId ORDER BY iteration, name"
                : "SELECT iteration, name, value FROM training_metrics WHERE job_id = @JobId AND name = @Name ORDER BY iteration",
                new { JobId = jobId, Name = name }, transaction, token))).ToList(), cancellationToken);
}
