using System.Data.Common;
using System.Diagnostics;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Polly;
using WinTok.ServiceDefaults;

namespace WinTok.Results;

/// <summary>
/// Applies <see cref="ResultsMigrations"/> in one transaction. Safe when several workers start at once: PostgreSQL
/// serializes them on a transaction-scoped advisory lock, SQLite on its write lock (BEGIN IMMEDIATE); whoever comes
/// second finds the versions recorded and applies nothing.
/// </summary>
public sealed class ResultsDatabaseMigrator(
    ResultsDatabase database,
    [FromKeyedServices(ResultsDatabase.PipelineKey)] ResiliencePipeline pipeline,
    ILogger<ResultsDatabaseMigrator> logger)
{
    // Any constant unique to this application; "WinTok" in ASCII.
    private const long AdvisoryLockKey = 0x57696E546F6B;

    /// <summary>Applies pending migrations; returns how many this call applied.</summary>
    public Task<int> MigrateAsync(CancellationToken cancellationToken) =>
        pipeline.ExecuteAsync(async token => await MigrateOnceAsync(token), cancellationToken).AsTask();

    private async Task<int> MigrateOnceAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        Log.MigratingResultsDatabase(logger, database.Provider.ToString());
        await using var connection = await database.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        if (database.IsPostgres)
        {
            await ExecuteAsync(connection, transaction, "SELECT pg_advisory_xact_lock(@Key)", new { Key = AdvisoryLockKey }, cancellationToken);
        }
        await ExecuteAsync(connection, transaction, database.IsPostgres
            ? "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
            : "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
            null, cancellationToken);

        var applied = (await connection.QueryAsync<int>(new CommandDefinition(
            "SELECT version FROM schema_migrations", transaction: transaction, cancellationToken: cancellationToken))).ToHashSet();

        var count = 0;
        foreach (var migration in ResultsMigrations.All.Where(m => !applied.Contains(m.Version)).OrderBy(m => m.Version))
        {
            await ExecuteAsync(connection, transaction, database.IsPostgres ? migration.Postgres : migration.Sqlite, null, cancellationToken);
            await ExecuteAsync(connection, transaction,
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@Version, @Name, @AppliedAt)",
                new { migration.Version, migration.Name, AppliedAt = DateTimeOffset.UtcNow }, cancellationToken);
            Log.AppliedMigration(logger, migration.Version, migration.Name);
            count++;
        }
        await transaction.CommitAsync(cancellationToken);
        Log.MigratedResultsDatabase(logger, count, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return count;
    }

    private Task<int> ExecuteAsync(DbConnection connection, DbTransaction transaction, string sql, object? parameters, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition(sql, parameters, transaction, database.CommandTimeoutSeconds, cancellationToken: cancellationToken));
}
