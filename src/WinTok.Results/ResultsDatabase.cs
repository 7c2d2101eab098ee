using System.Data.Common;
using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Polly;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;

namespace WinTok.Results;

/// <summary>
/// Opens connections to the results database and holds the few SQL fragments that differ between PostgreSQL and
/// SQLite. PostgreSQL connections come from the one <see cref="NpgsqlDataSource"/> (pooled); SQLite ones are opened
/// per call in WAL mode with foreign keys on.
/// </summary>
public sealed class ResultsDatabase(
    IOptions<ResultsDatabaseOptions> options,
    [FromKeyedServices(ResultsDatabase.PipelineKey)] ResiliencePipeline pipeline,
    IServiceProvider services)
{
    /// <summary>The name of the database's retry pipeline (<c>Resilience:Database</c>).</summary>
    public const string PipelineKey = "Database";

    private readonly ResultsDatabaseOptions settings = options.Value;
    private int sqliteInitialized;

    public ResultsProvider Provider => settings.Provider ?? ResultsProvider.Postgres;

    public bool IsPostgres => Provider == ResultsProvider.Postgres;

    public int CommandTimeoutSeconds => settings.CommandTimeoutSeconds;

    /// <summary>A JSON parameter as the column type wants it (jsonb on PostgreSQL, TEXT on SQLite).</summary>
    public string Json(string parameter) => IsPostgres ? $"CAST({parameter} AS jsonb)" : parameter;

    /// <summary>
    /// Job ids for an <c>IN @Jobs</c> (SQLite) or <c>ANY(@Jobs)</c> (PostgreSQL) list: Dapper expands a list without the
    /// Guid type handler, and Microsoft.Data.Sqlite would send each Guid as a BLOB that never equals the stored TEXT.
    /// </summary>
    public System.Collections.IEnumerable JobIdList(IEnumerable<Guid> jobIds) =>
        IsPostgres ? jobIds.ToArray() : jobIds.Select(id => id.ToString("D")).ToArray();

    /// <summary>Row lock on PostgreSQL; SQLite transactions (BEGIN IMMEDIATE) already exclude other writers.</summary>
    public string ForUpdate => IsPostgres ? " FOR UPDATE" : "";

    /// <summary>
    /// Failures worth retrying: what Npgsql calls transient (connection loss, serialization failure, deadlock, shutdown)
    /// and SQLite's busy or locked. Constraint violations and cancellation surface at once.
    /// </summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        OperationCanceledException => false,
        NpgsqlException npgsql => npgsql.IsTransient,
        SqliteException { SqliteErrorCode: 5 or 6 } => true, // SQLITE_BUSY, SQLITE_LOCKED
        _ => false,
    };

    internal async Task<DbConnection> OpenConnectionAsync(CancellationToken cancellationToken)
    {
        DapperSetup.EnsureConfigured();
        if (IsPostgres)
        {
            var dataSource = (NpgsqlDataSource?)services.GetService(typeof(NpgsqlDataSource))
                ?? throw new InvalidOperationException("ResultsDatabase:Provider is Postgres but no NpgsqlDataSource is registered");
            return await dataSource.OpenConnectionAsync(cancellationToken);
        }

        var connection = new SqliteConnection(settings.ConnectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = Interlocked.Exchange(ref sqliteInitialized, 1) == 0
                ? "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;"
                : "PRAGMA foreign_keys = ON;";
            await pragma.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction on a fresh connection, inside the database pipeline: a call that
    /// fails on a lost connection is retried whole, so every repository method must be idempotent.
    /// </summary>
    internal async Task<T> InTransactionAsync<T>(Func<DbConnection, DbTransaction, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        return await pipeline.ExecuteAsync(async token =>
        {
            await using var connection = await OpenConnectionAsync(token);
            await using var transaction = await connection.BeginTransactionAsync(token);
            var result = await work(connection, transaction, token);
            await transaction.CommitAsync(token);
            return result;
        }, cancellationToken);
    }

    internal CommandDefinition Command(string sql, object? parameters, DbTransaction transaction, CancellationToken cancellationToken) =>
        new(sql, parameters, transaction, CommandTimeoutSeconds, cancellationToken: cancellationToken);

    internal Task<int> ExecuteAsync(DbConnection connection, DbTransaction transaction, string sql, object? parameters, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(Command(sql, parameters, transaction, cancellationToken));
}
