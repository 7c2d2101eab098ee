using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Results;

namespace WinTok.Cli.Commands;

/// <summary>`wintok migrate`: applies the results database's pending migrations and exits (the Helm pre-install hook).</summary>
internal static class MigrateCommand
{
    public static Command Create()
    {
        var database = JobsCommand.DatabaseOption();
        var command = new Command("migrate", "Apply the results database schema (PostgreSQL from WINTOK_POSTGRES, or --db for SQLite).")
        {
            database,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(string? database, CancellationToken cancellationToken)
    {
        var settings = JobsCommand.DatabaseSettings(database);
        // Migrated below, once and reported, rather than by the start-up service.
        settings["ResultsDatabase:MigrateOnStart"] = "false";
        var builder = WinTokHost.CreateBuilder(Verbosity.Normal, settings);
        builder.AddResultsStore();
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            var applied = await services.GetRequiredService<ResultsDatabaseMigrator>().MigrateAsync(token);
            Console.WriteLine($"Results database up to date ({applied} migrations applied).");
            return ExitCodes.Success;
        }, cancellationToken);
    }
}
