using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace WinTok.Results;

/// <summary>Which database holds jobs, partitions and failures; bound from <c>ResultsDatabase</c>.</summary>
public sealed class ResultsDatabaseOptions
{
    public const string SectionName = "ResultsDatabase";

    /// <summary><c>Postgres</c> for many workers, <c>Sqlite</c> for one process.</summary>
    /// <value><c>Postgres</c> when a connection string is found in <c>WINTOK_POSTGRES</c>, otherwise required.</value>
    [Required]
    public ResultsProvider? Provider { get; set; }

    /// <summary>An Npgsql connection string, or a Microsoft.Data.Sqlite one (<c>Data Source=out/results.db</c>).</summary>
    /// <value>From the <c>WINTOK_POSTGRES</c> environment variable when not set.</value>
    [Required]
    public string? ConnectionString { get; set; }

    /// <summary>Apply pending schema migrations when the host starts.</summary>
    /// <value><see langword="true"/>.</value>
    public bool MigrateOnStart { get; set; } = true;

    /// <summary>Seconds one SQL command may run (for SQLite also how long it waits on a locked database).</summary>
    /// <value>30.</value>
    [Range(1, 3600)]
    public int CommandTimeoutSeconds { get; set; } = 30;
}

public enum ResultsProvider
{
    Postgres,
    Sqlite,
}

[OptionsValidator]
internal sealed partial class ResultsDatabaseOptionsValidator : IValidateOptions<ResultsDatabaseOptions>;
