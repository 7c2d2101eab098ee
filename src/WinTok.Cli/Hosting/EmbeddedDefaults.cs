using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace WinTok.Cli.Hosting;

/// <summary>Where a verb's results and queue are: the servers configured, or this machine's embedded defaults.</summary>
/// <param name="SqlitePath">The SQLite results database, or null for the PostgreSQL server.</param>
/// <param name="InProcessQueue">Whether the job queue lives in this process (no RabbitMQ configured).</param>
internal sealed record ServerMode(string? SqlitePath, bool InProcessQueue)
{
    public string Describe(bool withQueue) =>
        (SqlitePath is { } path ? $"results in SQLite at {path}" : "results in PostgreSQL")
        + (!withQueue ? "" : InProcessQueue ? ", in-process job queue (one machine)" : ", jobs on RabbitMQ")
        + (SqlitePath is not null || (withQueue && InProcessQueue) ? " (set WINTOK_POSTGRES and WINTOK_RABBITMQ for many machines)" : "");
}

/// <summary>
/// The embedded defaults of the long-running and schedule verbs: with no PostgreSQL configured
/// (<c>ResultsDatabase:ConnectionString</c> or <c>WINTOK_POSTGRES</c>) the results go to SQLite at
/// <c>~/.wintok/results.db</c> (or <c>--db</c>), and with no RabbitMQ (<c>JobQueue:ConnectionString</c>,
/// <c>WINTOK_RABBITMQ</c> or an explicit <c>JobQueue:Transport</c>) the queue is in process. With servers configured
/// nothing changes.
/// </summary>
internal static class EmbeddedDefaults
{
    public static string DefaultDatabase { get; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".wintok", "results.db");

    /// <summary>Adds the defaults to <paramref name="builder"/>'s configuration where nothing else is set, and says which mode results.</summary>
    public static ServerMode Apply(IHostApplicationBuilder builder, string? database = null)
    {
        var configuration = builder.Configuration;
        var settings = new Dictionary<string, string?>();
        string? sqlite = null;
        if (database is not null || (configuration["ResultsDatabase:ConnectionString"] is null && configuration["WINTOK_POSTGRES"] is not { Length: > 0 }))
        {
            sqlite = Path.GetFullPath(database ?? DefaultDatabase);
            Directory.CreateDirectory(Path.GetDirectoryName(sqlite)!);
            settings["ResultsDatabase:Provider"] = "Sqlite";
            settings["ResultsDatabase:ConnectionString"] = $"Data Source={sqlite}";
        }
        else if (configuration["ResultsDatabase:Provider"] is "Sqlite" && configuration["ResultsDatabase:ConnectionString"] is { } connection)
        {
            sqlite = connection;
        }
        var inProcess = configuration["JobQueue:Transport"] is { } transport
            ? transport.Equals("InProcess", StringComparison.OrdinalIgnoreCase)
            : configuration["JobQueue:ConnectionString"] is null && configuration["WINTOK_RABBITMQ"] is not { Length: > 0 };
        if (inProcess) settings["JobQueue:Transport"] = "InProcess";
        configuration.AddInMemoryCollection(settings);
        return new ServerMode(sqlite, inProcess);
    }

    /// <summary>
    /// For the verbs that read results (<c>jobs</c>, <c>metrics list | compare</c>), which create no database: with no
    /// server configured and no <c>--db</c>, this machine's <c>~/.wintok/results.db</c> once a <c>wintok worker</c> on
    /// the embedded defaults has written it (as <c>metrics trend</c> and <c>schedules</c> read it). Otherwise nothing
    /// changes, and the verb says where a local job's record is.
    /// </summary>
    public static void UseExistingDatabase(IHostApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        if (configuration["ResultsDatabase:ConnectionString"] is not null || configuration["WINTOK_POSTGRES"] is not null || !File.Exists(DefaultDatabase))
            return;
        configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ResultsDatabase:Provider"] = "Sqlite",
            ["ResultsDatabase:ConnectionString"] = $"Data Source={DefaultDatabase}",
        });
    }
}
