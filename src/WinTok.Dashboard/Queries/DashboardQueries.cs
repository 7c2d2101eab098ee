using Dapper;
using WinTok.Results;

namespace WinTok.Dashboard.Queries;

/// <summary>
/// The dashboard's own read-only queries, beside the repositories': job counts for the gauges and the scheduler's
/// <c>regressions</c> table, which may not exist yet (a database migrated before the scheduler's migration): then
/// there are simply no regressions.
/// </summary>
internal sealed class DashboardQueries(ResultsDatabase database)
{
    /// <summary>How many jobs are in each state.</summary>
    public Task<IReadOnlyDictionary<string, long>> CountJobsByStatusAsync(CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyDictionary<string, long>>(async (connection, transaction, token) =>
            (await connection.QueryAsync<(string Status, long Count)>(database.Command(
                "SELECT status, CAST(COUNT(*) AS bigint) FROM jobs GROUP BY status", null, transaction, token)))
            .ToDictionary(row => row.Status, row => row.Count), cancellationToken);

    /// <summary>
    /// Regressions, newest first: of the given evaluation jobs when <paramref name="jobIds"/> is set, else all (up to
    /// <paramref name="limit"/>). Empty when the table does not exist.
    /// </summary>
    public Task<IReadOnlyList<RegressionRecord>> ListRegressionsAsync(IReadOnlyCollection<Guid>? jobIds, int limit, CancellationToken cancellationToken) =>
        database.InTransactionAsync<IReadOnlyList<RegressionRecord>>(async (connection, transaction, token) =>
        {
            var exists = await connection.ExecuteScalarAsync<long>(database.Command(database.IsPostgres
                ? "SELECT CASE WHEN to_regclass('regressions') IS NULL THEN 0 ELSE 1 END"
                : "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'regressions'", null, transaction, token));
            if (exists == 0 || jobIds is { Count: 0 }) return [];
            var where = jobIds is null ? "" : database.IsPostgres ? "WHERE job_id = ANY(@Jobs)" : "WHERE job_id IN @Jobs";
            return (await connection.QueryAsync<RegressionRecord>(database.Command($"""
                SELECT id, job_id, schedule_name, checkpoint_sha256, metric, value, baseline_value, baseline_job_id, threshold,
                       direction, created_at, notified_at
                FROM regressions {where}
                ORDER BY created_at DESC
                LIMIT @Limit
                """, new { Jobs = jobIds is null ? null : database.JobIdList(jobIds), Limit = limit }, transaction, token))).ToList();
        }, cancellationToken);
}
